"""Durability through the real HTTP server: ``zenrec serve`` is SIGKILLed while clients post events.

Four client threads post events (single and small batches, a unique ``event_id`` each) to a
``zenrec serve`` process as fast as they can and note which ids were acknowledged (HTTP 200).  The
server is then killed with SIGKILL mid-load.  The test proves that

* every acknowledged event is in the store, once, under the ``seq`` it was acknowledged with (0 lost);
* a restarted server on the same store replays them: a user whose only event was acknowledged just
  before the kill is scored from it (its list is the list of that one-item session, item excluded);
* the client retrying every event it tried (acknowledged or not) with the same ids stores each id
  exactly once: acknowledged ones come back ``duplicate: true`` with their original ``seq``, and the
  store ends with one row per distinct id tried.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import httpx
import pytest

from zenrec.models.bundle import ModelBundle
from zenrec.store.events import EventStore

CLIENTS = 4
KILL_AT_ACKS = 300  # kill once this many events are acknowledged …
KILL_AFTER_S = 3.0  # … or this long after the load started, whichever comes first
RETRY_BATCH = 250


class Load:
    """Client threads posting events; what each tried and what was acknowledged (event_id -> seq)."""

    def __init__(self, url: str, users: list, items: list) -> None:
        self.url = url
        self.users, self.items = users, items
        self.lock = threading.Lock()
        self.tried: list[dict] = []  # every event sent, in order, with its id
        self.acked: dict[str, int] = {}  # event_id -> seq, in acknowledgement order
        self.http_errors: list[str] = []  # any answer but 200 while the server was up
        self.odd: list[str] = []  # a 200 whose body does not acknowledge exactly what was sent
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(CLIENTS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(20)
        assert not any(t.is_alive() for t in self.threads), "a client thread hung"

    def _event(self, rng: random.Random, eid: str) -> dict:
        item = rng.choice(self.items)
        if rng.random() < 0.5:
            user = f"fresh-{eid}"  # a user unseen in training whose only event is this one
        else:
            user = rng.choice(self.users)
        return {"user": user, "item": item, "type": rng.choice(["view", "click", "cart"]), "event_id": eid}

    def _run(self, t: int) -> None:
        rng = random.Random(1000 + t)
        n = 0
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                size = rng.choice([1, 1, 1, 2, 3, 5])
                events = []
                for _ in range(size):
                    events.append(self._event(rng, f"h{t}-{n}"))
                    n += 1
                with self.lock:
                    self.tried.extend(events)
                body = events[0] if size == 1 and rng.random() < 0.7 else {"events": events}
                try:
                    r = client.post("/events", json=body)
                except httpx.TransportError:
                    return  # the server is gone: these events are unacknowledged
                if r.status_code != 200:
                    with self.lock:
                        self.http_errors.append(f"{r.status_code} {r.text[:300]}")
                    continue
                stored = r.json()["stored"]
                ids = [e["event_id"] for e in events]
                with self.lock:
                    if [s["event_id"] for s in stored] != ids or any(s["duplicate"] for s in stored):
                        self.odd.append(f"sent {ids}, acknowledged {stored}")
                    for s in stored:
                        self.acked[s["event_id"]] = int(s["seq"])


def _read_store(url: str) -> list:
    with EventStore(url) as store:
        return store.events_since(0)


@pytest.mark.slow
def test_acknowledged_events_survive_sigkill_of_http_server(model_dirs, tmp_path, serve_process):
    t_start = time.monotonic()
    model_dir = model_dirs("ease")
    bundle = ModelBundle.load(model_dir)
    users = [int(u) if not isinstance(u, str) else u for u in bundle.users.all_ids[:200]]
    items = [int(i) if not isinstance(i, str) else i for i in bundle.items.all_ids]
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    log = tmp_path / "server.log"

    # ---------------------------------------------------------------- load, then SIGKILL
    first = serve_process(model_dir, store_url, log)
    load = None
    try:
        health = first.wait_healthy()
        assert health["events_replayed"] == 0
        load = Load(first.url, users, items)
        t_load = time.monotonic()
        load.start()
        while len(load.acked) < KILL_AT_ACKS and time.monotonic() - t_load < KILL_AFTER_S:
            assert first.proc.poll() is None, f"the server died under load:\n{first.tail()}"
            time.sleep(0.01)
        os.kill(first.proc.pid, signal.SIGKILL)  # the Python server process itself (Popen runs no shell)
        first.proc.wait(10)
        load.join()
    finally:
        if load is not None:
            load.stop.set()
        if first.proc.poll() is None:
            first.proc.kill()
            first.proc.wait(10)
    assert first.proc.returncode == -signal.SIGKILL, "the server was not killed by the SIGKILL"
    t_kill = time.monotonic() - t_load

    assert not load.http_errors, f"{len(load.http_errors)} non-200 answers under load, e.g. {load.http_errors[:3]}"
    assert not load.odd, load.odd[:3]
    tried_ids = [e["event_id"] for e in load.tried]
    assert len(set(tried_ids)) == len(tried_ids)
    acked = dict(load.acked)
    assert len(acked) >= 20, f"only {len(acked)} events acknowledged in {t_kill:.1f} s of load:\n{first.tail()}"
    assert len(tried_ids) > len(acked), "nothing was in flight at the kill"

    # ---------------------------------------------------------------- the store after the kill
    rows = _read_store(store_url)
    by_id: dict[str, list[int]] = {}
    for r in rows:
        by_id.setdefault(r.event_id, []).append(r.seq)
    lost = sorted(set(acked) - set(by_id))
    dups = {k: v for k, v in by_id.items() if len(v) > 1}
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged events lost after SIGKILL, e.g. {lost[:5]}"
    assert not dups, f"event ids stored twice: {list(dups.items())[:5]}"
    assert set(by_id) <= set(tried_ids), "the store holds events nobody sent"
    moved = {k: (s, by_id[k][0]) for k, s in acked.items() if by_id[k][0] != s}
    assert not moved, f"acknowledged seq differs from the stored one: {list(moved.items())[:5]}"
    unacked_stored = len(by_id) - len(acked)  # committed, but the answer never reached the client

    # ---------------------------------------------------------------- restart on the same store
    second = serve_process(model_dir, store_url, log)
    try:
        health = second.wait_healthy()
        assert health["events_replayed"] == len(rows), (health, len(rows))
        with httpx.Client(base_url=second.url, timeout=30) as c:
            # the last acknowledged event of a fresh user (its only event): the restarted server scores
            # that user from it, exactly like the one-item session, and leaves the item out
            probe = next((e for e in reversed(load.tried)
                          if e["event_id"] in acked and e["user"] == f"fresh-{e['event_id']}"), None)
            assert probe is not None, "no acknowledged event of a fresh user"
            listed = c.get(f"/users/{probe['user']}/recommendations", params={"k": 50})
            assert listed.status_code == 200, listed.text
            got = listed.json()
            assert got.get("fallback") is None, f"user {probe['user']} not replayed: {got}"
            got_items = [x["item"] for x in got["items"]]
            assert probe["item"] not in got_items
            session = c.post("/recommendations", json={"items": [probe["item"]], "k": 50}).json()
            assert got_items == [x["item"] for x in session["items"]]
            never = c.get("/users/fresh-never-posted/recommendations", params={"k": 50}).json()
            assert never.get("fallback") == "popular" and got_items != [x["item"] for x in never["items"]]

            # the client retries every event it tried, acknowledged or not, with the same ids
            answers: dict[str, dict] = {}
            for k in range(0, len(load.tried), RETRY_BATCH):
                chunk = load.tried[k : k + RETRY_BATCH]
                r = c.post("/events", json={"events": chunk})
                assert r.status_code == 200, r.text[:500]
                stored = r.json()["stored"]
                assert [s["event_id"] for s in stored] == [e["event_id"] for e in chunk]
                answers.update((s["event_id"], s) for s in stored)
            not_dup = [k for k in acked if answers[k]["duplicate"] is not True]
            assert not not_dup, f"acknowledged events stored again on retry: {not_dup[:5]}"
            reseq = [k for k in acked if answers[k]["seq"] != acked[k]]
            assert not reseq, f"retry answered another seq for acknowledged events: {reseq[:5]}"
            assert all(answers[k]["duplicate"] for k in by_id)  # stored but unacknowledged: also duplicates
            assert all(not answers[k]["duplicate"] for k in set(tried_ids) - set(by_id))
            # a second retry of everything is all duplicates
            again = c.post("/events", json={"events": load.tried[:RETRY_BATCH]}).json()["stored"]
            assert all(s["duplicate"] for s in again)
    finally:
        second.stop()
    assert second.proc.returncode is not None

    # ---------------------------------------------------------------- one row per distinct id tried
    final = _read_store(store_url)
    final_ids = [r.event_id for r in final]
    assert len(final) == len(set(tried_ids)), (len(final), len(set(tried_ids)))
    assert len(set(final_ids)) == len(final_ids), "an event id appears twice"
    assert set(final_ids) == set(tried_ids)

    elapsed = time.monotonic() - t_start
    print(f"\nHTTP durability: tried {len(tried_ids)}, acknowledged {len(acked)}, lost 0, duplicates 0, "
          f"stored-but-unacknowledged {unacked_stored}, killed after {t_kill:.2f} s of load; "
          f"total {elapsed:.1f} s")
