"""Differential privacy's quality cost: LogisticMF by DP-SGD (Opacus) at ε ∈ {1, 8} against no DP.

On the bundled ml-100k, general protocol (``split_dataset(..., "general",
seed=2020)``: per-user random 80/10/10), full ranking with training items
masked: test NDCG@10 and Recall@10.  Every run trains the same config for
the same fixed number of epochs with no early stopping (a DP run picks no
epoch by data), so the rows differ only by DP-SGD; the default LogisticMF
(early-stopped on validation) is a reference row.  The ε column is what the
RDP accountant reports spent at δ = 1e-5; the unit of privacy is one
(user, item) pair (event level), see docs/guide/privacy.md.

Results go into ``docs/benchmarks.md`` between ``<!-- privacy:start -->`` and
``<!-- privacy:end -->`` (the rest of the file is kept).

    python benchmarks/bench_privacy.py                  # ε 1 and 8, 4 epochs
    python benchmarks/bench_privacy.py --epochs 8 --eps 0.5 1 4 8 --no-docs
    python benchmarks/bench_privacy.py --no-reference --epochs 2 --factors 16   # a few minutes on 2 busy CPUs
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(HERE))

from _common import context_line, section_footer, write_doc_section  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eps", type=float, nargs="+", default=[1.0, 8.0], help="target ε values")
    ap.add_argument("--epochs", type=int, default=4, help="epochs of every compared run (DP-SGD is slow on CPU)")
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-reference", action="store_true", help="skip the default (early-stopped) LogisticMF row")
    ap.add_argument("--no-docs", action="store_true", help="print the section, do not write docs/benchmarks.md")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    warnings.filterwarnings("ignore", module="opacus")
    warnings.filterwarnings("ignore", message="Full backward hook")

    from zenrec.data import split_dataset
    from zenrec.datasets import load_ml100k
    from zenrec.evaluate.evaluator import evaluate_split
    from zenrec.models import TrainOptions, create_model

    split = split_dataset(load_ml100k(), "general", seed=2020)
    base = {"factors": args.factors, "batch_size": args.batch_size, "lr": args.lr, "epochs": args.epochs}
    runs: list[tuple[str, dict, bool]] = [] if args.no_reference else [("lmf default (early-stopped, no DP)", {}, True)]
    runs.append((f"lmf, {args.epochs} epochs, no DP", base, False))
    runs += [(f"lmf, {args.epochs} epochs, DP ε={e:g}", {**base, "dp_epsilon": e}, False) for e in args.eps]
    rows = []
    for label, params, validated in runs:
        t = time.perf_counter()
        model = create_model("lmf", **params).fit(
            split.train, split.valid if validated else None,
            options=TrainOptions(validation=validated, threads=args.threads))
        fit_s = time.perf_counter() - t
        res = evaluate_split(model, split, ks=(10,), metrics=("ndcg", "recall"), beyond=False)
        p = model.privacy_ or {}
        row = {"label": label, "ndcg@10": res["ndcg@10"], "recall@10": res["recall@10"], "fit_s": fit_s,
               "epochs": model.epochs_trained_, "epsilon": p.get("epsilon"), "sigma": p.get("noise_multiplier")}
        print(row, file=sys.stderr, flush=True)
        rows.append(row)
    section = render(rows, split, args, argv)
    if args.no_docs:
        print(section)
    else:
        write_doc_section("privacy", section, DOC)
        print(f"wrote {DOC}", file=sys.stderr)


def render(rows: list[dict], split, args, argv: list[str]) -> str:
    """The ``privacy`` section: one context line, the table, the reproduce command."""
    ref = next(r for r in rows if r["label"].endswith("epochs, no DP"))
    body = []
    for r in rows:
        eps = "–" if r["epsilon"] is None else f"{r['epsilon']:.3f}"
        sigma = "–" if r["sigma"] is None else f"{r['sigma']:.3f}"
        body.append(f"| {r['label']} | {eps} | {sigma} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | "
                    f"{r['ndcg@10'] / ref['ndcg@10']:.1%} | {r['fit_s']:.0f} s ({r['epochs']} ep) |")
    cmd = " ".join(["python benchmarks/bench_privacy.py", *argv])
    lines = [
        "## Differential privacy: the quality cost of DP-SGD (ml-100k, LogisticMF)",
        "",
        context_line(f"General protocol, full ranking, test NDCG@10 / Recall@10; {len(split.train):,} training events. "
                     f"DP rows: Opacus DP-SGD, Poisson sampling (rate batch/n), clipping norm 1.0, δ = 1e-5, unit of "
                     f"privacy one (user, item) pair; factors {args.factors}, batch {args.batch_size}, Adam lr "
                     f"{args.lr}, {args.epochs} epochs (reduced: per-example embedding gradients are slow on CPU), "
                     f"no early stopping. ε is the RDP accountant's. {platform.machine()}, {os.cpu_count()} CPUs, "
                     f"Python {platform.python_version()}."),
        "",
        "| run | ε spent | noise multiplier | NDCG@10 | Recall@10 | NDCG vs same epochs without DP | fit |",
        "|---|---|---|---|---|---|---|",
        *body,
        "",
        *section_footer(cmd, "privacy"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
