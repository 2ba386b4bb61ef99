"""Multi-task click+purchase on Tmall: purchase NDCG@10 with auxiliary behaviours vs purchases alone.

Reads ``<datasets>/tmall-multibehavior`` (fixed split: training buys,
favourites and carts; validation and test purchases).  Single-task models
(pop, EASE, ALS, LMF and MultiTask itself) train on the training purchases
only; MultiTask (MMoE and shared bottom, ESMM objective) trains on every
behaviour, with favourites and carts as clicks.  Every model ranks all items
for each test user with the training and validation purchases masked and
early-stops (where it does) on validation purchase NDCG@10.  Per-task AUCs
are of the test purchases against 100 random unmasked items per user.

    python benchmarks/bench_multitask.py [--datasets DIR] [--write-docs]

prints one JSON line per model; ``--write-docs`` renders the ``multitask``
section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATASETS, WORK, context_line, emit, peak_rss_mb, section_footer, write_doc_section  # noqa: E402

COMMAND = "python benchmarks/bench_multitask.py --write-docs"
START, END = "<!-- multitask:start -->", "<!-- multitask:end -->"

#: (label, registry name or "multitask", params, trained on)
RUNS: list[tuple[str, str, dict, str]] = [
    ("pop", "pop", {}, "purchases"),
    ("ease", "ease", {}, "purchases"),
    ("als", "als", {}, "purchases"),
    ("lmf", "lmf", {}, "purchases"),
    ("ease, all behaviours", "ease", {}, "all behaviours"),
    ("multitask mmoe, purchases only", "multitask", {"architecture": "mmoe"}, "purchases"),
    ("multitask mmoe", "multitask", {"architecture": "mmoe"}, "all behaviours"),
    ("multitask shared_bottom", "multitask", {"architecture": "shared_bottom"}, "all behaviours"),
    # ablation: the deep part alone, as before the wide part existed (uniform negatives)
    ("multitask mmoe, deep only", "multitask", {"architecture": "mmoe", "wide": False, "sampler": "uniform"},
     "all behaviours"),
    ("multitask shared_bottom, deep only", "multitask",
     {"architecture": "shared_bottom", "wide": False, "sampler": "uniform"}, "all behaviours"),
]
MT_DEFAULTS = {"batch_size": 8192, "lr": 5e-3, "valid_users": 5000, "epochs": 12, "patience": 3}


def run_one(label: str, name: str, params: dict, data: str, split, threads: int) -> dict:
    from zenrec.evaluate.evaluator import evaluate
    from zenrec.models import TrainOptions, create_model
    from zenrec.models.multitask import MultiTask, purchases_of, sampled_auc

    buys = purchases_of(split.train)
    train = split.train if data == "all behaviours" else buys
    model = MultiTask(**{**MT_DEFAULTS, **params}) if name == "multitask" else create_model(name, **params)
    t0 = time.perf_counter()
    model.fit(train, split.valid, TrainOptions(seed=2020, threads=threads))
    fit_s = time.perf_counter() - t0
    res = evaluate(model, split.test, [buys, split.valid], ks=(10, 20), metrics=("ndcg", "recall"), beyond=False)
    rec = {"model": label, "registry": name, "params": params, "trained_on": data,
           "fit_seconds": round(fit_s, 1), "epochs": getattr(model, "epochs_trained_", None),
           **{k: round(v, 5) for k, v in res.metrics.items()}}
    if name == "multitask":
        for task in ("click", "purchase"):
            rec[f"auc_{task}"] = round(sampled_auc(lambda u, t=task: model.score_task(u, t), split.test,
                                                   [buys, split.valid], negatives=100, seed=0), 4)
    else:
        rec["auc_purchase"] = round(sampled_auc(model.score, split.test, [buys, split.valid], 100, seed=0), 4)
    rec["peak_rss_mb"] = round(peak_rss_mb())
    return rec


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def render(rows: list[dict], n_threads: int) -> str:
    """The ``multitask`` section: one context line, the tables, the reproduce command.

    What the rows mean and the findings are in docs/benchmark-notes.md (#multitask).
    """
    best_single = max((r for r in rows if r["trained_on"] == "purchases"), key=lambda r: r["ndcg@10"])
    multi = [r for r in rows if r["trained_on"] != "purchases" and r["registry"] == "multitask"]
    best_multi = max(multi, key=lambda r: r["ndcg@10"]) if multi else None
    lines = [
        "## Multi-task click + purchase (tmall-multibehavior)",
        "",
        context_line(f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {n_threads}, Python "
                     f"{platform.python_version()}; MultiTask settings `{json.dumps(MT_DEFAULTS, sort_keys=True)}`, "
                     "the rest at their defaults."),
        "",
        "| model | trained on | NDCG@10 | Recall@10 | NDCG@20 | Recall@20 | AUC click | AUC purchase | epochs | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['trained_on']} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | "
            f"{r['ndcg@20']:.4f} | {r['recall@20']:.4f} | {_num(r.get('auc_click'))} | "
            f"{r['auc_purchase']:.4f} | {r['epochs'] or '–'} | {r['fit_seconds']:.0f} |"
        )
    lines += ["", "| target (issue 3), purchase NDCG@10 | best single-task, purchases only | "
              "best multi-task, all behaviours | ratio | verdict |", "|---|---|---|---|---|"]
    if best_multi is not None:
        verdict = "met" if best_multi["ndcg@10"] >= best_single["ndcg@10"] else "**missed**"
        lines.append(f"| with auxiliary behaviours ≥ the best single-task model | {best_single['model']} "
                     f"{best_single['ndcg@10']:.4f} | {best_multi['model']} {best_multi['ndcg@10']:.4f} | "
                     f"{best_multi['ndcg@10'] / best_single['ndcg@10']:.2f}× | {verdict} |")
    else:
        lines.append(f"| with auxiliary behaviours ≥ the best single-task model | {best_single['model']} "
                     f"{best_single['ndcg@10']:.4f} | – | – | not measured |")
    lines += ["", *section_footer(COMMAND, "multitask")]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Write this benchmark's section of docs/benchmarks.md."""
    write_doc_section("multitask", section)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="*", help="labels of the runs to do (default: all)")
    ap.add_argument("--write-docs", action="store_true", help="render the multitask section of docs/benchmarks.md")
    ap.add_argument("--note", default="", help="not rendered any more: findings go into docs/benchmark-notes.md")
    ap.add_argument("--reuse", action="store_true", help="re-render from the saved results without training")
    ap.add_argument("--results", type=Path, nargs="+", default=[WORK / "results" / "multitask.jsonl"],
                    help="JSON-lines file the runs are written to (with --reuse: files to read)")
    args = ap.parse_args()
    results = args.results[0]
    rows: list[dict] = []
    if args.reuse:
        rows = [json.loads(x) for f in args.results for x in f.read_text().splitlines() if x.strip()]
    else:
        from zenrec.data.tmall import read_tmall

        folder = args.datasets / "tmall-multibehavior"
        if not folder.is_dir():
            sys.exit(f"{folder} not found; pass --datasets DIR")
        split, _ = read_tmall(folder)
        results.parent.mkdir(parents=True, exist_ok=True)
        with open(results, "w") as fh:
            for label, name, params, data in RUNS:
                if args.only and label not in args.only:
                    continue
                rec = run_one(label, name, params, data, split, args.threads)
                emit(rec)
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
                fh.flush()
                rows.append(rec)
    if args.note:
        print("--note is not rendered: add it to docs/benchmark-notes.md (#multitask) by hand", file=sys.stderr)
    if args.write_docs and rows:
        write_docs(render(rows, args.threads))


if __name__ == "__main__":
    main()
