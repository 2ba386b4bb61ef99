"""Scaling curves: how each stage's time and memory grow with events (1M, 10M, 50M) and with items (10k, 100k, 1M).

Each point runs in a fresh process on a log from the synthetic generator
(``zenrec.data.synthetic_log``: sessions, power-law users and items, dirty
rows) and times, one after the other:

* **ingest**: ``Dataset.from_file`` (the out-of-core path; bench_ingest.py has
  the 3-run medians and the CSV reader's share);
* **split**: the general protocol's split (per-user 80/10/10 by time);
* **ALS epoch**: one ALS sweep (64 factors, both cores) on the training part;
* **evaluation**: full ranking (every item scored, training items masked) of
  ``--eval-users`` sampled test users, and that time scaled to every test user;
* **SASRec steps**: ``--sasrec-steps`` training steps of SASRec with the
  logQ-corrected sampled softmax (batch 256, 256 negatives, one process); the
  epoch time is the measured samples/s over the epoch's windows (projected:
  a whole epoch at 50M events takes tens of minutes);
* **ANN**: the faiss HNSW index over the ALS item vectors: build time, and the
  latency of ``--queries`` single-user searches (k = 10, the user's training
  items excluded), as a server answers a known user.

The peak RSS after each stage is the process's high-water mark so far.  The
records go to ``benchmarks/.work/scaling.jsonl``; ``--write-docs`` renders the
``report`` section of ``docs/scaling.md``.

    python benchmarks/bench_scaling.py --write-docs
    python benchmarks/bench_scaling.py --curve items --write-docs   # one curve again, the other kept
    python benchmarks/bench_scaling.py --reuse --write-docs         # render the last records
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import REPO, WORK, context_line, load_words, machine, write_doc_section  # noqa: E402

SCALING = REPO / "docs" / "scaling.md"
RESULTS = WORK / "scaling.jsonl"
EVENTS = (1_000_000, 10_000_000, 50_000_000)
ITEMS = (10_000, 100_000, 1_000_000)
#: events of each log of the items curve
ITEMS_CURVE_EVENTS = 5_000_000
#: item popularity ∝ (rank + 10)^-exponent on the items curve: flatter than the generator's default 1, so that 5M
#: events touch about 92 % of a 1M-item catalogue (the default touches about half)
ITEMS_CURVE_EXPONENT = 0.5


def rss_mb() -> float:
    """The process's peak RSS so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log_path(work: Path, events: int, items: int | None) -> Path:
    """The generated log of a point, made once and reused."""
    from zenrec.data.synthetic_log import write_event_log

    name = f"events_{events // 1_000_000}m" + (f"_items_{items // 1000}k_e05" if items else "") + ".csv"
    path = work / name
    if not path.exists():
        work.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        write_event_log(path, events, n_items=items, **({"item_exponent": ITEMS_CURVE_EXPONENT} if items else {}))
    return path


# ------------------------------------------------------------------ one point (child)
def point(args: argparse.Namespace) -> dict:
    """Every stage on one log, in this process."""
    import torch

    from zenrec.data import Dataset, split_dataset
    from zenrec.evaluate.evaluator import evaluate_split
    from zenrec.models import TrainOptions, create_model
    from zenrec.models.sasrec import SASRec
    from zenrec.retrieval.factory import make_retriever
    from zenrec.train.sequences import training_windows

    torch.set_num_threads(2)
    rec: dict = {"curve": args.curve, "log_events": args.events, "log_items": args.items,
                 "load_before": os.getloadavg()[0]}
    t = time.perf_counter()
    ds = Dataset.from_file(args.log)
    inter = ds.interactions
    rec.update(ingest_s=time.perf_counter() - t, events=len(inter), users=inter.n_users, items=inter.n_items,
               ingest_rss=rss_mb())

    t = time.perf_counter()
    split = split_dataset(ds, "general", seed=2020)
    rec.update(split_s=time.perf_counter() - t, split_rss=rss_mb(), train_events=len(split.train))

    t = time.perf_counter()
    als = create_model("als", factors=64, iterations=1).fit(split.train, None, TrainOptions(threads=2))
    rec.update(als_epoch_s=time.perf_counter() - t, als_rss=rss_mb())

    test_users = np.unique(split.test.user)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(test_users, size=min(args.eval_users, len(test_users)), replace=False))
    t = time.perf_counter()
    res = evaluate_split(als, split, ks=(10,), beyond=False, users=sample)
    ev = time.perf_counter() - t
    rec.update(eval_users=len(sample), eval_s=ev, eval_all_users=len(test_users),
               eval_all_s=ev * len(test_users) / max(len(sample), 1), eval_ndcg=float(res["ndcg@10"]),
               eval_rss=rss_mb())

    original = SASRec._batches

    def few(self, epoch):
        for i, batch in enumerate(original(self, epoch)):
            if i >= args.sasrec_steps:
                return
            yield batch

    SASRec._batches = few
    sas = create_model("sasrec", loss="sampled", negatives=256, batch_size=256, max_len=50, epochs=1)
    c = sas.config
    t = time.perf_counter()
    windows = len(training_windows(split.train, c.max_len, c.all_windows, c.stride)[0])
    sas.fit(split.train, None, TrainOptions(threads=2, validation=False))
    wall = time.perf_counter() - t
    steps_s = float(sas.train_history_[-1]["train_seconds"])
    per_s = args.sasrec_steps * c.batch_size / steps_s
    rec.update(sasrec_windows=windows, sasrec_steps=args.sasrec_steps, sasrec_steps_s=steps_s,
               sasrec_samples_per_s=per_s, sasrec_epoch_s=windows / per_s, sasrec_prep_s=wall - steps_s,
               sasrec_rss=rss_mb())

    vectors = np.ascontiguousarray(als.item_factors_, dtype=np.float32)
    users = np.ascontiguousarray(als.user_factors_, dtype=np.float32)
    t = time.perf_counter()
    index = make_retriever(vectors, backend="faiss")
    rec["ann_build_s"] = time.perf_counter() - t
    seen = split.train.csr
    lat = []
    for u in rng.choice(len(users), size=args.queries, replace=True):
        excl = [seen.indices[seen.indptr[u]:seen.indptr[u + 1]].astype(np.int64)]
        t = time.perf_counter()
        index.search(users[u], 10, exclude=excl)
        lat.append((time.perf_counter() - t) * 1000)
    rec.update(ann_p50_ms=float(np.percentile(lat, 50)), ann_p99_ms=float(np.percentile(lat, 99)),
               ann_rss=rss_mb(), load_after=os.getloadavg()[0],
               when=datetime.now(timezone.utc).isoformat(timespec="minutes"))
    return rec


# ------------------------------------------------------------------ parent
def run_point(args: argparse.Namespace, curve: str, events: int, items: int | None) -> dict:
    log = log_path(args.work, events, items)
    cmd = [sys.executable, __file__, "--child", "--curve", curve, "--log", str(log), "--events", str(events),
           "--items", str(items or 0), "--eval-users", str(args.eval_users), "--sasrec-steps",
           str(args.sasrec_steps), "--queries", str(args.queries)]
    print(f"{curve}: {events:,} events" + (f", {items:,} items" if items else ""), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="2"))
    if proc.returncode != 0:
        return {"curve": curve, "log_events": events, "log_items": items or 0,
                "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(rec), file=sys.stderr, flush=True)
    return rec


def _s(x: float) -> str:
    if x >= 600:
        return f"{x / 60:,.0f} min"
    return f"{x:,.1f} s" if x >= 10 else f"{x:,.2f} s"


def _growth(rows: list[dict], key: str) -> str:
    """The last point's value over the first one's."""
    a, b = rows[0].get(key), rows[-1].get(key)
    return f"{b / a:,.0f}×" if a and b else "–"


def table(rows: list[dict], first: str) -> list[str]:
    """One curve: a row per stage, a column per point, and the growth from the first point to the last."""
    ok = [r for r in rows if "error" not in r]
    heads = [f"{r['events']:,} events, {r['users']:,} users, {r['items']:,} items" for r in ok]
    stages = [
        ("ingest (read, clean, code ids)", lambda r: _s(r["ingest_s"]), "ingest_s"),
        ("split (general protocol)", lambda r: _s(r["split_s"]), "split_s"),
        ("peak RSS after ingest + split", lambda r: f"{r['split_rss']:,.0f} MB", "split_rss"),
        ("ALS epoch (64 factors)", lambda r: _s(r["als_epoch_s"]), "als_epoch_s"),
        ("evaluation, full ranking, per 1,000 test users",
         lambda r: _s(r["eval_s"] * 1000 / r["eval_users"]), None),
        ("evaluation of every test user (projected)",
         lambda r: f"{_s(r['eval_all_s'])} ({r['eval_all_users']:,} users)", "eval_all_s"),
        ("SASRec sampled softmax: samples/s", lambda r: f"{r['sasrec_samples_per_s']:,.0f}", None),
        ("SASRec data preparation (windows, sampler)", lambda r: _s(r["sasrec_prep_s"]), "sasrec_prep_s"),
        ("SASRec epoch (projected from the steps)",
         lambda r: f"{_s(r['sasrec_epoch_s'])} ({r['sasrec_windows']:,} windows)", "sasrec_epoch_s"),
        ("HNSW build over the item vectors", lambda r: _s(r["ann_build_s"]), "ann_build_s"),
        ("HNSW search, one user, p50 / p99", lambda r: f"{r['ann_p50_ms']:.2f} / {r['ann_p99_ms']:.2f} ms",
         "ann_p50_ms"),
        ("peak RSS of the whole point", lambda r: f"{r['ann_rss']:,.0f} MB", "ann_rss"),
    ]
    lines = [f"| stage | {' | '.join(heads)} | growth, first → last |", "|---|" + "---:|" * (len(ok) + 1)]
    for name, fmt, key in stages:
        lines.append(f"| {name} | {' | '.join(fmt(r) for r in ok)} | {_growth(ok, key) if key else '–'} |")
    for r in rows:
        if "error" in r:
            lines.append(f"| {first} {r['log_events']:,} / {r['log_items']:,}: **failed** ({r['error']}) | "
                         + " | " * len(ok) + " |")
    return lines


def render(records: list[dict], command: str) -> str:
    """The ``report`` section of docs/scaling.md."""
    ev = sorted((r for r in records if r["curve"] == "events"), key=lambda r: r["log_events"])
    it = sorted((r for r in records if r["curve"] == "items"), key=lambda r: r["log_items"])
    ok = [r for r in records if "error" not in r]
    loads = [r[k] for r in ok for k in ("load_before", "load_after")] or [0.0]
    whens = sorted(r["when"] for r in ok)
    lines = ["## Where each stage's cost grows: 1M → 50M events, 10k → 1M items", "",
             context_line(f"Run {whens[0][:16].replace('T', ' ')}–{whens[-1][11:16]} UTC on {machine()}; one fresh process per "
                          f"point (column); {load_words(loads, 2)}. Logs from the synthetic generator "
                          "(`make_synthetic_events.py`: sessions, power-law users and items, dirty rows)."), ""]
    if ev:
        lines += ["### More events (users and items grow with them: users = events / 40, items = events / 100)",
                  "", *table(ev, "events"), ""]
    if it:
        lines += [f"### More items, the same {ITEMS_CURVE_EVENTS:,}-event log size (item popularity ∝ (rank + 10)"
                  f"^-{ITEMS_CURVE_EXPONENT:g}, flatter than above, so that the log touches most of the catalogue)", "",
                  *table(it, "items"), ""]
    r0 = ok[0] if ok else {}
    lines += [context_line(
        f"Evaluation scores {r0.get('eval_users', 0):,} sampled test users against every item and scales the time "
        "to all of them. SASRec trains "
        f"{r0.get('sasrec_steps', 0)} steps of batch 256 (max_len 50, 256 sampled negatives, logQ correction) in one "
        "process with 2 threads; its epoch is the windows over the samples/s. The HNSW index is faiss's (M = 32, "
        "efConstruction 80, efSearch 64, the server's defaults) over ALS's item vectors, built with both cores; a search is one user's, "
        "with their training items excluded, as a known user's request is."), "",
        f"Reproduce: `{command}`"]
    return "\n".join(lines)


def read_records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--curve", choices=("events", "items", "both"), default="both")
    ap.add_argument("--events", type=int, nargs="+", default=list(EVENTS), help="log sizes of the events curve")
    ap.add_argument("--items", type=int, nargs="+", default=list(ITEMS), help="catalogue sizes of the items curve")
    ap.add_argument("--work", type=Path, default=WORK / "scaling", help="where the generated logs are kept")
    ap.add_argument("--eval-users", type=int, default=2000)
    ap.add_argument("--sasrec-steps", type=int, default=60)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--results", type=Path, default=RESULTS, help="the records' file (JSON lines)")
    ap.add_argument("--reuse", action="store_true", help="measure nothing: render the last records")
    ap.add_argument("--write-docs", action="store_true", help="write the report section of docs/scaling.md")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.events, args.items = args.events[0], args.items[0]
        print(json.dumps(point(args)), flush=True)
        return
    records = read_records(args.results)
    if not args.reuse:
        fresh = []
        if args.curve in ("events", "both"):
            fresh += [run_point(args, "events", n, None) for n in args.events]
        if args.curve in ("items", "both"):
            fresh += [run_point(args, "items", ITEMS_CURVE_EVENTS, n) for n in args.items]
        redone = {r["curve"] for r in fresh}
        records = [r for r in records if r["curve"] not in redone] + fresh
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text("".join(json.dumps(r) + "\n" for r in records))
    if not records:
        raise SystemExit(f"no records in {args.results}: run without --reuse first")
    text = render(records, "python benchmarks/bench_scaling.py --write-docs")
    print(text)
    if args.write_docs:
        write_doc_section("report", text, SCALING)
        print(f"updated {SCALING}", file=sys.stderr)


if __name__ == "__main__":
    main()
