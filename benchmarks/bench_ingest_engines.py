"""Which engine reads and cleans a large, dirty log best on this machine: pyarrow, DuckDB or polars.

The measurement behind the choice of zenrec's out-of-core ingest (chunked Arrow,
``zenrec/data/ingest.py``).  On one synthetic log (``make_synthetic_events.py``:
dirty rows included) each variant runs in a fresh process, ``--repeats`` times;
the table shows the median wall time, CPU time and peak RSS (the child's VmHWM).

*Read* variants only read the log into columns: pyarrow's streaming reader as
zenrec uses it (1 MiB blocks, one parser thread), pyarrow's whole-file reader,
DuckDB's ``read_csv`` and polars' ``scan_csv`` streamed in batches, each with
type inference and with every column read as text (inference from a sample
stops at the log's first dirty row after it).  *Ingest* variants do the work
of ``zenrec ingest`` up to the coded arrays: zenrec chunked, zenrec whole-file
(``read_table`` + ``Dataset.from_frame``), and the same cleaning written as
DuckDB SQL (drop rows without ids or a time or of an unknown type, drop
duplicates, code ids in first-seen order, sort by user and time).

DuckDB and polars are not zenrec dependencies: install them to measure them
(``pip install duckdb polars``); a missing one is reported as such.

    python benchmarks/bench_ingest_engines.py --log /tmp/zenrec-ingest/events_10m.csv
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import context_line, machine, write_doc_section  # noqa: E402

SCALING = ROOT / "docs" / "scaling.md"
VARIANTS = {
    "arrow-stream": ("read", "pyarrow streaming CSV reader, as zenrec reads (1 MiB blocks, one parser thread)"),
    "arrow-whole": ("read", "pyarrow whole-file `read_csv` (all threads)"),
    "duckdb": ("read", "DuckDB `read_csv`, types inferred, streamed as Arrow batches"),
    "duckdb-text": ("read", "DuckDB `read_csv(all_varchar=true)`, streamed as Arrow batches"),
    "polars": ("read", "polars `scan_csv`, types inferred, `collect_batches`"),
    "polars-text": ("read", "polars `scan_csv(infer_schema=False)`, `collect_batches`"),
    "zenrec-chunked": ("ingest", "zenrec out-of-core: `Dataset.from_file` (chunked Arrow)"),
    "zenrec-whole": ("ingest", "zenrec whole file: `read_table` + `Dataset.from_frame`"),
    "duckdb-sql": ("ingest", "the same cleaning as DuckDB SQL, fetched as numpy"),
}


def _imports(name: str) -> None:
    """Import what a variant uses (the engine, or zenrec with pyarrow and pandas)."""
    if name.startswith("arrow"):
        import pyarrow.csv  # noqa: F401
    elif name.startswith("duckdb"):
        import duckdb  # noqa: F401
    elif name.startswith("polars"):
        import polars  # noqa: F401
    else:
        import zenrec.data  # noqa: F401


def _variant(name: str, log: Path) -> int:
    """Run one variant on ``log``; returns the rows it produced."""
    if name.startswith("arrow"):
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(strings_can_be_null=True, auto_dict_encode=True)
        parse = pacsv.ParseOptions(newlines_in_values=True)
        if name == "arrow-whole":
            return pacsv.read_csv(log, read_options=pacsv.ReadOptions(block_size=1 << 22), parse_options=parse,
                                  convert_options=convert).num_rows
        reader = pacsv.open_csv(log, read_options=pacsv.ReadOptions(block_size=1 << 20, use_threads=False),
                                parse_options=parse, convert_options=convert)
        return sum(b.num_rows for b in reader)
    if name.startswith("duckdb"):
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads={os.cpu_count()}")
        if name == "duckdb-sql":
            return _duckdb_sql(con, log)
        text = ", all_varchar=true" if name.endswith("text") else ""
        reader = con.sql(f"SELECT * FROM read_csv('{log}'{text})").to_arrow_reader(1 << 20)
        return sum(b.num_rows for b in reader)
    if name.startswith("polars"):
        import polars as pl

        lf = pl.scan_csv(log, infer_schema=not name.endswith("text"))
        return sum(df.height for df in lf.collect_batches())
    from zenrec.data import ColumnMap, Dataset, read_table

    cm = ColumnMap(timestamp="timestamp", event="event")
    if name == "zenrec-chunked":
        return len(Dataset.from_file(log, cm).interactions)
    return len(Dataset.from_frame(read_table(log, "csv", columns=cm.required()), cm, source=str(log),
                                  first_line=2).interactions)


def _duckdb_sql(con, log: Path) -> int:
    """zenrec's cleaning (the parts this log needs) in DuckDB SQL, out of core, fetched as numpy arrays."""
    con.execute(f"""CREATE TEMP TABLE raw AS SELECT row_number() OVER () AS rn, trim(user_id) AS u,
                    trim(item_id) AS i, TRY_CAST(timestamp AS BIGINT) AS t, lower(trim(event)) AS e
                    FROM read_csv('{log}', all_varchar=true)""")
    con.execute("""CREATE TEMP TABLE kept AS SELECT * FROM raw WHERE u <> '' AND i <> '' AND t IS NOT NULL
                   AND e IN ('view', 'click', 'cart', 'purchase')""")
    con.execute("""CREATE TEMP TABLE dedup AS SELECT * FROM kept
                   QUALIFY row_number() OVER (PARTITION BY u, t, i, e ORDER BY rn) = 1""")
    con.execute("CREATE TEMP TABLE users AS SELECT u, row_number() OVER (ORDER BY min(rn)) - 1 AS code "
                "FROM dedup GROUP BY u")
    con.execute("CREATE TEMP TABLE items AS SELECT i, row_number() OVER (ORDER BY min(rn)) - 1 AS code "
                "FROM dedup GROUP BY i")
    out = con.execute("""SELECT users.code AS user, items.code AS item, d.t AS timestamp, d.e AS event
                         FROM dedup d JOIN users USING (u) JOIN items USING (i)
                         ORDER BY users.code, d.t, d.rn""").fetchnumpy()
    return len(out["user"])


def _run(name: str, log: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", name, str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep
                                 + os.environ.get("PYTHONPATH", "")})
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        last = (err.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        return {"error": last[:160]}
    res = json.loads(out.decode().strip().splitlines()[-1])
    res["process_s"] = wall
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, required=False, help="a synthetic log (make_synthetic_events.py)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/scaling.md")
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "LOG"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        import resource

        _imports(args.child[0])  # not timed: a library's import is not its reading
        t0 = time.perf_counter()
        rows = _variant(args.child[0], Path(args.child[1]))
        ru = resource.getrusage(resource.RUSAGE_SELF)
        hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
        print(json.dumps({"rows": rows, "wall_s": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
                          "peak_mb": hwm / 1024}))
        return
    if args.log is None or not args.log.exists():
        ap.error("--log must name an existing log (make one with benchmarks/make_synthetic_events.py)")
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    loads = [os.getloadavg()[0]]
    results = {}
    for name in names:
        runs = [_run(name, args.log) for _ in range(args.repeats)]
        ok = [r for r in runs if "error" not in r]
        if not ok:
            results[name] = runs[0]
            print(f"{name:15s} failed: {runs[0]['error']}", flush=True)
            continue
        results[name] = {k: statistics.median(r[k] for r in ok) for k in ("wall_s", "cpu_s", "peak_mb")}
        results[name]["rows"] = ok[0]["rows"]
        r = results[name]
        print(f"{name:15s} {r['rows']:>12,} rows {r['wall_s']:7.2f} s  {r['rows'] / r['wall_s'] / 1e6:5.2f} M rows/s"
              f"  CPU {r['cpu_s']:6.1f} s  peak {r['peak_mb']:7,.0f} MB", flush=True)
        loads.append(os.getloadavg()[0])
    if args.no_docs:
        return
    size = args.log.stat().st_size / 2**20
    lines = [
        "## Ingest engines: pyarrow, DuckDB and polars on one dirty log",
        "",
        context_line(f"{machine()}. One {size:,.0f} MiB CSV from `make_synthetic_events.py` (sessions, dirty "
                     f"rows); median of {args.repeats} fresh processes per variant; 1-minute load average "
                     f"{min(loads):.1f}–{max(loads):.1f} (the machine was shared)."),
        "",
        "| variant | what it does | rows out | wall | rows/s | CPU | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        kind, what = VARIANTS[name]
        r = results[name]
        if "error" in r:
            lines.append(f"| {name} ({kind}) | {what} | fails: {r['error'].replace('|', '/')} | | | | |")
            continue
        lines.append(f"| {name} ({kind}) | {what} | {r['rows']:,} | {r['wall_s']:.1f} s | "
                     f"{r['rows'] / r['wall_s']:,.0f} | {r['cpu_s']:.1f} s | {r['peak_mb']:,.0f} MB |")
    lines += ["", "DuckDB and polars are not zenrec dependencies: install them into the environment to run it again.",
              "", "Reproduce: `python benchmarks/bench_ingest_engines.py "
                  f"--log {args.log}" + (f" --repeats {args.repeats}" if args.repeats != 3 else "") + "`"]
    write_doc_section("ingest-engines", "\n".join(lines) + "\n", SCALING)
    print(f"updated {SCALING.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
