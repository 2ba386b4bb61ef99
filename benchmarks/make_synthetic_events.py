"""Write a synthetic behaviour log (CSV or Parquet) for ingest and scaling benchmarks.

Columns ``user_id,item_id,timestamp,event``: sessions of events seconds to
minutes apart, power-law user activity and item popularity, view / click /
cart / purchase (a session acts on what it viewed), rows in time order, and
the dirt of a real log: duplicate rows and a few rows without a user, an
item or a time, or with an undeclared event type.  The rows are made and
written a chunk at a time (``zenrec.data.synthetic_log``), so memory stays
bounded: 50M rows take about a minute and well under 1 GB.

    python benchmarks/make_synthetic_events.py benchmarks/.work/events_10m.csv --rows 10000000
    python benchmarks/make_synthetic_events.py /tmp/events_50m.parquet --rows 50000000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", type=Path, help="file to write: .csv, or .parquet")
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows in the file, duplicates included")
    ap.add_argument("--users", type=int, default=None, help="distinct users (default rows / 40)")
    ap.add_argument("--items", type=int, default=None, help="distinct items (default rows / 100)")
    ap.add_argument("--chunk-rows", type=int, default=1 << 21, help="rows made and written at a time")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from zenrec.data.synthetic_log import write_event_log

    t0 = time.perf_counter()
    n = write_event_log(args.path, args.rows, n_users=args.users, n_items=args.items, chunk_rows=args.chunk_rows,
                        seed=args.seed)
    print(f"wrote {n:,} rows to {args.path} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
