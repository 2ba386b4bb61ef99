"""Tuning carried forward: `tune --save-best` writes the winner as `train` would, with a command that rebuilds it
exactly; `train --params-from` reads a tuning file; `retrain` keeps the served version's parameters; `auto`
picks the best on validation within a budget; `compare`/`tune` take per-model parameters."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from zenrec.cli import app
from zenrec.cli.main import _parse_params
from zenrec.data import ColumnMap, Dataset
from zenrec.errors import ConfigError
from zenrec.experiments.best import params_from, train_command
from zenrec.models.base import TrainOptions
from zenrec.models.bundle import ModelBundle, train_bundle
from zenrec.models.registry import get_model_class
from zenrec.retrain import retrain
from zenrec.store import EventStore, ModelRegistry
from zenrec.store.events import Event

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    """ml-100k's 300 most active users as a dataset directory: tuning EASE and ItemKNN on it takes seconds."""
    from zenrec.datasets import load_ml100k

    ds = load_ml100k()
    inter = ds.interactions
    keep = np.argsort(-np.bincount(inter.user, minlength=inter.n_users))[:300]
    m = np.isin(inter.user, keep)
    df = pd.DataFrame({"user_id": ds.users.ids(inter.user[m]), "item_id": ds.items.ids(inter.item[m]),
                       "timestamp": inter.timestamp[m]})
    path = tmp_path_factory.mktemp("best") / "data"
    Dataset.from_frame(df, ColumnMap(timestamp="timestamp"), name="ml-100k-300").save(path)
    return path


@pytest.fixture(scope="module")
def tuned(small_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned")
    r = run("tune", small_dir, "--models", "itemknn,ease", "--trials", "4", "--json", out / "tune.json",
            "--save-best", out / "best", "--param", "itemknn.k=50")
    assert r.exit_code == 0, r.output
    return out, r.output


def _arrays(path) -> dict[str, np.ndarray]:
    with np.load(path / "arrays.npz") as z:
        return {k: z[k] for k in z.files}


def test_save_best_writes_the_validation_winner_and_a_command_that_rebuilds_it_exactly(tuned, small_dir, tmp_path):
    out, printed = tuned
    tuning = json.loads((out / "tune.json").read_text())["tuning"]
    winner = max(tuning, key=lambda lb: tuning[lb]["best_value"])
    assert tuning["itemknn"]["best_params"]["k"] == 50  # held fixed by --param itemknn.k=50, never tuned
    assert all("params_k" not in t for t in tuning["itemknn"]["trials"])
    manifest = json.loads((out / "best" / "manifest.json").read_text())
    assert manifest["model"] == tuning[winner]["model"] and manifest["tuning"]["label"] == winner
    assert manifest["tuning"]["valid_value"] == pytest.approx(tuning[winner]["best_value"])
    command = manifest["tuning"]["command"]
    assert command in printed.replace("\n", "")
    argv = shlex.split(command.replace(str(out / "best"), str(tmp_path / "again")))
    assert argv[:2] == ["zenrec", "train"]
    r = run(*argv[1:])
    assert r.exit_code == 0, r.output
    a, b = _arrays(out / "best"), _arrays(tmp_path / "again")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # the same through --params-from tune.json (the best on validation when no --model is named)
    r = run("train", small_dir, "--params-from", out / "tune.json", "-o", tmp_path / "from-json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "from-json" / "manifest.json").read_text())["params"] == manifest["params"]


def test_train_command_values_read_back_exactly():
    params = {"reg": 123.45678901234567, "dropout": 0.1, "user_weighting": 0.3333333333333333}
    cmd = train_command("my data", "ease", params, "out dir")
    argv = shlex.split(cmd)
    assert argv[2] == "my data" and argv[-1] == "out dir"
    got = _parse_params([argv[i + 1] for i, a in enumerate(argv) if a == "--param"])
    defaults = get_model_class("ease")().config.model_dump()
    # only what differs from the defaults is spelled out, and it reads back to the same floats, bit for bit
    assert got == {k: v for k, v in params.items() if defaults[k] != v}
    assert {**defaults, **got} == {**defaults, **params}


def test_params_from_reads_each_source_and_names_what_is_wrong(tuned, tmp_path):
    out, _ = tuned
    tuning = json.loads((out / "tune.json").read_text())["tuning"]
    assert params_from(out / "tune.json", "itemknn") == ("itemknn", tuning["itemknn"]["best_params"])
    name, params = params_from(out / "best")
    assert params == json.loads((out / "best" / "manifest.json").read_text())["params"]
    (tmp_path / "p.json").write_text(json.dumps({"model": "ease", "params": {"reg": 20.0}}))
    assert params_from(tmp_path / "p.json") == ("ease", {"reg": 20.0})
    cases = [
        (out / "tune.json", "als", "holds no tuning of 'als'; it holds ease, itemknn"),
        (tmp_path / "p.json", "als", "holds parameters of 'ease', not 'als'"),
        (tmp_path / "nothing.json", None, "no such file"),
    ]
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text('{"tuning": {"x": {"model": "ease"}}}')
    cases += [(tmp_path / "bad.json", None, "not a JSON file"), (tmp_path / "list.json", None, "expected a JSON object"),
              (tmp_path / "other.json", None, "not a `zenrec tune --json` file")]
    for path, model, words in cases:
        with pytest.raises(ConfigError, match=None) as e:
            params_from(path, model)
        assert words in str(e.value), (path, str(e.value))
    r = runner.invoke(app, ["train", str(out), "--params-from", str(tmp_path / "bad.json"), "-o", str(tmp_path / "m")])
    assert r.exit_code == 2 and "not a JSON file" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args, words", [
    (["--param", "k=5"], "expects MODEL.NAME=VALUE"),
    (["--param", "als.factors=8"], "'als' is not among the models (pop, itemknn)"),
    (["--param", "itemknn.nope=1"], "no parameter 'nope'"),
])
def test_per_model_parameters_are_checked_before_any_work(small_dir, args, words):
    for cmd in ("compare", "tune"):
        r = runner.invoke(app, [cmd, str(small_dir), "--models", "pop,itemknn", *args])
        assert r.exit_code == 2 and words in r.output, (cmd, r.output)


def test_compare_fits_each_model_with_its_own_parameters(small_dir, tmp_path):
    r = run("compare", small_dir, "--models", "itemknn,ease", "--param", "itemknn.k=7", "--param", "ease.reg=77",
            "--json", tmp_path / "board.json")
    assert r.exit_code == 0, r.output
    rows = {row["label"]: row for row in json.loads((tmp_path / "board.json").read_text())["rows"]}
    assert rows["itemknn"]["params"]["k"] == 7 and rows["ease"]["params"]["reg"] == 77


def test_a_bad_save_best_path_fails_before_tuning(small_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    r = runner.invoke(app, ["tune", str(small_dir), "--models", "ease", "--save-best", str(tmp_path / "taken")])
    assert r.exit_code == 2 and "zenrec did not write" in r.output
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_retrain_keeps_the_served_versions_parameters_unless_told(small_dir, tmp_path):
    ds = Dataset.load(small_dir)
    reg = ModelRegistry(tmp_path / "registry")
    served = train_bundle(ds, "ease", {"reg": 42.0, "dropout": 0.05}, TrainOptions()).save(tmp_path / "served")
    reg.promote(reg.add(served, extra={"last_event_seq": 0}))
    users, items = ds.users.ids(np.arange(20)), ds.items.ids(np.arange(40, 60))
    t = float(ds.interactions.timestamp.max()) + 10
    with EventStore(reg.events_url()) as st:
        st.append([Event(str(u), str(i), "view", 1.0, t + k) for k, (u, i) in enumerate(zip(users, items, strict=True))])

    def params_of(rep) -> dict:
        return json.loads((reg.path(rep.version) / "manifest.json").read_text())["params"]

    rep = retrain(reg.root, base=small_dir, window=3600, promote=False)  # no model named: the served one
    assert rep.model == "ease" and params_of(rep)["reg"] == 42.0 and params_of(rep)["dropout"] == 0.05
    assert any("parameters of the served version" in n for n in rep.notes)
    rep = retrain(reg.root, "ease", {"reg": 99.0}, base=small_dir, window=3600, promote=False)
    assert params_of(rep)["reg"] == 99.0 and params_of(rep)["dropout"] == 0.05
    assert any("with reg changed" in n for n in rep.notes)
    rep = retrain(reg.root, "ease", base=small_dir, window=3600, promote=False, reuse_params=False)
    assert params_of(rep)["dropout"] == 0.2 and params_of(rep)["reg"] == 300.0  # the defaults


def test_auto_saves_the_best_on_validation_within_its_budget(small_dir, tmp_path):
    r = run("auto", small_dir, "--budget", "20", "--trials", "3", "--models", "pop,itemknn,ease",
            "-o", tmp_path / "auto", "--json", tmp_path / "auto.json")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "auto.json").read_text())
    values = {lb: t["best_value"] for lb, t in rep["tuning"].items()}
    assert rep["best"] == max(values, key=values.get) and values[rep["best"]] > values["pop"]
    # the budget: every model's study ran within its share, bar the one trial that was running at its end
    spent = sum(t["seconds"] for t in rep["tuning"].values())
    longest = max(row["seconds"] for t in rep["tuning"].values() for row in t["trials"])
    assert spent <= 20 + len(values) * longest
    bundle = ModelBundle.load(tmp_path / "auto")
    assert bundle.model.name == rep["tuning"][rep["best"]]["model"]
    assert "reproduce it with" in r.output and "zenrec train" in r.output
