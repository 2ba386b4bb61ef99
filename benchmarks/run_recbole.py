"""RecBole 1.2.1 (Pop, ItemKNN, EASE, BPR, NeuMF, MultiVAE) on the prepared split files.

Two roles in one file:

* driver (any Python ≥ 3.10, standard library only): runs one worker per
  (model, configuration) in ``benchmarks/.venv-recbole`` (made by
  ``benchmarks/setup_peers.sh``), searches a small grid on validation
  NDCG@10 for the cheap closed-form models, prints one JSON line per model.
* worker (``--worker``, RecBole's venv): RecBole reads exactly the split
  files through ``benchmark_filename: [train, valid, test]``; full ranking,
  training items masked for validation, training + validation for test;
  embedding size 64; early stopping on validation NDCG@10 with
  ``stopping_step`` 10; epochs capped and a wall-clock cap per model (the
  run stops after the first validation past the cap; the best checkpoint so
  far is tested).  Metrics are RecBole's own.

Two run-time shims from shared/PEERS.md are applied in the worker, without
editing the package: ``torch.load`` defaults to ``weights_only=False``
(RecBole's checkpoints hold its Config) and ``scipy.sparse.dok_matrix._update``
exists again (newer SciPy removed it).

Usage::

    python benchmarks/run_recbole.py --dataset ml-100k [--models EASE,BPR] [--max-epochs 300] [--wall-cap 600]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, SPLITS, WORK, emit, median_record, peak_rss_mb, run_json_lines, split_files  # noqa: E402

VENV_PY = HERE / ".venv-recbole" / "bin" / "python"
MODELS = ("Pop", "ItemKNN", "EASE", "BPR", "NeuMF", "MultiVAE")
NEURAL = {"BPR", "NeuMF", "MultiVAE"}
# Validation grids for the cheap models (the values PEERS.md found best on ml-100k included).
GRIDS = {
    "ItemKNN": {"k": [100, 200], "shrink": [0.0]},
    "EASE": {"reg_weight": [250.0, 500.0, 1000.0]},
}


# ----------------------------------------------------------------------------- worker (RecBole venv)
def _shims() -> None:
    import scipy.sparse as sp
    import torch

    orig_load = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return orig_load(*args, **kwargs)

    torch.load = load
    if not hasattr(sp.dok_matrix, "_update"):
        def _update(self, data):
            if hasattr(self, "_dict"):
                self._dict.update(data)
            else:
                for k, v in data.items():
                    self[k] = v

        sp.dok_matrix._update = _update


def worker(args: argparse.Namespace) -> None:
    _shims()
    import recbole
    import recbole.trainer.trainer as rtrainer
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed
    from recbole.utils import utils as rutils

    files = split_files(args.splits, args.dataset)
    workdir = WORK / "recbole" / args.dataset
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # RecBole writes log/ and saved/ into the working directory
    params = json.loads(args.params or "{}")
    # RecBole reads `<data_path>/<name>/<name>.<part>.inter`, but for the name "ml-100k" it always
    # reads its bundled copy instead; link the split files under a name of our own.
    rb_name = f"{args.dataset}-split"
    data_dir = workdir / "data" / rb_name
    data_dir.mkdir(parents=True, exist_ok=True)
    for part, f in files.items():
        link = data_dir / f"{rb_name}.{part}.inter"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(f)
    config_dict = {
        "data_path": str(workdir / "data"),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
        "metrics": ["Recall", "NDCG"],
        "topk": [10, 20],
        "valid_metric": "NDCG@10",
        "embedding_size": 64,
        "mf_embedding_size": 64,
        "mlp_embedding_size": 64,
        "epochs": args.max_epochs,
        "stopping_step": 10,
        "use_gpu": False,
        "device": "cpu",
        "seed": args.seed,
        "reproducibility": True,
        "show_progress": False,
        "checkpoint_dir": str(workdir / "saved"),
        "state": "WARNING",
        **params,
    }
    t_load = time.perf_counter()
    config = Config(model=args.model, dataset=rb_name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    load_s = time.perf_counter() - t_load

    # wall-clock cap: the first validation after the cap stops training
    start = [None]
    cap = float(args.wall_cap)
    capped = [False]
    orig_es = rutils.early_stopping

    def early_stopping(value, best, cur_step, max_step, bigger=True):
        best, cur_step, stop, update = orig_es(value, best, cur_step, max_step, bigger)
        if cap > 0 and time.perf_counter() - start[0] > cap and not stop:
            stop, capped[0] = True, True
        return best, cur_step, stop, update

    rtrainer.early_stopping = early_stopping

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    rss_before = peak_rss_mb()
    # EASE and ItemKNN do all their work in the constructor: time it as part of fitting
    t_init = time.perf_counter()
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    init_s = time.perf_counter() - t_init
    start[0] = time.perf_counter()
    _, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    fit_s = init_s + time.perf_counter() - start[0]
    t1 = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    eval_s = time.perf_counter() - t1
    keep = ("ndcg@10", "recall@10", "ndcg@20", "recall@20")
    rec = {
        "library": "recbole", "version": recbole.__version__, "model": args.model, "dataset": args.dataset,
        "fit_on": "train", "params": params, "load_s": round(load_s, 3), "init_s": round(init_s, 3),
        "fit_s": round(fit_s, 3),
        "eval_s": round(eval_s, 3), "epochs": len(trainer.train_loss_dict),
        "max_epochs": args.max_epochs, "wall_cap_s": cap, "hit_wall_cap": capped[0],
        "rss_before_fit_mb": round(rss_before, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "valid": {k: round(float(best_valid[k]), 5) for k in keep} if best_valid else None,
        "test": {k: round(float(test[k]), 5) for k in keep},
        "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1),
    }
    # remove checkpoints (a few MB each)
    for f in (workdir / "saved").glob("*.pth"):
        f.unlink()
    emit(rec)


# ----------------------------------------------------------------------------- driver
def run(dataset: str, models: list[str], repeats: int = 1, splits: Path = SPLITS, max_epochs: int = 300,
        wall_cap: float = 600, seed: int = 2020, tune: bool = True) -> list[dict]:
    if not VENV_PY.exists():
        sys.exit(f"{VENV_PY} missing: run `bash benchmarks/setup_peers.sh recbole` first")
    split_files(splits, dataset)
    log = WORK / "recbole" / f"{dataset}.log"
    results = []
    for model in models:
        grid = GRIDS.get(model, {})
        configs = [dict(zip(grid, vals, strict=True)) for vals in itertools.product(*grid.values())] or [{}]
        if not tune:
            configs = configs[:1]
        epochs = max_epochs if model in NEURAL else 1

        def one(params: dict, model: str = model, epochs: int = epochs) -> dict:
            cmd = [str(VENV_PY), __file__, "--worker", "--dataset", dataset, "--model", model,
                   "--splits", str(splits), "--params", json.dumps(params), "--max-epochs", str(epochs),
                   "--wall-cap", str(wall_cap if model in NEURAL else 0), "--seed", str(seed)]
            recs = run_json_lines(cmd, timeout=(wall_cap + 1800) if model in NEURAL else 1800, log=log)
            return recs[-1] if recs else {"error": "no output"}

        tried = []
        for params in configs:
            r = one(params)
            tried.append(r)
            if "error" in r:
                emit({"library": "recbole", "model": model, "dataset": dataset, "params": params, **r})
        ok = [r for r in tried if "error" not in r and r.get("valid")]
        if not ok:
            continue
        best = max(ok, key=lambda r: r["valid"]["ndcg@10"])
        runs = [best] + [one(best["params"]) for _ in range(repeats - 1)]
        rec = median_record(runs)
        rec["grid_size"] = len(configs)
        emit(rec)
        results.append(rec)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--splits", type=Path, default=SPLITS)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--max-epochs", type=int, default=300, help="epoch cap of the neural models")
    ap.add_argument("--wall-cap", type=float, default=600, help="seconds of training per neural model")
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.splits = args.splits.resolve()
    if args.worker:
        worker(args)
        return
    run(args.dataset, args.models.split(","), args.repeats, args.splits, args.max_epochs, args.wall_cap,
        args.seed, not args.no_tune)


if __name__ == "__main__":
    main()
