"""Speed checks: EASE on a 17,600-item catalogue, and full-ranking evaluation on ml-1m.

1. zenrec EASE fit on a synthetic users × items matrix (default 50,000 users,
   17,600 items, ~60 events per user, item popularity Zipf-like), passed as
   ``Interactions.from_csr``.  Compared with a float64 ``numpy.linalg.inv``
   of a Gram matrix of the same construction (what RecBole's EASE does, in
   float32 there), timed at a smaller size (default 6,000 items) and
   extrapolated to the full catalogue by n³ (labelled as such).
2. Full-ranking evaluation of all test users of the ml-1m-ultragcn split
   (6,022 users, 3,043 items, train + validation masked) with zenrec's EASE
   and ALS, median of 3.

Each part runs in its own subprocess so its peak RSS is its own.  Prints JSON lines.

Usage: ``python benchmarks/bench_speed.py [--users 50000] [--items 17600] [--inv-items 6000]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SPLITS, emit, peak_rss_mb, run_json_lines, split_files  # noqa: E402


def synthetic(users: int, items: int, per_user: int, seed: int = 0):
    """A random binary users × items CSR matrix with Zipf-like item popularity."""
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, items + 1) ** 0.8
    p /= p.sum()
    perm = rng.permutation(items)
    n = rng.poisson(per_user, users).clip(1, items)
    rows = np.repeat(np.arange(users), n)
    cols = perm[rng.choice(items, size=int(n.sum()), p=p)]
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def part_ease(args: argparse.Namespace) -> None:
    from zenrec.data import Interactions
    from zenrec.models import create_model

    x = synthetic(args.users, args.items, args.per_user)
    inter = Interactions.from_csr(x)
    rss0 = peak_rss_mb()
    model = create_model("ease")
    t0 = time.perf_counter()
    model.fit(inter)
    fit_s = time.perf_counter() - t0
    emit({"bench": "ease_fit", "library": "zenrec", "users": args.users, "items": args.items,
          "nnz": int(x.nnz), "fit_s": round(fit_s, 2), "params": model.config.model_dump(mode="json"),
          "rss_before_fit_mb": round(rss0, 1), "peak_rss_mb": round(peak_rss_mb(), 1)})


def part_inv(args: argparse.Namespace) -> None:
    import numpy as np

    n = args.inv_items
    x = synthetic(args.users, n, args.per_user * n // args.items + 1)
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices(n)] += 250.0
    t0 = time.perf_counter()
    np.linalg.inv(g)
    s = time.perf_counter() - t0
    scale = (args.items / n) ** 3
    emit({"bench": "ease_fit", "library": "numpy.linalg.inv float64", "items_timed": n, "inv_s": round(s, 2),
          "items": args.items, "extrapolated_s": round(s * scale, 1), "extrapolation": f"n^3 from {n}"})


def part_eval(args: argparse.Namespace) -> None:
    from zenrec.data import load_split_files
    from zenrec.evaluate.evaluator import evaluate_split
    from zenrec.models import create_model

    files = split_files(args.splits, "ml-1m-ultragcn")
    split, _ = load_split_files(files["train"], files["test"], files["valid"])
    for name in ("ease", "als"):
        model = create_model(name).fit(split.train)
        for beyond in (False, True):
            times = []
            for _ in range(3):
                r = evaluate_split(model, split, "test", ks=(10, 20), beyond=beyond)
                times.append(r.seconds)
            emit({"bench": "full_ranking_eval", "library": "zenrec", "model": name, "dataset": "ml-1m-ultragcn",
                  "users": r.n_users, "items": split.train.n_items, "ks": [10, 20],
                  "metrics": "recall,precision,ndcg,mrr,map,hit" + (" + coverage,novelty,diversity,avg_pop"
                                                                    if beyond else ""),
                  "median_s": round(statistics.median(times), 3), "all_s": [round(t, 3) for t in times]})


PARTS = {"ease": part_ease, "inv": part_inv, "eval": part_eval}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--items", type=int, default=17_600)
    ap.add_argument("--per-user", type=int, default=60)
    ap.add_argument("--inv-items", type=int, default=6_000)
    ap.add_argument("--splits", type=Path, default=SPLITS)
    ap.add_argument("--parts", default="ease,inv,eval")
    ap.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part:
        PARTS[args.part](args)
        return
    for part in args.parts.split(","):
        cmd = [sys.executable, __file__, "--part", part, "--users", str(args.users), "--items", str(args.items),
               "--per-user", str(args.per_user), "--inv-items", str(args.inv_items), "--splits", str(args.splits)]
        for rec in run_json_lines(cmd, timeout=3600):
            emit(rec)


if __name__ == "__main__":
    main()
