"""Large catalogues in training: sampled softmax (logQ-corrected) at up to 1M items, and its quality on ml-100k.

(a) **catalogue** — a synthetic catalogue of ``--items`` items (power-law popularity: item of rank r drawn with
    probability ∝ 1/(r + 10), ranks shuffled over the ids), ``--users`` users and ``--events`` events (each user's
    events in time order). SASRec and the two-tower train with ``loss="sampled"`` for ``--epochs`` epochs (the
    default 10 % validation hold-out, so early-stopping's full-ranking validation is measured too), each in a fresh
    process: peak RSS (VmHWM) and seconds per epoch. The same run at ``--base-items`` items gives the part of the
    memory that does not grow with the catalogue; the stated bound adds what does (:func:`bound_bytes`), and the
    benchmark fails when a measurement exceeds it.
(b) **quality** — ``loss="sampled"`` against the full softmax on bundled ml-100k: the two-tower on the general
    protocol, SASRec on the sequential one (leave-last-out); test NDCG@10 per seed, the mean difference and its
    spread.

    python benchmarks/bench_catalogue.py --write-docs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "scaling.md"
#: every child's record, one JSON line each; ``--reuse`` renders from the latest record of each run
RECORDS = HERE / ".work" / "catalogue.jsonl"
sys.path.insert(0, str(HERE))
from _common import context_line, load_words, machine, peak_rss_mb, write_doc_section  # noqa: E402

#: model → (registry name, config for the catalogue run)
CATALOGUE = {
    "sasrec": ("sasrec", {"loss": "sampled", "batch_size": 256, "negatives": 256, "max_len": 20, "factors": 64,
                          "patience": 100}),
    "twotower": ("twotower", {"loss": "sampled", "batch_size": 1024, "negatives": 1024, "factors": 64,
                              "history_len": 20, "patience": 100}),
}
#: bytes per item and per factor of one trained id table: weights, gradient, Adam's two moments, and the copy of
#: the best epoch's weights the early-stopping loop keeps (5 float32 copies)
TABLE_COPIES = 5
#: item-sized id tables of each model: SASRec's item embedding; the two-tower's item tower and its user tower's
#: history embedding
ITEM_TABLES = {"sasrec": 1, "twotower": 2}
#: bytes per item of the per-item vectors (popularity, logQ, sampler probabilities, counts, seen flags) — generous
PER_ITEM_ARRAYS = 64
#: bytes per scored (user, item) cell of one evaluation block: scores, their copy, the NaN mask, top-k work
EVAL_CELL = 24


def eval_block_cells(n_items: int) -> int:
    """Cells of the evaluator's scoring block: clip(2^24 / n_items, 64, 8192) users × n_items (evaluate/evaluator)."""
    return int(np.clip((1 << 24) // max(n_items, 1), 64, 8192)) * n_items


def bound_bytes(model: str, n_items: int, factors: int) -> int:
    """The memory that grows with the catalogue, in bytes: id tables × 5 copies, the two-tower's published item
    vectors (and their concatenation), the per-item vectors and one evaluation block."""
    tables = ITEM_TABLES[model] * TABLE_COPIES * 4 * factors * (n_items + 2)
    published = 2 * 4 * factors * n_items if model == "twotower" else 0
    return tables + published + PER_ITEM_ARRAYS * n_items + EVAL_CELL * eval_block_cells(n_items)


def synthetic(n_items: int, n_users: int, n_events: int, seed: int):
    """Power-law catalogue interactions (see the module docstring)."""
    from zenrec.data import Interactions

    rng = np.random.default_rng(seed)
    w = 1.0 / (np.arange(n_items) + 10.0)
    rank = rng.choice(n_items, size=n_events, p=w / w.sum())
    item = rng.permutation(n_items)[rank]
    user = rng.integers(0, n_users, n_events)
    return Interactions(user, item, n_users, n_items, timestamp=rng.permutation(n_events))


def one_run(args: argparse.Namespace) -> dict:
    """One model on one catalogue in this process."""
    from zenrec.models import TrainOptions, create_model

    inter = synthetic(args.items, args.users, args.events, args.seed)
    name, params = CATALOGUE[args.one]
    model = create_model(name, **params, epochs=args.epochs)
    t = time.perf_counter()
    model.fit(inter, None, TrainOptions(seed=args.seed, threads=args.threads))
    wall = time.perf_counter() - t
    hist = model.train_history_
    train_s = [b["train_seconds"] - a["train_seconds"] for a, b in zip([{"train_seconds": 0.0}, *hist[:-1]], hist, strict=True)]
    return {"model": args.one, "items": args.items, "users": args.users, "events": args.events,
            "epochs": len(hist), "fit_s": wall, "epoch_train_s": statistics.median(train_s),
            "epoch_s": wall / max(len(hist), 1), "peak_mb": peak_rss_mb(), "factors": params["factors"],
            "valid": model.training_.get("valid_ndcg@10"), "load": os.getloadavg()[0]}


def _key(rec: dict) -> tuple:
    return (rec["model"], rec.get("items"), rec.get("loss"), rec.get("seed"), rec.get("max_epochs"))


def recorded(key: tuple) -> dict | None:
    """The latest saved record of a run (``--reuse``)."""
    if not RECORDS.exists():
        return None
    found = [r for r in map(json.loads, RECORDS.read_text().splitlines()) if _key(r) == key]
    return found[-1] if found else None


def save(rec: dict) -> dict:
    RECORDS.parent.mkdir(parents=True, exist_ok=True)
    with RECORDS.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), file=sys.stderr)
    return rec


def run_child(args: argparse.Namespace, model: str, items: int) -> dict:
    if args.reuse and (rec := recorded((model, items, None, None, None))) is not None:
        return rec
    cmd = [sys.executable, __file__, "--one", model, "--items", str(items), "--users", str(args.users),
           "--events", str(args.events), "--epochs", str(args.epochs), "--threads", str(args.threads),
           "--seed", str(args.seed)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if out.returncode != 0:
        raise SystemExit(f"{model} at {items} items failed:\n{out.stderr[-3000:]}")
    return save(json.loads(out.stdout.strip().splitlines()[-1]))


def catalogue_part(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    rows, failures, loads = [], [], []
    for model in args.models:
        base = run_child(args, model, args.base_items)
        big = run_child(args, model, args.items)
        loads += [base["load"], big["load"]]
        f = big["factors"]
        grow = bound_bytes(model, args.items, f) - bound_bytes(model, args.base_items, f)
        bound_mb = base["peak_mb"] + grow / 2**20  # peak_rss_mb: MiB
        ok = big["peak_mb"] <= bound_mb
        if not ok:
            failures.append(f"{model}: peak {big['peak_mb']:.0f} MB > bound {bound_mb:.0f} MB")
        full_logits = 4 * args.items * CATALOGUE[model][1]["batch_size"] * (20 if model == "sasrec" else 1)
        rows.append(f"| {model} | {args.items:,} | {big['epochs']} | {big['epoch_train_s']:.1f} s | "
                    f"{big['epoch_s']:.1f} s | {base['peak_mb']:,.0f} MB | {big['peak_mb']:,.0f} MB | "
                    f"{bound_mb:,.0f} MB | {'yes' if ok else '**no**'} | {full_logits / 2**30:,.1f} GiB |")
    lines = [
        f"## Large catalogues: sampled softmax at {args.items:,} items", "",
        context_line(f"{machine()}. Synthetic catalogue: {args.items:,} items (popularity ∝ 1/(rank + 10)), "
                     f"{args.users:,} users, {args.events:,} events, seed {args.seed}; {args.epochs} epochs, "
                     f"{args.threads} threads, the default 10 % validation hold-out (full ranking over every "
                     f"item each epoch). One fresh process per row; {load_words(loads, args.threads)}."), "",
        "| model | items | epochs | train per epoch | epoch incl. validation | peak RSS at "
        f"{args.base_items:,} items | peak RSS | bound | within | full-softmax logits of one batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        *rows, "",
        context_line(
            "The bound: peak RSS at the small catalogue (everything that does not grow with items: users, events, "
            "windows, the network) plus what grows with n items of d factors: each id table 5 × 4 · d · n bytes "
            "(weights, dense gradient, Adam's two moments, the best epoch's copy; SASRec has one such table, the "
            "two-tower two: its item tower's and its history embedding), the two-tower's published item "
            "vectors 2 × 4 · d · n, 64 bytes of per-item vectors, and one evaluation block of "
            "clip(2^24 / n, 64, 8192) users × n items × 24 bytes. Nothing of size batch × n is allocated: "
            "the sampled softmax scores each batch against its distinct targets plus the sampled negatives only. "
            "The last column is what one full-softmax batch's logits would take (SASRec: batch × max_len rows)."), "",
    ]
    return lines, failures


def quality_fit(model: str, loss: str, seed: int, epochs: int, threads: int) -> dict:
    """Test NDCG@10 of one model and loss on ml-100k (SASRec: sequential protocol; two-tower: general)."""
    from zenrec.data import split_dataset
    from zenrec.datasets import load_ml100k
    from zenrec.evaluate.evaluator import evaluate_split
    from zenrec.models import TrainOptions, create_model

    ds = load_ml100k()
    if model == "sasrec":
        split = split_dataset(ds, "sequential")
        params = {"loss": loss, "epochs": epochs, "patience": 100}
    else:
        split = split_dataset(ds, "general", seed=2020)
        params = {"loss": loss, "epochs": epochs, "patience": 100}
    t = time.perf_counter()
    m = create_model(model, **params).fit(split.train, split.valid, TrainOptions(seed=seed, threads=threads))
    fit_s = time.perf_counter() - t
    ndcg = evaluate_split(m, split, ks=(10,), beyond=False)["ndcg@10"]
    return {"model": model, "loss": loss, "seed": seed, "max_epochs": epochs, "ndcg": ndcg, "fit_s": fit_s,
            "best_epoch": m.best_epoch_, "load": os.getloadavg()[0]}


def quality_part(args: argparse.Namespace) -> list[str]:
    full_loss = {"sasrec": "ce", "twotower": "softmax"}
    rows = []
    for model in args.models:
        res = {}
        for loss in (full_loss[model], "sampled"):
            res[loss] = []
            for seed in args.seeds:
                if args.reuse and (rec := recorded((model, None, loss, seed, args.quality_epochs))) is not None:
                    res[loss].append(rec)
                    continue
                cmd = [sys.executable, __file__, "--quality-one", model, "--loss", loss, "--seed", str(seed),
                       "--quality-epochs", str(args.quality_epochs), "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                if out.returncode != 0:
                    raise SystemExit(f"{model} {loss} failed:\n{out.stderr[-3000:]}")
                res[loss].append(save(json.loads(out.stdout.strip().splitlines()[-1])))
        full, samp = res[full_loss[model]], res["sampled"]
        diffs = [s["ndcg"] - f["ndcg"] for f, s in zip(full, samp, strict=True)]
        spread = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
        f_nd = ", ".join(f"{r['ndcg']:.4f}" for r in full)
        s_nd = ", ".join(f"{r['ndcg']:.4f}" for r in samp)
        mean = statistics.mean(diffs)
        # within noise: sampled is not worse, or worse by less than the full softmax varies from seed to seed
        seed_sd = statistics.stdev(r["ndcg"] for r in full) if len(full) > 1 else float("nan")
        noise = "yes" if mean >= 0 or -mean <= seed_sd else "**no**"
        rows.append(f"| {model} | {'sequential' if model == 'sasrec' else 'general'} | {full_loss[model]} "
                    f"{f_nd} | {s_nd} | "
                    f"{mean:+.4f} | {spread:.4f} | {seed_sd:.4f} | {noise} | "
                    f"{', '.join(str(r['best_epoch']) for r in full)} / "
                    f"{', '.join(str(r['best_epoch']) for r in samp)} | "
                    f"{statistics.median(r['fit_s'] for r in full):.0f} s / "
                    f"{statistics.median(r['fit_s'] for r in samp):.0f} s |")
    return [
        "### Quality: sampled softmax against the full softmax on ml-100k", "",
        context_line(f"Test NDCG@10, seeds {', '.join(map(str, args.seeds))}, at most {args.quality_epochs} epochs "
                     "with early stopping on validation NDCG@10, default configs otherwise (SASRec: negatives=256; "
                     "two-tower: negatives=1024). Difference: sampled − full, mean over seeds; spread: the standard "
                     "deviation of the per-seed differences. Seed spread: the standard deviation of the full softmax's "
                     "NDCG@10 over the seeds. Within noise: sampled is better, or worse by at most the seed spread "
                     "(a paired difference whose mean is beyond two standard errors, spread / √seeds, is systematic "
                     "even when it is within noise). Best epoch: the epoch early stopping kept, per seed."), "",
        "| model | protocol | full softmax | sampled | difference | spread | seed spread | within noise "
        "| best epoch full / sampled | fit time full / sampled |",
        "|---|---|---|---|---:|---:|---:|---|---|---|",
        *rows, "",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--base-items", type=int, default=10_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=["sasrec", "twotower"], choices=list(CATALOGUE))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--quality-epochs", type=int, default=20)
    p.add_argument("--skip", choices=["catalogue", "quality"], default=None)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--reuse", action="store_true",
                   help=f"take each run's latest record from {RECORDS.name} when there is one; measure the others")
    p.add_argument("--one", choices=list(CATALOGUE), help=argparse.SUPPRESS)
    p.add_argument("--quality-one", choices=list(CATALOGUE), help=argparse.SUPPRESS)
    p.add_argument("--loss", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one_run(args)))
        return
    if args.quality_one:
        print(json.dumps(quality_fit(args.quality_one, args.loss, args.seed, args.quality_epochs, args.threads)))
        return
    lines: list[str] = []
    failures: list[str] = []
    if args.skip != "catalogue":
        part, failures = catalogue_part(args)
        lines += part
    if args.skip != "quality":
        lines += quality_part(args)
    command = "python benchmarks/bench_catalogue.py " + " ".join(a for a in sys.argv[1:] if a != "--reuse")
    lines += [f"Reproduce: `{command.strip()}`"]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_doc_section("catalogue", text, DOC)
    if failures:
        raise SystemExit("memory bound exceeded: " + "; ".join(failures))


if __name__ == "__main__":
    main()
