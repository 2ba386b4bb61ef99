"""How long one acknowledged event commit takes in the SQLite event store, by durability and checkpointing.

    python benchmarks/bench_commit.py --seconds 20 --write-docs

Appends one event per transaction through :class:`zenrec.store.EventStore`
at a steady pace (every ``--pace-ms``) while a second thread writes batches
of served lists into the same file, as the server does, and records each
append's wall time.  Three stores are measured one after another:

* ``fsync``, commits checkpoint the log (SQLite's default behaviour);
* ``fsync``, background checkpoints (what ``zenrec serve`` runs by default);
* ``os``, background checkpoints (``zenrec serve --durability os``).

The table goes into the ``commit-latency`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import WORK, context_line, section_footer, write_doc_section  # noqa: E402

CONFIGS = [  # (label, durability, background checkpoint)
    ("fsync, commits checkpoint", "fsync", False),
    ("fsync, background checkpoints (server default)", "fsync", True),
    ("os, background checkpoints", "os", True),
]


def measure(label: str, durability: str, background: bool, seconds: float, pace_ms: float) -> dict:
    from zenrec.store import Event, EventStore
    from zenrec.store.served import ServedList, ServedLog

    path = WORK / "commit" / "events.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = EventStore(f"sqlite:///{path}", background_checkpoint=background, durability=durability)
    log = ServedLog(store)
    stop = threading.Event()

    def lists() -> None:  # ~150 served lists a second, as in the serving benchmark's case (b)
        n = 0
        while not stop.wait(1 / 150):
            n += 1
            log.log(ServedList(f"l{n}", f"u{n % 900}", "v1", "user", [str(i) for i in range(10)], 1682, 1.0))

    t = threading.Thread(target=lists, daemon=True)
    t.start()
    ms: list[float] = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        i += 1
        t0 = time.perf_counter()
        store.append([Event(f"u{i % 900}", f"i{i % 1682}", "click")])
        ms.append((time.perf_counter() - t0) * 1000.0)
        time.sleep(pace_ms / 1000.0)
    stop.set()
    t.join()
    log.close()
    store.close()
    a = np.asarray(ms)
    q = np.percentile(a, [50, 99, 99.9, 100])
    return {"config": label, "durability": durability, "background_checkpoint": background, "commits": len(a),
            "p50_ms": round(float(q[0]), 3), "p99_ms": round(float(q[1]), 3), "p999_ms": round(float(q[2]), 3),
            "max_ms": round(float(q[3]), 1), "over_20ms": int((a > 20).sum()), "lists_written": log.written}


def render(rows: list[dict], command: str, started: str, seconds: float | None = None) -> str:
    """The ``commit-latency`` section: one context line, the table, the reproduce command."""
    per_store = f"{seconds:g} s per store, " if seconds else ""
    lines = ["## Event commit latency (SQLite store)", "",
             context_line(f"Run {started}, {per_store}one commit every {rows[0]['pace_ms']:g} ms; "
                          f"load average before {rows[0].get('loadavg')}."), "",
             "| store | commits | p50 ms | p99 ms | p99.9 ms | max ms | commits over 20 ms |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['commits']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | "
                     f"{r['max_ms']:.1f} | {r['over_20ms']} |")
    lines += ["", *section_footer(command, "commit-latency")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured time per store")
    ap.add_argument("--pace-ms", type=float, default=10.0, help="pause between commits")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    for label, durability, background in CONFIGS:
        row = measure(label, durability, background, args.seconds, args.pace_ms)
        row.update(pace_ms=args.pace_ms, loadavg=[round(x, 2) for x in os.getloadavg()])
        print(json.dumps(row), flush=True)
        rows.append(row)
    command = ("python benchmarks/bench_commit.py" + (f" --seconds {args.seconds:g}" if args.seconds != 20 else "")
               + (f" --pace-ms {args.pace_ms:g}" if args.pace_ms != 10 else "") + " --write-docs")
    section = render(rows, command, started, args.seconds)
    if args.write_docs:
        print(f"wrote {write_doc_section('commit-latency', section)}")
    else:
        print(section)


if __name__ == "__main__":
    main()
