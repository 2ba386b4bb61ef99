"""``zenrec retrain``: a candidate from the event store, judged on the events the served version has not seen.

Data: bundled ml-100k in time order.  The first 80 % of the ratings are the
base dataset the current version (EASE with a small, overfitting ``reg``)
was trained on; the next ratings of users already in the base are posted
into a real SQLite event store beside a real registry.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from zenrec.cli import app
from zenrec.data.dataset import Dataset
from zenrec.data.schema import ColumnMap
from zenrec.errors import ConfigError
from zenrec.models.base import TrainOptions
from zenrec.models.bundle import ModelBundle, train_bundle
from zenrec.retrain import (
    TRAINING_LOG_FILE,
    TrainingLog,
    build_window,
    evaluate_window,
    retrain,
    window_scorer,
)
from zenrec.retrain.log import integer_ids_lost
from zenrec.store import EventStore, ModelRegistry, RegistryError
from zenrec.store.events import Event

runner = CliRunner()
#: the current version's EASE: a small reg overfits, so a well-regularised candidate beats it
CURRENT_REG = 10
CANDIDATE = {"reg": 300}


@dataclass(frozen=True)
class Chrono:
    base_dir: Path  # the first 80 % of ml-100k as a `zenrec ingest` dataset directory
    n_base: int
    current_dir: Path  # EASE(reg=CURRENT_REG) trained on it
    batch1: list[Event]  # the next ratings of base users
    batch2: list[Event]  # the ones after those


@pytest.fixture(scope="module")
def chrono(ml100k, tmp_path_factory) -> Chrono:
    inter = ml100k.interactions
    order = np.argsort(inter.timestamp, kind="stable")
    df = pd.DataFrame({"user_id": ml100k.users.ids(inter.user[order]), "item_id": ml100k.items.ids(inter.item[order]),
                       "timestamp": inter.timestamp[order], "rating": 4.0})
    cut = int(len(df) * 0.8)
    root = tmp_path_factory.mktemp("retrain")
    base = Dataset.from_frame(df.iloc[:cut], ColumnMap(user="user_id", item="item_id", timestamp="timestamp",
                                                       value="rating"), name="ml-100k-first80")
    base.save(root / "base")
    current = train_bundle(base, "ease", {"reg": CURRENT_REG}, TrainOptions(threads=1)).save(root / "current")
    rest = df.iloc[cut:]
    rest = rest[rest["user_id"].isin(set(df["user_id"].iloc[:cut]))]
    events = [Event(str(r.user_id), str(r.item_id), "rating", r.rating, float(r.timestamp)) for r in rest.itertuples()]
    return Chrono(root / "base", cut, current, events[:2000], events[2000:3000])


def registry_with_current(tmp_path: Path, chrono: Chrono, events: list[Event]) -> ModelRegistry:
    """A registry serving the base-trained EASE (last_event_seq 0), with ``events`` in its store."""
    reg = ModelRegistry(tmp_path / "registry")
    reg.promote(reg.add(chrono.current_dir, extra={"last_event_seq": 0}), reason="trained on the base")
    post(reg, events)
    return reg


def post(reg: ModelRegistry, events: list[Event]) -> None:
    with EventStore(reg.events_url()) as store:
        store.append(events)


def registry_json(reg: ModelRegistry, version: str) -> dict:
    return json.loads((reg.path(version) / "registry.json").read_text())


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


# ---------------------------------------------------------------- the evaluation rule


def test_window_truth_masks_and_unknowns_on_a_tiny_log():
    """a re-buys i1 (not new), buys i3 (unknown to models); c is a new user on a new item; b buys i2."""
    rows = [("a", "i1", 1, 0), ("a", "i2", 2, 0), ("b", "i1", 3, 0),
            ("a", "i3", 10, 1), ("a", "i1", 11, 2), ("c", "i4", 12, 3), ("b", "i2", 13, 4)]
    u, i, t, q = zip(*rows, strict=True)
    log = TrainingLog(np.array(u), np.array(i), np.array(t, dtype=float), np.ones(len(rows), np.float32),
                      np.array(["view"] * len(rows)), np.array(q, dtype=np.int64))
    ew = build_window(log, log.seq > 0)
    assert (ew.n_events, ew.n_window_users) == (4, 3) and ew.users.tolist() == ["a", "c", "b"]
    col = {x: j for j, x in enumerate(ew.items.tolist())}
    truth = {u: sorted(ew.items[ew.truth[r].indices].tolist()) for r, u in enumerate(ew.users)}
    seen = {u: sorted(ew.items[ew.seen[r].indices].tolist()) for r, u in enumerate(ew.users)}
    assert truth == {"a": ["i3"], "c": ["i4"], "b": ["i2"]}
    assert seen == {"a": ["i1", "i2"], "c": [], "b": ["i1"]}
    assert [(ew.users[r], x) for r, x in zip(ew.hist_user, ew.hist_item, strict=True)] == [
        ("a", "i1"), ("a", "i2"), ("b", "i1")]

    base = log.subset(log.seq == 0).to_dataset()
    for name, how in (("pop", "stored state"), ("ease", "history")):
        bundle = train_bundle(base, name, {"reg": 1.0} if name == "ease" else {})
        score, got = window_scorer(bundle, ew)
        block = score(np.arange(3))
        assert got == how and block.shape == (3, len(ew.items))
        assert np.isneginf(block[:, [col["i3"], col["i4"]]]).all()  # items the model does not know
        np.testing.assert_allclose(block[1, [col["i1"], col["i2"]]], bundle.model.popularity_[
            bundle.items.index(["i1", "i2"])])  # the unknown user c: popularity fallback
        # a misses (i3 unknown), c misses (i4 unknown), b finds i2 first once its i1 is masked
        metrics, _ = evaluate_window(bundle, ew)
        assert metrics == pytest.approx({"ndcg@10": 1 / 3, "recall@10": 1 / 3, "hit@10": 1 / 3})


# ---------------------------------------------------------------- the gate


def test_better_candidate_is_promoted_with_its_last_event_seq(tmp_path, chrono):
    reg = registry_with_current(tmp_path, chrono, chrono.batch1)
    rep = retrain(reg.root, "ease", CANDIDATE, base=chrono.base_dir)

    assert rep.decision == "promoted" and rep.promoted, rep.reason
    cand, cur = rep.candidate["ndcg@10"], rep.current["ndcg@10"]
    assert all(math.isfinite(x) and x > 0 for x in (cand, cur)), (cand, cur)
    assert cand >= cur
    assert f"{cand:.4f}" in rep.reason and f"{cur:.4f}" in rep.reason
    assert set(rep.candidate) == set(rep.current) == {"ndcg@10", "recall@10", "hit@10"}
    assert rep.scoring == {"candidate": "history", "current": "history"}  # EASE reads pre-window history
    assert rep.window["kind"] == "since_last_event_seq" and rep.window["events"] == len(chrono.batch1)
    assert 0 < rep.window["evaluated_users"] <= rep.window["users"]
    assert rep.current_version == "v0001" and rep.version == rep.served_version == reg.current().version == "v0002"

    # the promoted version is trained on everything, window included, and says up to which seq
    max_seq = len(chrono.batch1)
    info = reg.info("v0002")
    assert registry_json(reg, "v0002")["last_event_seq"] == info.last_event_seq == rep.last_event_seq == max_seq
    assert info.trained_until == max(e.timestamp for e in chrono.batch1)
    assert rep.registered == "all data" and rep.training_events == chrono.n_base + max_seq
    log = TrainingLog.load(info.path / TRAINING_LOG_FILE)  # plain arrays: loads with allow_pickle=False
    assert len(log) == chrono.n_base + max_seq and log.last_event_seq == max_seq
    bundle = ModelBundle.load(info.path)
    assert bundle.model.n_users_ == len(set(log.user.tolist()))
    assert len(bundle.recommend_users([chrono.batch1[0].user], k=5)) == 5
    assert reg.info("v0001").last_event_seq == 0

    # no event since: nothing to evaluate, nothing trained or promoted
    again = retrain(reg.root, "ease", CANDIDATE, base=chrono.base_dir)
    assert again.decision == "nothing_to_evaluate" and not again.promoted and again.version is None
    assert "nothing trained" in again.reason and reg.current().version == "v0002"
    assert [v.id for v in reg.versions()] == ["v0001", "v0002"]

    # a recent-events window evaluates anyway and says the current version has seen it
    recent = retrain(reg.root, "pop", base=chrono.base_dir, window=timedelta(days=3), promote=False)
    assert recent.window["kind"] == "recent" and recent.window["events"] > 0
    assert recent.decision in ("not_promoted", "rejected") and reg.current().version == "v0002"
    assert any("favours it" in n for n in recent.notes), recent.notes


def test_worse_candidate_is_rejected_and_the_current_version_stays(tmp_path, chrono):
    reg = registry_with_current(tmp_path, chrono, chrono.batch1)
    rep = retrain(reg.root, "pop", base=chrono.base_dir)

    assert rep.decision == "rejected" and not rep.promoted
    cand, cur = rep.candidate["ndcg@10"], rep.current["ndcg@10"]
    assert 0 < cand < cur
    assert f"{cand:.4f}" in rep.reason and f"{cur:.4f}" in rep.reason and "v0001 stays" in rep.reason
    assert rep.scoring == {"candidate": "stored state", "current": "history"}
    assert reg.current().version == "v0001" and rep.served_version == "v0001"
    # registered for inspection: the evaluation candidate, trained before the window
    info = reg.info(rep.version)
    assert rep.registered == "evaluation candidate" and info.model == "pop"
    assert info.last_event_seq == 0 and "rejected" in info.note
    assert info.extra["retrain"]["decision"] == "rejected"
    # a tolerance wide enough lets it through
    loose = retrain(reg.root, "pop", base=chrono.base_dir, tolerance=cur - cand + 1e-3)
    assert loose.decision == "promoted" and reg.current().version == loose.version


def test_first_version_is_promoted_without_evaluation(tmp_path, chrono):
    reg = ModelRegistry(tmp_path / "registry")
    post(reg, chrono.batch2)
    rep = retrain(reg.root, "pop")  # no base: the store alone
    assert rep.decision == "promoted" and rep.current_version is None and "no current version" in rep.reason
    assert not rep.candidate and not rep.current
    assert reg.current().version == rep.version and reg.info(rep.version).last_event_seq == len(chrono.batch2)


def test_the_report_counts_window_events_that_answer_the_current_version_s_lists(tmp_path, chrono):
    """The feedback loop: users acted on what v0001 showed them, which favours v0001; the report says how often."""
    from dataclasses import replace

    shown = [replace(e, list_id=f"l{k}", model_version="v0001") for k, e in enumerate(chrono.batch1[:300])]
    other = [replace(e, list_id="l-old", model_version="v0000") for e in chrono.batch1[300:310]]
    reg = registry_with_current(tmp_path, chrono, shown + other + chrono.batch1[310:])
    rep = retrain(reg.root, "pop", base=chrono.base_dir, tolerance=1.0)
    notes = [n for n in rep.notes if "answer lists" in n]
    assert notes == [f"300 of the window's {len(chrono.batch1):,} events answer lists the current version v0001 "
                     "served: the comparison favours it (see docs/guide/retraining.md)"], rep.notes
    # the new version's training log keeps which version's list each event answers
    log = TrainingLog.load(reg.path(rep.version) / TRAINING_LOG_FILE)
    assert log.served_by.tolist().count("v0001") == 300 and log.served_by.tolist().count("v0000") == 10
    assert set(log.served_by[log.seq == 0].tolist()) == {""}
    # v0002 served none of the window's lists: no note
    post(reg, [replace(e, list_id="l-new", model_version="v0001") for e in chrono.batch2[:50]])
    again = retrain(reg.root, "pop", base=chrono.base_dir, tolerance=1.0)
    assert again.window["events"] == 50 and not [n for n in again.notes if "answer lists" in n], again.notes


def test_a_training_log_written_before_served_by_still_loads(tmp_path):
    log = TrainingLog(np.array(["a", "b"]), np.array(["i", "j"]), np.array([1.0, 2.0]), np.ones(2, np.float32),
                      np.array(["view", "click"]), np.array([0, 3], dtype=np.int64), np.array(["", "v0001"]))
    log.save(tmp_path / "new.npz")
    assert TrainingLog.load(tmp_path / "new.npz").equals(log)
    old = {c: getattr(log, c) for c in ("user", "item", "timestamp", "weight", "event", "seq")}
    np.savez_compressed(tmp_path / "old.npz", **old)  # the columns of a log from an earlier zenrec
    loaded = TrainingLog.load(tmp_path / "old.npz")
    assert loaded.served_by.tolist() == ["", ""] and np.array_equal(loaded.seq, log.seq)
    assert loaded.concat(log).served_by.tolist() == ["", "", "", "v0001"]


# ---------------------------------------------------------------- incremental


def test_incremental_reads_only_new_events_and_matches_full(tmp_path, chrono):
    reg = registry_with_current(tmp_path, chrono, chrono.batch1)
    loose = {"tolerance": 1.0}  # pop always passes: every run below registers the all-data version
    first = retrain(reg.root, "pop", base=chrono.base_dir, **loose)
    assert first.decision == "promoted" and first.events_read == len(chrono.batch1)
    n1 = reg.info(first.version).last_event_seq
    post(reg, chrono.batch2)

    inc = retrain(reg.root, "pop", mode="incremental", promote=False, **loose)
    full = retrain(reg.root, "pop", base=chrono.base_dir, promote=False, **loose)
    assert inc.decision == full.decision == "not_promoted" and reg.current().version == first.version
    assert inc.events_read == len(chrono.batch2)  # only the events after last_event_seq
    assert full.events_read == len(chrono.batch1) + len(chrono.batch2)
    assert inc.window == full.window and inc.candidate == full.candidate
    log_inc = TrainingLog.load(reg.path(inc.version) / TRAINING_LOG_FILE)
    log_full = TrainingLog.load(reg.path(full.version) / TRAINING_LOG_FILE)
    assert log_inc.equals(log_full) and len(log_inc) == chrono.n_base + len(chrono.batch1) + len(chrono.batch2)
    assert reg.info(inc.version).last_event_seq == reg.info(full.version).last_event_seq == n1 + len(chrono.batch2)

    # a marker written over an event the current version already has: incremental must not read it
    with sqlite3.connect(reg.root / "events.db") as db:
        db.execute("UPDATE events SET user_id = 'MARKER' WHERE seq = 1")
    db.close()
    again = retrain(reg.root, "pop", mode="incremental", promote=False, **loose)
    assert again.events_read == len(chrono.batch2)
    log = TrainingLog.load(reg.path(again.version) / TRAINING_LOG_FILE)
    assert "MARKER" not in set(log.user.tolist()) and log.equals(log_inc)
    # ...whereas a full run does
    marked = retrain(reg.root, "pop", base=chrono.base_dir, promote=False, **loose)
    assert "MARKER" in set(TrainingLog.load(reg.path(marked.version) / TRAINING_LOG_FILE).user.tolist())


# ---------------------------------------------------------------- the registry's new fields


def test_registry_extra_fields(tmp_path, chrono):
    reg = ModelRegistry(tmp_path / "registry")
    plain = reg.add(chrono.current_dir)
    v = reg.add(chrono.current_dir, note="n", extra={"last_event_seq": np.int64(42), "trained_until": 9.5,
                                                     "source": {"x": [1, 2]}})
    assert reg.info(plain).last_event_seq is None and reg.info(plain).trained_until is None
    info = reg.info(v)
    assert (info.last_event_seq, info.trained_until, info.note) == (42, 9.5, "n")
    assert info.extra == {"last_event_seq": 42, "trained_until": 9.5, "source": {"x": [1, 2]}}
    for bad, match in (({"note": "x"}, "reserved"), ({"last_event_seq": -1}, "last_event_seq"),
                       ({"last_event_seq": 1.5}, "last_event_seq"), ({"trained_until": float("nan")}, "trained_until"),
                       ({"x": object()}, "JSON"), ([1], "mapping")):
        with pytest.raises(ConfigError, match=match):
            reg.add(chrono.current_dir, extra=bad)  # type: ignore[arg-type]
    f = reg.path(v) / "registry.json"
    f.write_text(json.dumps({**json.loads(f.read_text()), "last_event_seq": "seven"}))
    with pytest.raises(RegistryError, match="corrupted"):
        reg.info(v)


# ---------------------------------------------------------------- the command line


def test_cli_exit_codes_and_report(tmp_path, chrono):
    reg = registry_with_current(tmp_path, chrono, chrono.batch1)
    r = run("retrain", reg.root, "--model", "pop", "--base", chrono.base_dir, "--json", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["decision"] == "rejected" and "rejected" in r.output and "v0001 stays" in r.output
    assert f"{report['candidate']['ndcg@10']:.4f}" in r.output and f"{report['current']['ndcg@10']:.4f}" in r.output
    assert "served version: v0001" in r.output

    r = run("retrain", reg.root, "--model", "pop", "--base", chrono.base_dir, "--fail-if-rejected")
    assert r.exit_code == 3, r.output
    r = run("retrain", reg.root, "--model", "pop", "--base", chrono.base_dir, "--tolerance", "1", "--no-promote")
    assert r.exit_code == 0 and "not promoted" in r.output and reg.current().version == "v0001", r.output
    r = run("retrain", reg.root, "--model", "pop", "--base", chrono.base_dir, "--tolerance", "1", "--fail-if-rejected")
    assert r.exit_code == 0 and "promoted" in r.output and reg.current().version != "v0001", r.output


def _bad(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1, result.output
    for n in needles:
        assert n in result.output, result.output


def test_cli_bad_input(tmp_path, chrono):
    _bad(run("retrain", tmp_path / "nope", "--model", "ease"), "no such model registry")
    empty = tmp_path / "empty"
    empty.mkdir()
    _bad(run("retrain", empty, "--model", "easy"), "unknown model 'easy'")
    _bad(run("retrain", empty, "--model", "ease"), "nothing to train on", "no events", "no base dataset")
    _bad(run("retrain", empty, "--model", "ease", "--metric", "auc@10"), "unknown metric 'auc@10'")
    _bad(run("retrain", empty, "--model", "ease", "--param", "regg=3"), "no parameter 'regg'")
    _bad(run("retrain", empty, "--model", "ease", "--mode", "sometimes"), "'mode' parameter")
    _bad(run("retrain", empty, "--model", "ease", "--window-days", "0"), "--window-days")
    reg = registry_with_current(tmp_path, chrono, chrono.batch2)
    _bad(run("retrain", reg.root, "--model", "ease", "--mode", "incremental"), "no training log", "--mode full")
    _bad(run("retrain", reg.root, "--model", "ease"), "no events before the evaluation window")
    assert [v.id for v in reg.versions()] == ["v0001"]  # nothing registered by a failed run


def test_cli_real_process_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zenrec.cli", "retrain", str(tmp_path / "nope"), "--model", "ease"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "no such model registry" in proc.stderr


def test_a_retrained_version_keeps_the_id_types_of_its_data(tmp_path, chrono, serve_app):
    """ml-100k's ids are integers; events arrive as text. The retrained version still answers with JSON integers
    (it answered "100" instead of 100 before), and says so when a posted id makes that impossible."""
    reg = registry_with_current(tmp_path, chrono, chrono.batch1)
    rep = retrain(reg.root, "ease", CANDIDATE, base=chrono.base_dir, tolerance=1.0)
    assert rep.promoted, rep.reason
    bundle = ModelBundle.load(reg.info(rep.version).path)
    assert bundle.users.is_integer and bundle.items.is_integer
    with serve_app(reg.root, tmp_path / "serve.db") as c:
        body = c.get(f"/users/{chrono.batch1[0].user}/recommendations", params={"k": 3}).json()
        assert body["user"] == int(chrono.batch1[0].user) and all(type(x["item"]) is int for x in body["items"])


def test_ids_that_are_not_all_integers_stay_text_and_are_named():
    log = TrainingLog(np.array(["1", "2", "guest-7", "07"]), np.array(["10", "-3", "10", "4"]),
                      np.arange(4, dtype=float), np.ones(4, np.float32), np.array(["view"] * 4),
                      np.arange(4, dtype=np.int64))
    ds = log.to_dataset(integer_ids=(True, True))
    assert not ds.users.is_integer and ds.items.is_integer and sorted(ds.items.all_ids.tolist()) == [-3, 4, 10]
    assert integer_ids_lost(log, (True, True)) == ["user"]
    assert integer_ids_lost(log.subset(np.array([True, True, False, False])), (True, True)) == []
    assert log.to_dataset().items.is_integer is False  # without an integer origin, ids stay text
