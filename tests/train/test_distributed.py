"""Distributed training (DistributedDataParallel under torchrun): sharding, the loop on 2 real processes, and
SASRec / the two-tower trained on 2 processes against one process with the same effective batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zenrec.errors import ConfigError
from zenrec.train.distributed import shard, shard_steps

HERE = Path(__file__).resolve().parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# ------------------------------------------------------------------ sharding
@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 300), batch=st.integers(1, 40), world=st.integers(1, 5))
def test_shard_trains_each_example_at_most_once_in_equal_steps(n, batch, world):
    perm = np.random.default_rng(n).permutation(n)
    parts = [list(shard(perm, batch, r, world)) for r in range(world)]
    steps = shard_steps(n, batch, world)
    assert all(len(p) == steps for p in parts)  # every process steps as often: no collective waits forever
    seen = np.concatenate([np.concatenate(p) for p in parts if p] or [np.empty(0, np.int64)])
    assert len(np.unique(seen)) == len(seen)  # nothing twice
    left = n - len(seen)
    assert left == (n % (batch * world) if n % (batch * world) < world else 0)  # only a sliver waits
    for p in parts:
        assert all(0 < len(b) <= batch for b in p)
        if steps:  # the full steps are batch-sized; the last one shares the rest evenly
            assert all(len(b) == batch for b in p[:-1])
    if steps:
        sizes = [len(p[-1]) for p in parts]
        assert max(sizes) - min(sizes) <= 1


def test_the_module_examples_hold():
    import doctest

    import zenrec.train.distributed as distributed

    assert doctest.testmod(distributed).failed == 0


def test_shard_deals_batch_b_to_process_b_mod_world():
    perm = np.arange(20)
    assert [b.tolist() for b in shard(perm, 3, 0, 2)] == [[0, 1, 2], [6, 7, 8], [12, 13, 14], [18]]
    assert [b.tolist() for b in shard(perm, 3, 1, 2)] == [[3, 4, 5], [9, 10, 11], [15, 16, 17], [19]]


# ----------------------------------------------------------- the loop itself
@pytest.mark.slow
def test_two_processes_train_exactly_as_one_with_the_effective_batch_and_stop_together(tmp_path):
    """The loop on 2 gloo processes (batch 8 each) ends with the same weights as one process with batch 16 on the
    same examples per step: gradients are averaged, process 0's start is everyone's, its validation decides."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(HERE))
    try:
        import ddp_toy
    finally:
        sys.path.remove(str(HERE))
    from zenrec.train.loop import fit_loop

    proc = subprocess.run([*TORCHRUN, str(HERE / "ddp_toy.py"), str(tmp_path), "3"], capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # validation peaks at epoch 2 (0.6); patience 3 stops after epoch 5 in both processes
    assert [r["epochs"] for r in ranks] == [5, 5] and [r["ran"] for r in ranks] == [[0, 1, 2, 3, 4]] * 2
    assert ranks[0]["best_epoch"] == ranks[1]["best_epoch"] == 2 and ranks[1]["best_value"] == 0.6
    assert ranks[1]["valid"] == [0.5, 0.6, 0.4, 0.3, 0.2]  # measured by process 0, broadcast
    assert ranks[0]["weight"] == ranks[1]["weight"] and ranks[0]["bias"] == ranks[1]["bias"]

    x, y = ddp_toy.data()
    net = ddp_toy.make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    perm_gen = torch.Generator().manual_seed(1)

    def batches(epoch):
        perm = torch.randperm(len(x), generator=perm_gen)
        for s in range(0, len(perm), 16):
            yield x[perm[s : s + 16]], y[perm[s : s + 16]]

    values = iter([0.5, 0.6, 0.4, 0.3, 0.2])
    one = fit_loop(net, opt, batches, lambda b: ddp_toy.loss_of(net, *b), 8, lambda: next(values), 3)
    assert one.epochs == 5 and one.best_epoch == 2
    np.testing.assert_allclose(ranks[0]["weight"], net.weight.detach().ravel().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ranks[0]["bias"], float(net.bias.detach()), rtol=1e-5, atol=1e-6)
    moved = np.abs(np.asarray(ranks[0]["weight"]) - ddp_toy.make_net().weight.detach().ravel().numpy()).max()
    assert moved > 0.1  # it trained: the comparison is not between two untouched starts


# ------------------------------------------------------------- refusals
def test_differential_privacy_refuses_several_processes(monkeypatch, ml100k_small):
    pytest.importorskip("torch")
    from zenrec.models import create_model

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="lmf with dp_epsilon does not train on several processes"):
        create_model("lmf", dp_epsilon=5.0, epochs=1).fit(ml100k_small.train)


def test_a_world_without_torchrun_environment_is_a_clear_error(monkeypatch, ml100k_small):
    pytest.importorskip("torch")
    from zenrec.models import create_model

    monkeypatch.setenv("WORLD_SIZE", "2")
    for k in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ConfigError, match="WORLD_SIZE=2 but RANK, MASTER_ADDR, MASTER_PORT not set: start distributed"):
        create_model("lmf", epochs=1).fit(ml100k_small.train)


# ------------------------------------------- real models on 2 processes
#: the same effective batch: 2 processes × batch_size vs one process × 2 · batch_size; no dropout, so the two runs
#: differ only in how the gradients of a step are summed (their epochs see the same examples in the same steps)
SASREC = {"max_len": 20, "factors": 32, "all_windows": False, "dropout": 0.0, "epochs": 8, "patience": 50}
TWOTOWER = {"factors": 32, "hidden": 32, "history_len": 20, "id_dropout": 0.0, "dropout": 0.0, "lr": 0.01,
            "epochs": 4, "patience": 50}


@pytest.fixture(scope="module")
def ml100k_slice(ml100k, tmp_path_factory) -> Path:
    """ml-100k's 300 most popular items and the users with ≥ 10 events on them (939 users, 60,791 events), saved
    as a dataset directory."""
    import pandas as pd

    from zenrec.data.dataset import Dataset
    from zenrec.data.schema import ColumnMap

    inter = ml100k.interactions
    counts = np.bincount(inter.item, minlength=inter.n_items)
    top = np.argsort(-counts, kind="stable")[:300]
    rows = np.isin(inter.item, top)
    per_user = np.bincount(inter.user[rows], minlength=inter.n_users)
    rows &= per_user[inter.user] >= 10
    df = pd.DataFrame({"user_id": inter.user[rows], "item_id": inter.item[rows], "ts": inter.timestamp[rows]})
    path = tmp_path_factory.mktemp("ddp") / "data"
    Dataset.from_frame(df, ColumnMap(timestamp="ts")).save(path)
    return path


def _ndcg_of_loaded(path: Path, data: Path, sequential: bool, seed: int) -> tuple[float, dict]:
    """Validation NDCG@10 of a saved model recomputed in this process, on the slice its training held out."""
    from zenrec.data.dataset import Dataset
    from zenrec.evaluate.evaluator import validation_ndcg
    from zenrec.models import load_model
    from zenrec.train.holdout import hold_out

    model, manifest, _ = load_model(path)
    part = hold_out(Dataset.load(data).interactions, sequential, seed=seed)
    return validation_ndcg(lambda users: model.score(users, history=part.train), part.valid, part.train), manifest


def _close(two: float, one: float) -> None:
    assert abs(two - one) <= 0.05 * one, f"2 processes: NDCG@10 {two:.4f}; 1 process: {one:.4f}"


@pytest.mark.slow
def test_sasrec_on_two_processes_matches_one_process_and_its_checkpoint_loads_in_one(ml100k_slice, tmp_path):
    pytest.importorskip("torch")
    from zenrec.data.dataset import Dataset
    from zenrec.models import TrainOptions, create_model

    seed = 7
    proc = subprocess.run([*TORCHRUN, str(HERE / "ddp_fit.py"), str(ml100k_slice),
                           json.dumps({"sasrec": {**SASREC, "batch_size": 64}}), str(seed), str(tmp_path)],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"sasrec.rank{r}.json").read_text()) for r in (0, 1)]
    two = ranks[0]["training"]
    assert two["processes"] == 2 and two["effective_batch_size"] == 128 and two["epochs"] == 8
    assert ranks[1] == ranks[0]  # every process returns process 0's model and summary
    one = create_model("sasrec", **SASREC, batch_size=128).fit(
        Dataset.load(ml100k_slice).interactions, None, TrainOptions(seed=seed, threads=1)).training_
    assert one["valid_ndcg@10"] > 0.12  # it learnt (popularity is far below)
    _close(two["valid_ndcg@10"], one["valid_ndcg@10"])

    again, manifest = _ndcg_of_loaded(tmp_path / "sasrec", ml100k_slice, True, seed)
    assert manifest["training"]["processes"] == 2
    assert again == pytest.approx(two["valid_ndcg@10"], abs=1e-6)  # the weights saved are the ones validated


@pytest.mark.slow
def test_zenrec_train_nproc_2_trains_the_two_tower_like_one_process(ml100k_slice, tmp_path):
    """`zenrec train --nproc 2` end to end: torchrun started by the command, process 0 prints and writes."""
    pytest.importorskip("torch")
    from zenrec.data.dataset import Dataset
    from zenrec.models import TrainOptions
    from zenrec.models.bundle import train_bundle

    out = tmp_path / "m"
    cmd = [sys.executable, "-m", "zenrec.cli", "train", str(ml100k_slice), "--model", "twotower", "--nproc", "2",
           "-o", str(out), *[a for k, v in {**TWOTOWER, "batch_size": 512}.items() for a in ("-p", f"{k}={v}")]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training on 2 processes: torchrun --standalone --nproc-per-node 2 -m zenrec.cli train" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.count("twotower: trained 4 of at most 4 epochs on 2 processes (effective batch 1024)") == 1
    assert proc.stdout.count(f"wrote {out}") == 1  # once: process 0 writes and says so
    epochs = [x for x in proc.stderr.splitlines() if x.startswith("twotower epoch ")]
    assert len([x for x in epochs if " done " in x]) == 4  # progress lines from process 0 only

    two, manifest = _ndcg_of_loaded(out, ml100k_slice, False, 2020)
    assert manifest["training"]["processes"] == 2
    assert two == pytest.approx(manifest["training"]["valid_ndcg@10"], abs=1e-6)
    one = train_bundle(Dataset.load(ml100k_slice), "twotower", {**TWOTOWER, "batch_size": 1024},
                       TrainOptions(seed=2020, threads=1)).model.training_
    assert one["valid_ndcg@10"] > 0.2
    _close(two, one["valid_ndcg@10"])


@pytest.mark.slow
def test_launch_names_a_failed_process_and_shows_its_own_error(monkeypatch):
    """Processes other than 0 write to log files (each message once on the terminal); when one of them fails,
    the others are stopped and the error says which one and why, from its log."""
    pytest.importorskip("torch")
    import time

    from zenrec.train.distributed import launch

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"^distributed training failed: process 1 of 2 exited with code 3: "
                                          r"error: process one broke$"):
        launch(2, [], module="ddp_fail")
    assert time.perf_counter() - t0 < 100  # process 0 was stopped, not waited for
    with pytest.raises(ConfigError, match="nproc must be at least 1; got 0"):
        launch(0, [])


@pytest.mark.slow
def test_every_other_torch_model_trains_on_two_processes(small_log, tmp_path):
    """LogisticMF, GRU4Rec, BERT4Rec and the multi-task model (also without its wide part and user embeddings:
    parameters its loss never uses) train under torchrun; each process returns process 0's model."""
    pytest.importorskip("torch")
    from zenrec.models import get_model_class, load_model
    from zenrec.models.registry import available_models

    models = {"lmf": {"epochs": 2}, "gru4rec": {"epochs": 2, "max_len": 10}, "bert4rec": {"epochs": 2, "max_len": 10},
              "multitask": {"epochs": 2, "wide": False, "user_embedding": False}}
    torch_models = {n for n in available_models() if get_model_class(n).uses_torch}
    assert torch_models == {*models, "sasrec", "twotower"}  # a new torch model joins this test
    proc = subprocess.run([*TORCHRUN, str(HERE / "ddp_fit.py"), str(small_log), json.dumps(models), "3",
                           str(tmp_path)], capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in models:
        ranks = [json.loads((tmp_path / f"{name}.rank{r}.json").read_text()) for r in (0, 1)]
        assert ranks[0] == ranks[1], name
        assert ranks[0]["training"]["processes"] == 2 and ranks[0]["training"]["epochs"] == 2, name
        assert np.isfinite(ranks[0]["scores"]).all(), name
        model, manifest, _ = load_model(tmp_path / name)
        np.testing.assert_allclose(model.score(np.arange(5)), ranks[0]["scores"], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> Path:
    """300 users × 60 items, 20 events each, with click and purchase events (the multi-task model's labels)."""
    import pandas as pd

    from zenrec.data.dataset import Dataset
    from zenrec.data.schema import ColumnMap

    rng = np.random.default_rng(0)
    u = np.repeat(np.arange(300), 20)
    taste = (u % 3) * 20
    items = taste + rng.integers(0, 20, len(u))
    event = np.where(rng.random(len(u)) < 0.3, "purchase", "click")
    df = pd.DataFrame({"user_id": u, "item_id": items, "ts": np.tile(np.arange(20), 300), "event": event})
    path = tmp_path_factory.mktemp("small") / "data"
    Dataset.from_frame(df, ColumnMap(timestamp="ts", event="event")).save(path)
    return path
