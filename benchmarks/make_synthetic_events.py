"""Write a synthetic behaviour log (CSV) for ingest benchmarks.

Columns: ``user_id,item_id,timestamp,event``.  Item popularity and user
activity are Zipf-like, event types are view/click/cart/purchase (mostly
views), rows are in time order, and the file carries the dirt a real log
has: exact duplicate rows and a few malformed rows (empty user id,
non-numeric timestamp, unknown event type).  Everything is vectorised numpy
and written by pyarrow, so 10M rows take seconds.

    python benchmarks/make_synthetic_events.py benchmarks/.work/events_10m.csv --rows 10000000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

EVENTS = np.array(["view", "click", "cart", "purchase"])
EVENT_P = np.array([0.70, 0.20, 0.07, 0.03])


def _zipf_choice(rng: np.random.Generator, n_values: int, size: int, exponent: float, offset: float) -> np.ndarray:
    """Draw ``size`` values in [0, n_values) with p(rank k) ∝ (k + offset)^-exponent,
    ranks shuffled so that popularity is not tied to the id."""
    p = (np.arange(n_values) + offset) ** -exponent
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    rank = np.searchsorted(cdf, rng.random(size), side="right").clip(max=n_values - 1)
    return rng.permutation(n_values)[rank]


def make_events(
    rows: int,
    n_users: int | None = None,
    n_items: int | None = None,
    duplicate_frac: float = 0.005,
    malformed_frac: float = 0.0001,
    seed: int = 0,
) -> pa.Table:
    """A synthetic event table with ``rows`` rows in total (duplicates and malformed included)."""
    rng = np.random.default_rng(seed)
    n_users = n_users or max(rows // 40, 10)
    n_items = n_items or max(rows // 100, 10)
    n_dup = int(rows * duplicate_frac)
    n_base = rows - n_dup
    user = _zipf_choice(rng, n_users, n_base, 0.8, 20.0).astype(np.int64) + 1
    item = _zipf_choice(rng, n_items, n_base, 1.0, 10.0).astype(np.int64) + 1
    start = 1_700_000_000
    ts = start + rng.integers(0, 365 * 86400, n_base, dtype=np.int64)
    event = rng.choice(len(EVENTS), size=n_base, p=EVENT_P).astype(np.int8)
    # exact duplicates: copies of random rows
    dup = rng.integers(0, n_base, n_dup)
    user, item, ts, event = (np.concatenate([a, a[dup]]) for a in (user, item, ts, event))
    order = np.argsort(ts, kind="stable")
    user, item, ts, event = user[order], item[order], ts[order], event[order]

    user_s = pc.cast(pa.array(user), pa.string())
    ts_s = pc.cast(pa.array(ts), pa.string())
    event_s = pa.DictionaryArray.from_arrays(pa.array(event), pa.array(EVENTS)).cast(pa.string())
    n_bad = max(int(rows * malformed_frac), 3) if rows >= 100 else 0
    if n_bad:
        bad = rng.choice(rows, size=n_bad, replace=False)
        kind = np.arange(n_bad) % 3
        user_s = _patch(user_s, bad[kind == 0], "")
        ts_s = _patch(ts_s, bad[kind == 1], "n/a")
        event_s = _patch(event_s, bad[kind == 2], "hover")
    return pa.table({"user_id": user_s, "item_id": pa.array(item), "timestamp": ts_s, "event": event_s})


def _patch(arr: pa.Array, idx: np.ndarray, value: str) -> pa.Array:
    mask = np.zeros(len(arr), dtype=bool)
    mask[idx] = True
    return pc.if_else(pa.array(mask), pa.scalar(value), arr)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", type=Path, help="CSV file to write")
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows in the file, duplicates included")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    table = make_events(args.rows, seed=args.seed)
    args.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.path.with_name(args.path.name + ".tmp")
    pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="none"))
    tmp.replace(args.path)
    print(f"wrote {table.num_rows:,} rows to {args.path}")


if __name__ == "__main__":
    main()
