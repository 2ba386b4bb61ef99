"""Ingest benchmark: read + clean + Dataset construction + Dataset.save of a large CSV.

Generates a synthetic event log into ``benchmarks/.work/`` when it is missing
(see ``make_synthetic_events.py``), then runs the ingest in a fresh
subprocess ``--repeats`` times, measuring the wall time of the ingest itself,
the wall time of the whole process (interpreter start and imports included)
and the process's peak RSS (``os.wait4`` rusage of that child alone).  The
median of each is reported and written into the "Ingest" section of
``docs/benchmarks.md`` between ``<!-- ingest:start -->`` and
``<!-- ingest:end -->``; the rest of that file is kept.

    python benchmarks/bench_ingest.py                # 10M rows, 3 repeats
    python benchmarks/bench_ingest.py --rows 1000000 --no-docs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import context_line, section_footer, write_doc_section  # noqa: E402

WORK = HERE / ".work"
DOC = ROOT / "docs" / "benchmarks.md"
TARGET_ROWS_PER_S = 1_000_000
TARGET_RSS_MB = 1536


def _child(csv: Path, out: Path) -> None:
    """One ingest, run in a fresh process; prints a JSON line with its timings."""
    t0 = time.perf_counter()
    from zenrec.data import CleaningConfig, ColumnMap, Dataset

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    ds = Dataset.from_file(
        csv,
        ColumnMap(user="user_id", item="item_id", timestamp="timestamp", event="event"),
        CleaningConfig(),
    )
    t_read_clean = time.perf_counter() - t1
    ds.save(out)
    t_total = time.perf_counter() - t1
    print(
        json.dumps(
            {
                "rows_in": ds.report.rows_in,
                "rows_out": ds.report.rows_out,
                "dropped": ds.report.dropped,
                "users": len(ds.users),
                "items": len(ds.items),
                "import_s": t_import,
                "read_clean_s": t_read_clean,
                "ingest_s": t_total,
            }
        )
    )


def _run_once(csv: Path, out: Path) -> dict:
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(csv), str(out)],
        stdout=subprocess.PIPE,
        env=env,
    )
    stdout = proc.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"ingest subprocess failed with exit code {proc.returncode}")
    res = json.loads(stdout.decode().strip().splitlines()[-1])
    res["process_wall_s"] = wall
    res["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    res["cpu_s"] = usage.ru_utime + usage.ru_stime
    return res


def render(*, rows: int, size_mb: float, users: int, items: int, dropped: dict, repeats: int, rate: float,
           ingest: float, wall: float, rss: float, rss_max: float, cpu: float, load: float, ok: bool,
           command: str) -> str:
    """The ``ingest`` section of docs/benchmarks.md: one context line, the table, the reproduce command."""
    lines = [
        "## Ingest",
        "",
        context_line(f"Median of {repeats} fresh processes; {platform.machine()}, {os.cpu_count()} CPUs, "
                     f"Python {platform.python_version()}."),
        "",
        "| metric | value |",
        "|---|---|",
        f"| event log | {rows:,} rows, {size_mb:.0f} MiB CSV, {users:,} users, {items:,} items |",
        f"| dropped while cleaning | {', '.join(f'{k} {v:,}' for k, v in sorted(dropped.items()))} |",
        f"| ingest throughput (read → save) | {rate:,.0f} rows/s |",
        f"| ingest time | {ingest:.2f} s |",
        f"| whole process (interpreter start + imports + ingest) | {wall:.2f} s ({rows / wall:,.0f} rows/s) |",
        f"| peak RSS (median / max of runs) | {rss:.0f} MB / {rss_max:.0f} MB |",
        f"| CPU time of the process (user + sys) | {cpu:.2f} s |",
        f"| 1-minute load average after the runs | {load:.1f} |",
        f"| target ≥ {TARGET_ROWS_PER_S:,} rows/s and ≤ {TARGET_RSS_MB / 1024:.1f} GB peak RSS | "
        f"{'met' if ok else '**missed**'} |",
        "",
        *section_footer(command, "ingest"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--csv", type=Path, default=None, help="log to ingest (default: generated)")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--child", nargs=2, metavar=("CSV", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(Path(args.child[0]), Path(args.child[1]))
        return

    default_name = f"events_{args.rows // 1_000_000}m.csv" if args.rows % 1_000_000 == 0 else f"events_{args.rows}.csv"
    csv = args.csv or WORK / default_name
    if args.csv is None and not csv.exists():
        print(f"generating {csv} ...", flush=True)
        subprocess.run(
            [sys.executable, str(HERE / "make_synthetic_events.py"), str(csv), "--rows", str(args.rows)], check=True
        )
    out = WORK / "ingest-out"
    runs = []
    for i in range(args.repeats):
        shutil.rmtree(out, ignore_errors=True)
        r = _run_once(csv, out)
        runs.append(r)
        print(
            f"run {i + 1}: {r['rows_in'] / r['ingest_s']:,.0f} rows/s (ingest {r['ingest_s']:.2f} s, "
            f"process {r['process_wall_s']:.2f} s), peak RSS {r['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    shutil.rmtree(out, ignore_errors=True)
    rows = runs[0]["rows_in"]
    ingest = statistics.median(r["ingest_s"] for r in runs)
    wall = statistics.median(r["process_wall_s"] for r in runs)
    rss = statistics.median(r["peak_rss_mb"] for r in runs)
    rss_max = max(r["peak_rss_mb"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    load = os.getloadavg()[0]
    size_mb = csv.stat().st_size / 2**20
    rate = rows / ingest
    ok = rate >= TARGET_ROWS_PER_S and rss_max <= TARGET_RSS_MB
    summary = (
        f"median {rate:,.0f} rows/s ({ingest:.2f} s ingest, {rows / wall:,.0f} rows/s counting "
        f"interpreter start and imports), peak RSS {rss:.0f} MB (max {rss_max:.0f} MB) -> "
        f"{'targets met' if ok else 'TARGETS MISSED'}"
    )
    print(summary)
    if args.no_docs:
        return
    cmd = "python benchmarks/bench_ingest.py" + (f" --rows {args.rows}" if args.rows != 10_000_000 else "")
    cmd += f" --repeats {args.repeats}" if args.repeats != 3 else ""
    first = runs[0]
    doc = render(
        rows=rows, size_mb=size_mb, users=first["users"], items=first["items"], dropped=first["dropped"],
        repeats=args.repeats, rate=rate, ingest=ingest, wall=wall, rss=rss, rss_max=rss_max, cpu=cpu, load=load,
        ok=ok, command=cmd,
    )
    write_doc_section("ingest", doc, DOC)
    print(f"updated {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
