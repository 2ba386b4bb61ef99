"""Tuning shared through a database: the pool holds the budget exactly, processes split it, every process
(and --collect) rebuilds the same results, and the leaderboard equals one process replaying the same trials.

The SQLite cases run everywhere; the PostgreSQL ones need ``ZENREC_TEST_POSTGRES_URL`` (set by
``scripts/with_postgres.sh``) and skip without it, unless ``ZENREC_REQUIRE_POSTGRES=1``, where they fail.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from zenrec.cli import app
from zenrec.errors import ConfigError
from zenrec.evaluate.evaluator import evaluate_split
from zenrec.experiments import studies
from zenrec.experiments.studies import StudyTerms, TrialPool, default_study_name, open_storage, worker_id
from zenrec.experiments.tune import TuneResult, collect, tune, tuned_leaderboard
from zenrec.models import TrainOptions, create_model, get_model_class

runner = CliRunner()
SEED = 2020


# ------------------------------------------------------------------ fixtures
def _postgres_base_url() -> str:
    url = os.environ.get("ZENREC_TEST_POSTGRES_URL", "")
    if not url:
        if os.environ.get("ZENREC_REQUIRE_POSTGRES") == "1":
            pytest.fail("ZENREC_REQUIRE_POSTGRES=1 but ZENREC_TEST_POSTGRES_URL is unset: run the tests through "
                        "scripts/with_postgres.sh (as `make test` does)", pytrace=False)
        pytest.skip("PostgreSQL tuning tests need ZENREC_TEST_POSTGRES_URL (run through scripts/with_postgres.sh)")
    return url


@pytest.fixture
def pg_url():
    """A URL to an empty schema of the test PostgreSQL server (dropped afterwards)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    base = _postgres_base_url()
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    schema = f"zt_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request, tmp_path):
    """A storage URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/tune.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory):
    """A `zenrec ingest` directory of a tiny slice of the bundled ml-100k: the 300 most rated films and the
    first 300 users (about 20k events)."""
    from zenrec.data.dataset import Dataset
    from zenrec.data.schema import ColumnMap
    from zenrec.datasets import load_ml100k

    ds = load_ml100k()
    inter = ds.interactions
    keep = np.argsort(-np.bincount(inter.item, minlength=inter.n_items), kind="stable")[:300]
    rows = np.isin(inter.item, keep) & (inter.user < 300)
    df = pd.DataFrame({"user_id": ds.users.ids(inter.user[rows]), "item_id": ds.items.ids(inter.item[rows]),
                       "ts": inter.timestamp[rows]})
    path = tmp_path_factory.mktemp("tune-shared") / "data"
    Dataset.from_frame(df, ColumnMap(user="user_id", item="item_id", timestamp="ts"), name="ml100k-slice").save(path)
    return path


def _slice_split(path: Path):
    from zenrec.data import split_dataset
    from zenrec.data.dataset import Dataset

    return split_dataset(Dataset.load(path), "general", seed=SEED)


def _defaults(name: str) -> dict:
    params = get_model_class(name)().config.model_dump()
    params.pop("on_unknown_user", None)
    return params


def _replay(split, name: str, params: dict) -> float:
    """Validation NDCG@10 of ``name`` fitted with ``params``, computed here without the tuning code."""
    model = create_model(name, **{**_defaults(name), **params}).fit(split.train, split.valid, TrainOptions(seed=SEED))
    return evaluate_split(model, split, "valid", ks=(10,), metrics=("ndcg",), beyond=False).metrics["ndcg@10"]


def _same_results(a: TuneResult, b: TuneResult) -> None:
    assert (a.model, a.best_trial, a.n_trials, a.study) == (b.model, b.best_trial, b.n_trials, b.study)
    assert a.best_params == b.best_params and a.best_value == b.best_value and a.default_value == b.default_value
    pd.testing.assert_frame_equal(a.trials, b.trials)


def _quick_pool(storage, name: str, n: int, sampler_seed: int = 0) -> TrialPool:
    terms = StudyTerms("quick", {}, "ndcg@10", None, 0, "split", n)
    return TrialPool.open(storage, name, terms, {"x": 0.5}, optuna.samplers.RandomSampler(seed=sampler_seed))


# ------------------------------------------------------------------ the pool
def test_processes_claim_each_trial_once_and_never_exceed_the_budget(any_url):
    """Four workers (threads, each with its own connection) on one study of 40 trials: every trial runs exactly
    once, the study holds exactly 40, and the first is the enqueued defaults."""
    open_storage(any_url)  # the tables, before the workers race for the study
    ran: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            pool = _quick_pool(open_storage(any_url), "pool", 40, sampler_seed=w)

            def objective(trial):
                time.sleep(0.002)
                ran.append((f"w{w}", trial.number))
                return trial.suggest_float("x", 0.0, 1.0)

            pool.run(objective, None, ())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    numbers = sorted(n for _, n in ran)
    assert numbers == list(range(40))  # each trial once, none beyond the budget
    assert len({w for w, _ in ran}) >= 2  # the work was shared
    study = optuna.load_study(study_name="pool", storage=any_url)
    assert len(study.trials) == 40
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert study.trials[0].params == {"x": 0.5}
    assert all(t.user_attrs["worker"] == worker_id() for t in study.trials)


def test_a_dead_workers_trial_is_failed_after_the_grace_period(tmp_path, monkeypatch):
    monkeypatch.setattr(studies, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(studies, "GRACE_SECONDS", 1)
    url = f"sqlite:///{tmp_path}/tune.db"
    dead = _quick_pool(open_storage(url), "dead", 4)
    lost = dead.claim()  # claimed, one heartbeat, then its process "dies": never told, never beats again
    assert lost is not None and lost.number == 0
    open_storage(url).record_heartbeat(dead.backend.get_trial_id_from_study_id_trial_number(dead.study_id, 0))
    alive = _quick_pool(open_storage(url), "dead", 4)
    assert alive.run(lambda t: t.suggest_float("x", 0.0, 1.0), None, ()) == 3
    assert [t.number for t in alive.running()] == [0]
    t0 = time.monotonic()
    alive.wait_for_running(poll=0.2)  # returns once the lost trial is stale, instead of waiting forever
    assert time.monotonic() - t0 < 30
    states = {t.number: t.state.name for t in optuna.load_study(study_name="dead", storage=url).trials}
    assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE", 3: "COMPLETE"}


# ------------------------------------------------------------------ tune / collect
def test_the_budget_is_the_studys_and_every_reader_rebuilds_the_same_results(ml100k_small, tmp_path):
    url = f"sqlite:///{tmp_path}/tune.db"
    calls = []
    first = tune(ml100k_small, ["itemknn"], n_trials=4, seed=3, storage=url,
                 progress=lambda *a: calls.append(a))["itemknn"]
    assert first.n_trials == 4 and len(calls) == 4
    assert first.study == f"{default_study_name(ml100k_small)}:itemknn"
    assert (first.trials["worker"] == worker_id()).all() and (first.trials["fit_seconds"] > 0).all()
    # trial 0 is the defaults, the same value as a process tuning alone
    alone = tune(ml100k_small, ["itemknn"], n_trials=1, seed=3)["itemknn"]
    assert first.default_value == alone.default_value
    assert first.trials.loc[0, "params_k"] == alone.trials.loc[0, "params_k"]
    # a second process on the same study finds the pool empty: no trial runs, the results are the same
    calls.clear()
    again = tune(ml100k_small, ["itemknn"], n_trials=4, seed=3, storage=url, progress=lambda *a: calls.append(a))
    assert calls == []
    _same_results(again["itemknn"], first)
    _same_results(collect(ml100k_small, ["itemknn"], url, seed=3)["itemknn"], first)
    # each trial carries what rebuilding needs: its metric, fit and evaluation seconds, its worker
    trial = optuna.load_study(study_name=first.study, storage=url).trials[first.best_trial]
    assert trial.user_attrs["valid"] == {"ndcg@10": first.best_value}
    assert {"fit_seconds", "eval_seconds", "worker"} <= set(trial.user_attrs)
    assert first.to_dict()["study"] == first.study


def test_joining_a_study_under_other_terms_is_refused(ml100k_small, tmp_path):
    url = f"sqlite:///{tmp_path}/tune.db"
    tune(ml100k_small, ["itemknn"], n_trials=2, storage=url, study_name="s")
    with pytest.raises(ConfigError, match="'s:itemknn' was created with metric 'ndcg@10', this run has 'recall@10'"):
        tune(ml100k_small, ["itemknn"], n_trials=2, metric="recall@10", storage=url, study_name="s")
    with pytest.raises(ConfigError, match="trial budget 2, this run has 3"):
        tune(ml100k_small, ["itemknn"], n_trials=3, storage=url, study_name="s")
    with pytest.raises(ConfigError, match="fixed parameters"):
        tune(ml100k_small, [("itemknn", {"k": 7})], n_trials=2, storage=url, study_name="s")
    with pytest.raises(ConfigError, match="training seed"):
        tune(ml100k_small, ["itemknn"], n_trials=2, storage=url, study_name="s", options=TrainOptions(seed=1))
    from zenrec.data import random_split

    other = random_split(ml100k_small.train, (0.8, 0.1, 0.1), seed=1)
    with pytest.raises(ConfigError, match="split"):
        tune(other, ["itemknn"], n_trials=2, storage=url, study_name="s")
    # by default another split is another study
    assert default_study_name(other) != default_study_name(ml100k_small)
    # a study of that name that zenrec did not make
    optuna.create_study(study_name="x:itemknn", storage=url).optimize(lambda t: 0.0, n_trials=1)
    with pytest.raises(ConfigError, match="not created by zenrec tune"):
        tune(ml100k_small, ["itemknn"], n_trials=2, storage=url, study_name="x")
    with pytest.raises(ConfigError, match="no study 'nope:itemknn'"):
        collect(ml100k_small, ["itemknn"], url, study_name="nope")
    with pytest.raises(ConfigError, match="give 'storage' too"):
        tune(ml100k_small, ["itemknn"], n_trials=2, study_name="s")


@pytest.mark.parametrize("url, message", [
    ("nonsense", "is not a database URL"),
    ("foo://x", "unknown database or missing driver 'foo'"),
    ("sqlite://", "in-memory SQLite database"),
    ("postgresql+psycopg://someone:secret@127.0.0.1:1/db", "cannot open it as an optuna storage"),
])
def test_a_bad_storage_url_names_the_parameter(ml100k_small, url, message):
    with pytest.raises(ConfigError, match=message) as info:
        tune(ml100k_small, ["pop"], n_trials=1, storage=url)
    assert "the 'storage' parameter" in str(info.value) and "secret" not in str(info.value)


# ------------------------------------------------------------------ the command
def _cli(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("url", ["nonsense", "foo://x", "sqlite://", "sqlite:////no/such/dir/tune.db"])
def test_cli_a_bad_storage_is_one_line_naming_the_flag(slice_dir, url):
    r = _cli("tune", slice_dir, "--models", "pop", "--trials", "1", "--storage", url)
    assert r.exit_code == 2
    assert "--storage" in r.output and "Traceback" not in r.output


def test_cli_a_bad_storage_exits_2_without_traceback_in_a_real_process(slice_dir):
    r = subprocess.run([sys.executable, "-m", "zenrec.cli", "tune", str(slice_dir), "--models", "pop",
                        "--storage", "postgresql+psycopg://someone:secret@127.0.0.1:1/db"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--storage" in r.stderr and "cannot open it" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout and "secret" not in r.stderr


def test_cli_collect_and_study_name_need_storage(slice_dir):
    for flags, word in ((["--collect"], "--collect"), (["--study-name", "s"], "--study-name")):
        r = _cli("tune", slice_dir, "--models", "pop", *flags)
        assert r.exit_code == 2 and word in r.output and "--storage" in r.output


def test_cli_collect_writes_the_workers_leaderboard_and_saves_the_best(slice_dir, tmp_path):
    url = f"sqlite:///{tmp_path}/tune.db"
    r = _cli("tune", slice_dir, "--models", "itemknn", "--trials", "3", "--storage", url, "--json", tmp_path / "w.json")
    assert r.exit_code == 0, r.output
    assert "itemknn: 3 finished trials" in r.output
    r = _cli("tune", slice_dir, "--models", "itemknn", "--storage", url, "--collect", "--json", tmp_path / "c.json",
             "--save-best", tmp_path / "best")
    assert r.exit_code == 0, r.output
    worker, collected = (json.loads((tmp_path / f).read_text()) for f in ("w.json", "c.json"))
    assert collected["tuning"]["itemknn"]["trials"] == worker["tuning"]["itemknn"]["trials"]
    for a, b in zip(worker["leaderboard"]["rows"], collected["leaderboard"]["rows"], strict=True):
        assert a["params"] == b["params"]
        for part in ("valid", "test"):
            assert a[part].keys() == b[part].keys()
            assert all(math.isclose(a[part][k], b[part][k], abs_tol=1e-9) for k in a[part])
    manifest = json.loads((tmp_path / "best" / "manifest.json").read_text())
    assert manifest["tuning"]["params"] == worker["tuning"]["itemknn"]["best_params"]
    assert manifest["tuning"]["valid_value"] == worker["tuning"]["itemknn"]["best_value"]
    # another study name holds nothing yet
    r = _cli("tune", slice_dir, "--models", "itemknn", "--storage", url, "--collect", "--study-name", "other")
    assert r.exit_code == 2 and "no study 'other:itemknn'" in r.output


# ------------------------------------------------------------------ two real processes on PostgreSQL
def _rows_close(got: dict, want: dict) -> None:
    assert [r["label"] for r in got["rows"]] == [r["label"] for r in want["rows"]]
    for a, b in zip(got["rows"], want["rows"], strict=True):
        assert a["params"] == pytest.approx(b["params"])
        for part in ("valid", "test"):
            assert a[part].keys() == b[part].keys(), (a["label"], part)
            for k in a[part]:
                assert math.isclose(a[part][k], b[part][k], rel_tol=0, abs_tol=1e-9), (a["label"], part, k)


@pytest.mark.slow
def test_two_processes_share_one_postgresql_study(pg_url, slice_dir, tmp_path):
    """Two `zenrec tune` processes on one PostgreSQL study split its trials; each prints the leaderboard of one
    process replaying those trials."""
    import sqlalchemy as sa

    n, models = 6, ["itemknn", "ease"]
    open_storage(pg_url)  # optuna's tables, so that the gate below can lock one
    engine = sa.create_engine(pg_url)

    def command(i: int) -> list[str]:
        cmd = [sys.executable, "-m", "zenrec.cli", "tune", str(slice_dir), "--models", ",".join(models),
               "--trials", str(n), "--storage", pg_url, "--json", str(tmp_path / f"w{i}.json")]
        return cmd + (["--save-best", str(tmp_path / "best")] if i == 0 else [])

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    procs: list[subprocess.Popen] = []
    try:
        # a gate: the table of studies is locked until both processes wait on it, so that they start together
        with engine.connect() as gate, engine.connect() as watch:
            tx = gate.begin()
            gate.exec_driver_sql("LOCK TABLE studies IN ACCESS EXCLUSIVE MODE")
            procs = [subprocess.Popen(command(i), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for i in range(2)]
            deadline = time.monotonic() + 180
            while True:
                waiting = watch.exec_driver_sql(
                    "SELECT count(*) FROM pg_locks WHERE relation = 'studies'::regclass AND NOT granted").scalar()
                watch.rollback()
                if waiting >= 2:
                    break
                exited = [p for p in procs if p.poll() is not None]
                assert not exited, exited[0].communicate()
                assert time.monotonic() < deadline, "the tuning processes never reached the study"
                time.sleep(0.1)
            tx.commit()
        outputs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        engine.dispose()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out + err
        assert "Traceback" not in err

    split = _slice_split(slice_dir)
    prefix = default_study_name(split)
    pids = {str(p.pid) for p in procs}
    ran_by: dict[str, int] = {}
    replayed: dict[str, TuneResult] = {}
    for name in models:
        trials = optuna.load_study(study_name=f"{prefix}:{name}", storage=pg_url).trials
        # exactly the budget, each trial once, all finished: the pool never over-runs
        assert sorted(t.number for t in trials) == list(range(n))
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        for t in trials:
            host, pid = t.user_attrs["worker"].rsplit(":", 1)
            assert pid in pids
            ran_by[pid] = ran_by.get(pid, 0) + 1
            # the same parameters fitted again here give the same validation value
            assert math.isclose(_replay(split, name, t.params), t.value, rel_tol=0, abs_tol=1e-9)
        best = max(trials, key=lambda t: (t.value, -t.number))
        replayed[name] = TuneResult(name, "ndcg@10", {**_defaults(name), **best.params}, best.value,
                                    trials[0].value, n, 0.0, pd.DataFrame(), best.number)
    assert set(ran_by) == pids, ran_by  # both processes ran trials
    # one process replaying the best parameters: the same leaderboard as each worker printed
    want = tuned_leaderboard(split, replayed, options=TrainOptions(seed=SEED)).to_dict()
    boards = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(2)]
    for board in boards:
        _rows_close(board["leaderboard"], want)
        for name in models:
            assert board["tuning"][name]["best_trial"] == replayed[name].best_trial
            assert board["tuning"][name]["n_trials"] == n
    manifest = json.loads((tmp_path / "best" / "manifest.json").read_text())
    winner = max(replayed.values(), key=lambda r: r.best_value)
    assert manifest["model"] == winner.model
    assert manifest["tuning"]["params"] == pytest.approx(winner.best_params)
