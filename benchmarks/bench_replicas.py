"""Replica propagation: how soon an event posted to one ``zenrec serve`` is in another's answer.

Two ``zenrec serve`` processes (A and B) on loopback serve one model registry
(EASE on the bundled ml-100k, trained here in a few seconds) and share one
event store.  Per mode:

* ``notify``: PostgreSQL; B reads the store's tail when a commit notifies it
  (LISTEN/NOTIFY) and every ``--sync-seconds`` (the default setting);
* ``poll``: PostgreSQL with ``--no-sync-notify``: the tail read every ``--sync-seconds`` only;
* ``sqlite``: both processes on one SQLite file (the tail read every ``--sync-seconds``).

**Events** (``--events`` trials, each on a user not used before): B's list for
the user (k=10, so B caches the user's score row), a random pause of up to
``--sync-seconds`` (so the post does not fall at the same point of B's poll
cycle every time), the event for the list's top item posted to A, then B's
list read every ``--probe-ms`` until the item is gone (``exclude_seen``).
Propagation = from A's acknowledgement (the event is committed) to the first
answer of B without the item; it includes up to one probe interval of
measurement slack.  **Erasures** (``--erasures`` trials): ``DELETE
/users/{id}`` on A (from a thread) while B's list is read until it says
``fallback: popular``; from sending the DELETE.  A answers only after
rewriting every version's files (reported beside), but it records the
erasure in the store first, so B may forget the user before A answers; the
time from that record (its ``created`` stamp, written by A on this machine's
clock) to B's answer is reported too.  **Promotions** (``--promotions`` trials): ``ModelRegistry.promote``
alternating between two versions, then both servers' ``/healthz`` until both
serve it; from the promotion (the servers poll the registry every 0.5 s, then
load the version).

No other load runs; the two servers, PostgreSQL and this client share the
machine's cores (no pinning).  Writes one JSON line per mode to
``benchmarks/.work/results/replicas.jsonl``; ``--write-docs`` renders the
``replicas`` section of ``docs/scaling.md``.

    bash scripts/with_postgres.sh .venv/bin/python benchmarks/bench_replicas.py --write-docs   # ~3 min
    .venv/bin/python benchmarks/bench_replicas.py --modes sqlite --events 50                 # no PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import REPO, WORK, context_line, load_words, machine, write_doc_section  # noqa: E402

from zenrec.serve.process import ServeProcess  # noqa: E402

RESULTS = WORK / "results" / "replicas.jsonl"
DOC = REPO / "docs" / "scaling.md"
COMMAND = "bash scripts/with_postgres.sh .venv/bin/python benchmarks/bench_replicas.py --write-docs"
MODES = ("notify", "poll", "sqlite")


def server(source: Path, store: str, log: Path, args: list[str]) -> ServeProcess:
    """``zenrec serve`` as a child process (no served-list log; a fixed erasure key), its output in ``log``."""
    return ServeProcess(source, store, log, "--no-served-log", *args,
                        env={"ZENREC_ERASURE_KEY": "bench-replicas-erasure-key"})


def make_registry(root: Path) -> tuple[Path, list[str], list]:
    """A registry with two EASE versions (different regularisation) on ml-100k; the users to probe."""
    from zenrec.datasets import load_ml100k
    from zenrec.models.base import TrainOptions
    from zenrec.models.bundle import train_bundle
    from zenrec.store.registry import ModelRegistry

    ds = load_ml100k()
    reg = ModelRegistry(root)
    versions = []
    for reg_value in (250.0, 500.0):
        bundle = train_bundle(ds, "ease", {"reg": reg_value}, TrainOptions(threads=1))
        versions.append(reg.add(bundle, note=f"ease reg={reg_value:g}"))
    reg.promote(versions[0], "benchmark")
    users = [u.item() if hasattr(u, "item") else u for u in ds.users.all_ids]
    return root, versions, users


def new_store(mode: str, work: Path, base_pg: str | None) -> tuple[str, object]:
    """A fresh store URL for ``mode`` and a cleanup callable."""
    if mode == "sqlite":
        path = work / f"sqlite-{uuid.uuid4().hex[:8]}" / "events.db"
        return f"sqlite:///{path}", lambda: None
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin = sa.create_engine(base_pg, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()

    url = make_url(base_pg).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), drop


def percentiles(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0}
    xs = sorted(ms)

    def q(p: float) -> float:
        return round(xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))], 2)

    return {"n": len(xs), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(xs[-1], 2),
            "mean": round(statistics.fmean(xs), 2)}


def run_mode(mode: str, args: argparse.Namespace, source: Path, versions: list[str], users: list,
             base_pg: str | None) -> dict:
    import httpx

    from zenrec.store.registry import ModelRegistry

    # a fresh copy of the registry: the erasures of a mode rewrite its versions' files
    source = Path(shutil.copytree(source, args.work / f"registry-{mode}-{uuid.uuid4().hex[:8]}"))
    reg = ModelRegistry(source)
    store, cleanup = new_store(mode, args.work, base_pg)
    extra = ["--sync-seconds", str(args.sync_seconds)] + (["--no-sync-notify"] if mode == "poll" else [])
    logs = args.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    a = server(source, store, logs / f"{mode}-a.log", extra)
    b = server(source, store, logs / f"{mode}-b.log", extra)
    rng = random.Random(args.seed)
    pool = list(users)
    rng.shuffle(pool)
    probe = args.probe_ms / 1000.0
    out: dict = {"mode": mode, "sync_seconds": args.sync_seconds, "probe_ms": args.probe_ms, "time": time.time(),
                 "load_before": round(os.getloadavg()[0], 2)}
    try:
        a.wait_healthy()
        hb = b.wait_healthy()
        out["listening"] = hb["sync"].get("listening")
        with httpx.Client(base_url=a.url, timeout=10) as ca, httpx.Client(base_url=b.url, timeout=10) as cb:
            # warm-up, not timed: the first event and the first erasure load code paths and build indexes
            warm = "bench-warm-up"
            assert ca.post("/events", json={"user": warm, "item": 50}).status_code == 200
            assert ca.delete(f"/users/{warm}").status_code == 200
            time.sleep(2 * args.sync_seconds + 0.5)
            lat, post_ms, lost = [], [], 0
            for n in range(args.events):
                user = pool[n % len(pool)]
                top = cb.get(f"/users/{user}/recommendations", params={"k": 10}).json()["items"][0]["item"]
                time.sleep(rng.uniform(0, args.sync_seconds))
                t0 = time.perf_counter()
                r = ca.post("/events", json={"user": user, "item": top, "event_id": f"{mode}-{n}"})
                acked = time.perf_counter()
                if r.status_code != 200:
                    raise SystemExit(f"POST /events on A: {r.status_code} {r.text}")
                post_ms.append((acked - t0) * 1000)
                deadline = acked + args.deadline
                while True:
                    body = cb.get(f"/users/{user}/recommendations", params={"k": 10}).json()
                    now = time.perf_counter()
                    if top not in [x["item"] for x in body["items"]]:
                        lat.append((now - acked) * 1000)
                        break
                    if now > deadline:
                        lost += 1
                        break
                    time.sleep(probe)
            out["events"] = percentiles(lat)
            out["events"]["lost"] = lost
            out["post_ms_p50"] = round(statistics.median(post_ms), 2)

            er, delete_ms, from_record = [], [], []
            import sqlalchemy as sa

            engine = sa.create_engine(store)
            for n in range(args.erasures):
                user = pool[-(n + 1)]
                cb.get(f"/users/{user}/recommendations", params={"k": 10})
                time.sleep(rng.uniform(0, args.sync_seconds))
                answer: dict = {}

                def delete(user: object = user, answer: dict = answer) -> None:  # B is probed meanwhile
                    with httpx.Client(base_url=a.url, timeout=30) as c:
                        answer["response"] = c.delete(f"/users/{user}")
                    answer["done"] = time.perf_counter()

                sent = time.perf_counter()
                worker = threading.Thread(target=delete)
                worker.start()
                while True:
                    body = cb.get(f"/users/{user}/recommendations", params={"k": 10}).json()
                    now = time.perf_counter()
                    if body["fallback"] == "popular" or now > sent + args.deadline:
                        seen_wall = time.time()
                        er.append((now - sent) * 1000 if body["fallback"] == "popular" else float("inf"))
                        if body["fallback"] != "popular":
                            print(f"erasure of {user!r} not seen on B within {args.deadline:g} s: {body} "
                                  f"{cb.get('/healthz').json()}", file=sys.stderr, flush=True)
                        break
                    time.sleep(probe)
                worker.join(60)
                r = answer["response"]
                if r.status_code != 200:
                    raise SystemExit(f"DELETE on A: {r.status_code} {r.text}")
                delete_ms.append((answer["done"] - sent) * 1000)
                with engine.connect() as conn:  # when A wrote the trial's first erasure record (its clock: ours)
                    created = conn.execute(sa.text("SELECT created FROM erasures ORDER BY seq DESC LIMIT 2")).all()
                if er[-1] != float("inf"):
                    from_record.append((seen_wall - float(created[-1][0])) * 1000)
            engine.dispose()
            out["erasures"] = percentiles([x for x in er if x != float("inf")])
            out["erasures"]["lost"] = sum(x == float("inf") for x in er)
            out["delete_ms_p50"] = round(statistics.median(delete_ms), 2) if delete_ms else None
            out["erasures_from_record"] = percentiles(from_record)

            pr = []
            for n in range(args.promotions):
                target = versions[(n + 1) % 2]
                reg.promote(target, "benchmark")
                t0 = time.perf_counter()
                pending = {a.url: ca, b.url: cb}
                while pending and time.perf_counter() < t0 + 60:
                    for url, c in list(pending.items()):
                        if c.get("/healthz").json()["model_version"] == target:
                            del pending[url]
                    time.sleep(0.01)
                if not pending:
                    pr.append((time.perf_counter() - t0) * 1000)
            out["promotions"] = percentiles(pr)
            out["promotions"]["lost"] = args.promotions - len(pr)
            out["followed_b"] = cb.get("/healthz").json()["sync"]
            out["load_after"] = round(os.getloadavg()[0], 2)
    finally:
        a.stop()
        b.stop()
        cleanup()
        shutil.rmtree(source, ignore_errors=True)
    return out


def render(rows: list[dict]) -> str:
    label = {"notify": "PostgreSQL, LISTEN/NOTIFY + seq poll", "poll": "PostgreSQL, seq poll only (`--no-sync-notify`)",
             "sqlite": "one SQLite file, seq poll"}
    lines = ["## Replica propagation", "",
             context_line("Two `zenrec serve` processes share one event store. An event posted to A, and an erasure "
                          "(`DELETE /users/{id}`) on A, are timed until B's next answer for that user shows them; a "
                          "promotion until both servers serve it. Milliseconds to B's first answer that shows the "
                          "change: for events from A's acknowledgement (the commit), for erasures from sending the "
                          "DELETE and from the erasure's record in the store (A records the erasure first and "
                          "answers after rewriting every version's files: the DELETE column), for promotions from "
                          "the promotion."), "",
             "| store, how B learns | sync interval | events | event p50 | p90 | p99 | max | erasure p50 | max "
             "| from its record p50 | max | DELETE p50 | promotion p50 | max | A's POST p50 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e, x, p, fr = r["events"], r["erasures"], r["promotions"], r.get("erasures_from_record", {})
        lost = f" ({e['lost']} lost)" if e.get("lost") else ""
        lines.append(f"| {label[r['mode']]} | {r['sync_seconds'] * 1000:.0f} ms | {e['n']}{lost} | {e['p50']} | "
                     f"{e['p90']} | {e['p99']} | {e['max']} | {x.get('p50', '–')} | {x.get('max', '–')} | "
                     f"{fr.get('p50', '–')} | {fr.get('max', '–')} | "
                     f"{r.get('delete_ms_p50') or '–'} | {p.get('p50', '–')} | {p.get('max', '–')} | "
                     f"{r['post_ms_p50']} |")
    probe = rows[0]["probe_ms"] if rows else 2
    seen = [r[k] for r in rows for k in ("load_before", "load_after") if k in r]
    busy = load_words(seen, 2) if seen else "the load average was not recorded"
    lines += ["", context_line(f"B is probed every {probe:g} ms (plus the time of one list, about a millisecond), "
                               "so a time includes up to that much slack. EASE on ml-100k (1,682 items), two registry "
                               f"versions; {busy}. Machine: " + machine() + "."),
              "", context_line("The bound: an event is in another replica's answers at most one sync interval "
                               "(`--sync-seconds`, default 0.1 s) plus one read of the store's tail after its commit; "
                               "on PostgreSQL a notification usually wakes the read at once. A promotion waits for "
                               "the registry poll (0.5 s) and the load of the version."), "",
              f"Reproduce: `{COMMAND}`"]
    return "\n".join(lines)


def write_docs(rows: list[dict]) -> None:
    if not DOC.exists():
        DOC.write_text("# Scaling\n")
    write_doc_section("replicas", render(rows), DOC)
    print(f"wrote the replicas section of {DOC.relative_to(REPO)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    ap.add_argument("--events", type=int, default=300, help="event trials per mode")
    ap.add_argument("--erasures", type=int, default=20, help="erasure trials per mode")
    ap.add_argument("--promotions", type=int, default=6, help="promotion trials per mode")
    ap.add_argument("--sync-seconds", type=float, default=0.1, help="the servers' --sync-seconds")
    ap.add_argument("--probe-ms", type=float, default=2.0, help="pause between two reads of B's list")
    ap.add_argument("--deadline", type=float, default=10.0, help="seconds after which a change counts as lost")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=WORK / "replicas")
    ap.add_argument("--postgres", default=os.environ.get("ZENREC_TEST_POSTGRES_URL"),
                    help="PostgreSQL URL for the notify and poll modes (default: $ZENREC_TEST_POSTGRES_URL, set by "
                         "scripts/with_postgres.sh)")
    ap.add_argument("--write-docs", action="store_true", help="render the replicas section of docs/scaling.md")
    ap.add_argument("--reuse", action="store_true", help="with --write-docs: from the saved results only")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"unknown mode {bad[0]!r}; expected some of {', '.join(MODES)}")
    if any(m != "sqlite" for m in modes) and not args.postgres and not args.reuse:
        ap.error("the notify and poll modes need PostgreSQL: run through scripts/with_postgres.sh, give --postgres "
                 "URL, or use --modes sqlite")
    if args.events < 1 or args.erasures < 0 or args.promotions < 0 or not 0 < args.sync_seconds <= 60:
        ap.error("--events must be >= 1, --erasures and --promotions >= 0, --sync-seconds in (0, 60]")
    if args.reuse:
        latest: dict[str, dict] = {}
        for line in RESULTS.read_text().splitlines() if RESULTS.exists() else []:
            rec = json.loads(line)
            latest[rec["mode"]] = rec
        rows = [latest[m] for m in modes if m in latest]
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        reg_root = args.work / f"registry-{uuid.uuid4().hex[:8]}"
        source, versions, users = make_registry(reg_root)  # pristine: each mode serves a copy
        rows = []
        for mode in modes:
            rec = run_mode(mode, args, source, versions, users, args.postgres)
            print(json.dumps(rec, sort_keys=True), flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with open(RESULTS, "a") as fh:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
            rows.append(rec)
        shutil.rmtree(reg_root, ignore_errors=True)
    if args.write_docs:
        write_docs(rows)


if __name__ == "__main__":
    main()
