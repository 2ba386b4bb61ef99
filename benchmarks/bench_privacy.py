"""Differential privacy's quality cost: DP-SGD (Opacus) at ε ∈ {1, 8} against the same training without DP.

On the bundled ml-100k, full ranking with training items masked: test
NDCG@10 and Recall@10.  LogisticMF (event level: one (user, item) pair is
one example) and the two-tower on the general protocol
(``split_dataset(..., "general", seed=2020)``, per-user random 80/10/10);
SASRec on the sequential protocol (leave-last-two-out).  The two-tower and
SASRec are private at user level (one example holds all of a user's
events).  Every run of a model trains the same config for the same fixed
number of epochs with no early stopping (a DP run picks no epoch by data),
so its rows differ only by DP-SGD.  The ε column is what the RDP
accountant reports spent at δ = 1e-5; see docs/guide/privacy.md.

Results go into ``docs/benchmarks.md`` between ``<!-- privacy:start -->`` and
``<!-- privacy:end -->`` (the rest of the file is kept).

    python benchmarks/bench_privacy.py                      # lmf, twotower, sasrec at ε 1 and 8
    python benchmarks/bench_privacy.py --models lmf --eps 0.5 1 4 8 --no-docs
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

#: per model: protocol, the config of every run, the DP-only settings, and what one example is
MODELS = {
    "lmf": ("general", {"factors": 16, "batch_size": 1024, "lr": 0.01, "epochs": 2}, {},
            "event level: one (user, item) pair"),
    "twotower": ("general", {"factors": 32, "hidden": 64, "text_encoder": "none", "batch_size": 256, "lr": 0.01,
                             "epochs": 10}, {"dp_max_grad_norm": 0.1}, "user level: one user"),
    "sasrec": ("sequential", {"factors": 32, "max_len": 50, "batch_size": 128, "lr": 0.01, "epochs": 10},
               {"dp_max_grad_norm": 0.1}, "user level: one user's last 51 items"),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    ap.add_argument("--eps", type=float, nargs="+", default=[1.0, 8.0], help="target ε values")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-docs", action="store_true", help="print the section, do not write docs/benchmarks.md")
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    warnings.filterwarnings("ignore", module="opacus")
    warnings.filterwarnings("ignore", message="Full backward hook")

    from zenrec.data import split_dataset
    from zenrec.datasets import load_ml100k
    from zenrec.evaluate.evaluator import evaluate_split
    from zenrec.models import TrainOptions, create_model

    data = load_ml100k()
    splits = {p: split_dataset(data, p, seed=2020) for p in {MODELS[m][0] for m in args.models}}
    rows = []
    for name in args.models:
        protocol, base, dp_extra, unit = MODELS[name]
        split = splits[protocol]
        for eps in [None, *args.eps]:
            params = base if eps is None else {**base, **dp_extra, "dp_epsilon": eps}
            t = time.perf_counter()
            model = create_model(name, **params).fit(split.train, options=TrainOptions(validation=False,
                                                                                         threads=args.threads))
            fit_s = time.perf_counter() - t
            res = evaluate_split(model, split, ks=(10,), metrics=("ndcg", "recall"), beyond=False)
            p = model.privacy_ or {}
            row = {"model": name, "protocol": protocol, "eps": eps, "unit": unit, "ndcg@10": res["ndcg@10"],
                   "recall@10": res["recall@10"], "fit_s": fit_s, "epochs": model.epochs_trained_,
                   "epsilon": p.get("epsilon"), "sigma": p.get("noise_multiplier"),
                   "clip": p.get("max_grad_norm"), "users": split.train.n_users}
            print(row, file=sys.stderr, flush=True)
            rows.append(row)
    section = render(rows, args, argv)
    if args.no_docs:
        print(section)
    else:
        write_doc_section("privacy", section, DOC)
        print(f"wrote {DOC}", file=sys.stderr)


def render(rows: list[dict], args, argv: list[str]) -> str:
    """The ``privacy`` section: one context line, the table, the reproduce command."""
    body = []
    for r in rows:
        ref = next(x for x in rows if x["model"] == r["model"] and x["eps"] is None)
        eps = "–" if r["epsilon"] is None else f"{r['epsilon']:.3f}"
        sigma = "–" if r["sigma"] is None else f"{r['sigma']:.3f} / {r['clip']:g}"
        run = "no DP" if r["eps"] is None else f"DP ε={r['eps']:g}"
        body.append(f"| {r['model']} ({r['protocol']}) | {run} | {r['unit'] if r['eps'] else '–'} | {eps} | "
                    f"{sigma} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['ndcg@10'] / ref['ndcg@10']:.1%} | "
                    f"{r['fit_s']:.0f} s ({r['epochs']} ep) |")
    cmd = " ".join(["python benchmarks/bench_privacy.py", *argv])
    configs = "; ".join(f"{m}: " + ", ".join(f"{k} {v}" for k, v in MODELS[m][1].items())
                        for m in dict.fromkeys(r["model"] for r in rows))
    lines = [
        "## Differential privacy: the quality cost of DP-SGD (ml-100k)",
        "",
        context_line(f"Full ranking, test NDCG@10 / Recall@10, ml-100k ({rows[0]['users']} users). Opacus DP-SGD, "
                     f"Poisson sampling (rate batch / examples), δ = 1e-5, RDP accountant; every run of a model "
                     f"trains the same fixed epochs with no early stopping. Configs — {configs}. "
                     f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}."),
        "",
        "| model | run | unit of privacy | ε spent | noise multiplier / clip | NDCG@10 | Recall@10 | "
        "NDCG vs no DP | fit |",
        "|---|---|---|---|---|---|---|---|---|",
        *body,
        "",
        *section_footer(cmd, "privacy"),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
