"""Write the split files every library in the benchmark trains and tests on.

One directory per dataset under ``benchmarks/.work/splits/`` holding RecBole
atomic files with raw ids (``NAME.train.inter``, ``NAME.valid.inter``,
``NAME.test.inter``; columns ``user_id:token item_id:token timestamp:float``),
so RecBole's ``benchmark_filename`` reads them as they are and zenrec /
implicit load the very same rows.

* ``ml-100k``: zenrec's bundled MovieLens 100K, RecBole's general protocol
  (every rating a positive, per-user random 80/10/10, seed 2020).
* ``ml-1m-ultragcn``: the fixed LCFN/UltraGCN train/test split of ML-1M
  (``<datasets>/ml-1m-ultragcn/{train,test}.txt``, lines ``user item item …``).
  The test file is kept as is; 10% of each user's training items (RecBole's
  rounding rule, seeded) become the validation part.  There are no
  timestamps: the position of the item on its line is written instead.

Usage: ``python benchmarks/prepare_splits.py [--datasets DIR] [--out DIR] [--seed 2020]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from zenrec.data import Interactions, random_split, save_split, split_dataset
from zenrec.datasets import load_ml100k

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATASETS = REPO / ".." / "shared" / "datasets"
DEFAULT_OUT = HERE / ".work" / "splits"
DATASETS = ("ml-100k", "ml-1m-ultragcn")


def _read_adjacency(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``user item item …`` lines → (user, item, position-on-line) arrays."""
    users, items, pos = [], [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        tok = line.split()
        if not tok:
            continue
        try:
            ids = np.asarray(tok, dtype=np.int64)
        except ValueError:
            sys.exit(f"{path}:{lineno}: expected integers 'user item item ...'")
        n = len(ids) - 1
        users.append(np.full(n, ids[0]))
        items.append(ids[1:])
        pos.append(np.arange(n))
    return np.concatenate(users), np.concatenate(items), np.concatenate(pos)


def _write_frame(path: Path, user: np.ndarray, item: np.ndarray, ts: np.ndarray) -> None:
    df = pd.DataFrame({"user_id:token": user, "item_id:token": item, "timestamp:float": ts.astype(np.float64)})
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, sep="\t", index=False)
    tmp.replace(path)


def prepare_ml100k(out: Path, seed: int) -> dict:
    ds = load_ml100k()
    split = split_dataset(ds, "general", seed)
    save_split(split, ds, out / "ml-100k", "ml-100k")
    return {"dataset": "ml-100k", "train": len(split.train), "valid": len(split.valid), "test": len(split.test),
            "users": ds.interactions.n_users, "items": ds.interactions.n_items}


def prepare_ml1m(datasets: Path, out: Path, seed: int) -> dict:
    src = datasets / "ml-1m-ultragcn"
    for f in ("train.txt", "test.txt"):
        if not (src / f).exists():
            sys.exit(f"{src / f}: not found (pass --datasets DIR holding ml-1m-ultragcn/)")
    tu, ti, tp = _read_adjacency(src / "train.txt")
    su, si, sp_ = _read_adjacency(src / "test.txt")
    n_users = int(max(tu.max(), su.max()) + 1)
    n_items = int(max(ti.max(), si.max()) + 1)
    # ids are contiguous and 0-based, so they serve as indices directly
    inter = Interactions(tu, ti, n_users, n_items, timestamp=tp)
    tv = random_split(inter, (0.9, 0.1), seed)  # per-user: 90% train, 10% validation
    d = out / "ml-1m-ultragcn"
    d.mkdir(parents=True, exist_ok=True)
    name = "ml-1m-ultragcn"
    _write_frame(d / f"{name}.train.inter", tv.train.user, tv.train.item, tv.train.timestamp)
    _write_frame(d / f"{name}.valid.inter", tv.test.user, tv.test.item, tv.test.timestamp)
    _write_frame(d / f"{name}.test.inter", su, si, sp_)
    return {"dataset": name, "train": len(tv.train), "valid": len(tv.test), "test": len(su),
            "users": n_users, "items": n_items}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding ml-1m-ultragcn/")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--only", choices=DATASETS, action="append")
    args = ap.parse_args(argv)
    for name in args.only or DATASETS:
        info = prepare_ml100k(args.out, args.seed) if name == "ml-100k" else prepare_ml1m(
            args.datasets.resolve(), args.out, args.seed)
        print(info)


if __name__ == "__main__":
    main()
