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


# ------------------------------------------------------- --nproc (distributed training)
@pytest.mark.parametrize("value", ["0", "-3"])
def test_nproc_below_one_is_refused_before_anything_runs(small, tmp_path, value):
    r = run("train", small, "--model", "sasrec", "--nproc", value, "-o", tmp_path / "m")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"error: --nproc must be a positive number of processes; got {value}" in r.stderr
    assert not (tmp_path / "m").exists()


def test_nproc_that_is_no_number_is_a_usage_error(small, tmp_path):
    r = run("train", small, "--model", "sasrec", "--nproc", "two", "-o", tmp_path / "m", env={"COLUMNS": "200"})
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "Invalid value for '--nproc': Input should be a valid integer" in r.stderr


def test_nproc_needs_a_model_with_a_torch_training_loop(small, tmp_path):
    r = run("train", small, "--model", "ease", "--nproc", "2", "-o", tmp_path / "m")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "error: ease does not train on several processes (it has no PyTorch training loop); --nproc and " \
           "torchrun train " in r.stderr
    assert "sasrec" in r.stderr and not (tmp_path / "m").exists()


def test_nproc_refuses_differential_privacy_and_bad_parameters_before_starting_processes(small, tmp_path):
    pytest.importorskip("torch")
    r = run("train", small, "--model", "lmf", "-p", "dp_epsilon=5", "--nproc", "2", "-o", tmp_path / "m")
    assert r.exit_code == 2 and "error: lmf with dp_epsilon does not train on several processes" in r.stderr
    assert "training on 2 processes" not in r.stderr
    bad = run("train", small, "--model", "sasrec", "-p", "nope=1", "--nproc", "2", "-o", tmp_path / "m")
    assert bad.exit_code == 2 and "SASRec has no parameter 'nope'" in bad.stderr
    assert "training on 2 processes" not in bad.stderr


def test_nproc_above_the_cores_is_refused(small, tmp_path):
    pytest.importorskip("torch")
    r = run("train", small, "--model", "sasrec", "--nproc", "4096", "-o", tmp_path / "m")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert re.search(r"error: --nproc 4096 is more than the \d+ (cores this process may use|GPUs here)", r.stderr)


def test_under_torchrun_nproc_and_closed_form_models_are_refused(small, tmp_path):
    """A process torchrun started (WORLD_SIZE > 1) must not start torchrun again, nor fit EASE N times."""
    env = {"WORLD_SIZE": "2", "RANK": "0"}
    again = run("train", small, "--model", "sasrec", "--nproc", "2", "-o", tmp_path / "m", env=env)
    assert again.exit_code == 2 and "already runs under torchrun (WORLD_SIZE=2): leave --nproc out" in again.stderr
    ease = run("train", small, "--model", "ease", "-o", tmp_path / "m", env=env)
    assert ease.exit_code == 2 and "error: ease does not train on several processes" in ease.stderr


@pytest.mark.slow
def test_nproc_with_a_folder_that_is_no_dataset_fails_once_and_clearly(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "zenrec.cli", "train", str(tmp_path / "empty"), "--model", "sasrec",
                           "--nproc", "2", "-o", str(tmp_path / "m")], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "empty: no manifest.json; this is not a saved zenrec dataset" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    # process 0 printed the reason (or, when process 1 failed first, the launcher quotes its log)
    assert re.match(r"error: distributed training failed: process [01] of 2 exited with code 2", last), last
    assert not (tmp_path / "m").exists()
