"""Fit and evaluate zenrec's models on the prepared split files; print JSON lines.

Each (model, repeat) runs in a fresh subprocess so its peak RSS (VmHWM) is
its own.  Hyper-parameters are the models' defaults.  Test metrics mask the
training and validation items; validation metrics mask the training items.

``--fit-on train+valid`` refits on training + validation rows before testing
(the usual protocol when comparing with papers that train on the whole
training file, e.g. the UltraGCN split of ML-1M); LMF then trains for the
number of epochs its early stopping chose on the plain split.

Usage::

    python benchmarks/run_zenrec.py --dataset ml-100k [--models pop,ease] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SPLITS, emit, median_record, peak_rss_mb, run_json_lines, split_files  # noqa: E402

MODELS = ("pop", "itemknn", "ease", "als", "lmf")
KS = (10, 20)
KEEP = ("ndcg@10", "recall@10", "ndcg@20", "recall@20")


def worker(args: argparse.Namespace) -> None:
    from zenrec.data import load_split_files
    from zenrec.evaluate.evaluator import evaluate_split
    from zenrec.models import create_model

    files = split_files(args.splits, args.dataset)
    split, _ = load_split_files(files["train"], files["test"], files["valid"])
    params = {}
    if args.fit_on == "train+valid" and args.model == "lmf" and args.epochs:
        params["epochs"] = args.epochs
    model = create_model(args.model, **params)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    if args.fit_on == "train":
        model.fit(split.train, split.valid)
    else:
        model.fit(split.train_valid, None)
    fit_s = time.perf_counter() - t0
    rec = {
        "library": "zenrec", "model": args.model, "dataset": args.dataset, "fit_on": args.fit_on,
        "params": model.config.model_dump(mode="json"), "fit_s": round(fit_s, 3),
        "rss_before_fit_mb": round(rss_before, 1),
    }
    if hasattr(model, "epochs_trained_"):
        rec["epochs"] = int(model.epochs_trained_)
    if args.fit_on == "train":
        v = evaluate_split(model, split, "valid", ks=KS, metrics=("ndcg", "recall"), beyond=False)
        rec["valid"] = {k: round(v.metrics[k], 5) for k in KEEP}
    t1 = time.perf_counter()
    r = evaluate_split(model, split, "test", ks=KS, metrics=("ndcg", "recall"), beyond=False)
    rec["eval_s"] = round(time.perf_counter() - t1, 3)
    rec["test"] = {k: round(r.metrics[k], 5) for k in KEEP}
    rec["test_users"] = r.n_users
    rec["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(rec)


def run(dataset: str, models: list[str], repeats: int = 1, splits: Path = SPLITS,
        fit_on: tuple[str, ...] = ("train",), timeout: float = 1800) -> list[dict]:
    """Run every model in its own subprocess(es); one median record per (model, fit_on)."""
    results = []
    for name in models:
        epochs = None
        for mode in fit_on:
            if mode != "train" and name == "lmf":
                continue  # an early-stopped model: its refit would double the longest run
            cmd = [sys.executable, __file__, "--worker", "--dataset", dataset, "--model", name,
                   "--splits", str(splits), "--fit-on", mode]
            if epochs:
                cmd += ["--epochs", str(epochs)]
            runs = []
            for _ in range(repeats):
                runs.extend(run_json_lines(cmd, timeout=timeout))
            rec = median_record(runs, metrics=True)
            if "error" in rec:
                rec = {"library": "zenrec", "model": name, "dataset": dataset, "fit_on": mode, **rec}
            epochs = rec.get("epochs", epochs)
            emit(rec)
            results.append(rec)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--splits", type=Path, default=SPLITS)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--fit-on", default="train", help="comma list of: train, train+valid")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per model run")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return
    run(args.dataset, args.models.split(","), args.repeats, args.splits, tuple(args.fit_on.split(",")),
        args.timeout)


if __name__ == "__main__":
    main()
