"""`zenrec train` / `compare`: validation by default, progress on stderr, cost estimates of large fits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from zenrec.cli import app

runner = CliRunner()


def run(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


def _dataset(path: Path, n_users: int, n_items: int, per_user: int) -> Path:
    from zenrec.data.dataset import Dataset
    from zenrec.data.schema import ColumnMap

    rng = np.random.default_rng(0)
    u = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, n_items, len(u))
    items[:n_items] = np.arange(n_items)  # every item occurs
    df = pd.DataFrame({"user_id": u, "item_id": items, "ts": np.tile(np.arange(per_user), n_users)})
    Dataset.from_frame(df, ColumnMap(timestamp="ts")).save(path)
    return path


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    """400 users on 1,200 items: EASE fits in about a second, so the estimate threshold is lowered to see it."""
    return _dataset(tmp_path_factory.mktemp("wide") / "data", 400, 1200, 15)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("small") / "data", 60, 40, 12)


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def test_train_prints_the_estimate_of_a_large_fit_on_stderr(wide, tmp_path):
    r = run("train", wide, "--model", "ease", "-o", tmp_path / "m", env={"ZENREC_ESTIMATE_SECONDS": "0"})
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stderr.splitlines() if x.startswith("ease on 1,200 items: about "))
    assert re.search(r"about \d+ MB peak memory and \S+ \(estimate; memory: two float32 1,200² matrices", line)
    assert "GFLOP/s, measured by a 1536×1536 Cholesky inverse here" in line
    assert "peak memory" not in r.stdout
    quiet = run("train", wide, "--model", "ease", "-o", tmp_path / "m2",
                env={"ZENREC_ESTIMATE_SECONDS": "1e9", "ZENREC_ESTIMATE_MB": "1e9"})
    assert quiet.exit_code == 0 and "peak memory" not in quiet.output


def test_compare_prints_the_estimate_too(wide):
    r = run("compare", wide, "--models", "ease", "--ks", "10", env={"ZENREC_ESTIMATE_MB": "1"})
    assert r.exit_code == 0, r.output
    assert any(x.startswith("ease on 1,200 items: about ") for x in r.stderr.splitlines())


def test_train_holds_out_validation_and_says_how_it_trained(small, tmp_path):
    pytest.importorskip("torch")
    r = run("train", small, "--model", "lmf", "-p", "epochs=30", "-p", "patience=2", "-o", tmp_path / "m")
    assert r.exit_code == 0, r.output
    t = _manifest(tmp_path / "m")["training"]
    assert t["max_epochs"] == 30 and t["best_epoch"] is not None and t["validation"].startswith("a random 10%")
    assert f"lmf: trained {t['epochs']} of at most 30 epochs" in r.stdout
    # stderr is no terminal here: plain progress lines, one per epoch at least
    epochs = [x for x in r.stderr.splitlines() if re.match(r"lmf epoch \d+/30 step (\d+)/\1 .* valid ndcg@10", x)]
    assert len(epochs) == t["epochs"]


def test_no_validation_trains_every_epoch_and_says_so(small, tmp_path):
    pytest.importorskip("torch")
    r = run("train", small, "--model", "lmf", "--no-validation", "-p", "epochs=3", "-o", tmp_path / "m")
    assert r.exit_code == 0, r.output
    assert "note: lmf trains without validation: all 3 epochs, no early stopping" in r.stderr
    t = _manifest(tmp_path / "m")["training"]
    assert (t["epochs"], t["best_epoch"], t["validation"]) == (3, None, "none (validation=False)")
    ease = run("train", small, "--model", "ease", "--no-validation", "-o", tmp_path / "e")
    assert ease.exit_code == 0 and "note:" not in ease.output  # nothing early-stops: nothing to say


@pytest.mark.slow
def test_sasrec_with_default_parameters_stops_early_on_ml100k_and_shows_progress_off_a_terminal(ml100k, tmp_path):
    """The first-day run: `zenrec train data/ --model sasrec -o m/` with stderr redirected (not a TTY)."""
    pytest.importorskip("torch")
    data, out = tmp_path / "data", tmp_path / "m"
    ml100k.save(data)
    env = {**os.environ, "ZENREC_PROGRESS_INTERVAL": "1"}  # a step line a second inside each epoch
    proc = subprocess.run([sys.executable, "-m", "zenrec.cli", "train", str(data), "--model", "sasrec", "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    t = _manifest(out)["training"]
    assert t["stopped_early"] and t["epochs"] < t["max_epochs"] == 200
    assert t["epochs"] == t["best_epoch"] + _manifest(out)["params"]["patience"]
    assert t["validation"].startswith("each user's last event: 943 events")
    lines = proc.stderr.splitlines()
    epoch_lines = [x for x in lines if re.match(r"sasrec epoch \d+/200 step (\d+)/\1 [\d.]+ it/s .* done loss ", x)]
    assert len(epoch_lines) == t["epochs"]
    assert any(re.match(r"sasrec epoch \d+/200 step \d+/\d+ [\d.]+ it/s .* eta \S+ loss ", x) for x in lines)
    assert f"sasrec: trained {t['epochs']} of at most 200 epochs, stopped early" in proc.stdout
