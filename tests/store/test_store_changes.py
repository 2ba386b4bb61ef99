"""What servers sharing a store follow: the erasure records and, on PostgreSQL, the change notifications."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from zenrec.errors import ConfigError
from zenrec.store.changes import StoreListener
from zenrec.store.erasure import erase_user_events, user_hash
from zenrec.store.events import Event, EventStore, StoreError

KEY = b"changes-test-key"
RAW = "erase-me-7fQ2"  # distinctive: the erasures table must never hold it


def test_an_erasure_is_recorded_by_hash_with_the_last_seq_it_covered(store):
    store.append([Event(RAW, "i1"), Event("other", "i2"), Event(RAW, "i3")])
    assert store.last_seq() == 3 and store.last_erasure_seq() == 0
    h = user_hash(KEY, RAW)
    assert erase_user_events(store, RAW, h) == {"events": 2, "served_lists": 0}
    (rec,) = store.erasures_since(0)
    # seq 3 (the user's own, the newest) is covered although it is deleted
    assert (rec.seq, rec.user_hash, rec.through_seq) == (1, h, 3)
    assert store.last_erasure_seq() == 1 and store.erasures_since(1) == []
    store.append([Event(RAW, "i4")])  # the user again, afterwards: a later seq than the erasure covered
    assert [e.seq for e in store.user_events(RAW)] == [4]
    erase_user_events(store, "never-seen", user_hash(KEY, "never-seen"))
    assert [r.through_seq for r in store.erasures_since(0)] == [3, 4]  # recorded also with nothing to delete
    with store._engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM erasures")).all()
    assert not any(RAW in str(v) for row in rows for v in row)


def test_erasure_records_are_refused_without_a_proper_hash_and_optional(store):
    store.append([Event(RAW, "i1")])
    for bad in (RAW, "ab" * 31, "AB" * 32, 7):
        with pytest.raises(ConfigError, match="user_hash"):
            erase_user_events(store, RAW, bad)
    assert len(store.user_events(RAW)) == 1  # nothing was deleted by a refused call
    assert erase_user_events(store, RAW)["events"] == 1  # without a hash: deleted, not recorded
    assert store.erasures_since(0) == []
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ConfigError, match="'seq'"):
            store.erasures_since(bad)


def test_a_tailer_sees_every_erasure_of_concurrent_writers(store_url):
    writers, per_writer = 3, 15
    errors: list[BaseException] = []

    def work(w: int) -> None:
        try:
            with EventStore(store_url) as st:
                for n in range(per_writer):
                    user = f"u{w}-{n}"
                    st.append([Event(user, "i1")])
                    erase_user_events(st, user, user_hash(KEY, user))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with EventStore(store_url) as reader:
        seen, done = [], threading.Event()

        def tail() -> None:
            last = 0
            while True:
                finished = done.is_set()
                page = reader.erasures_since(last)
                if page:
                    seen.extend(page)
                    last = page[-1].seq
                elif finished:
                    return

        t = threading.Thread(target=tail)
        t.start()
        threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        done.set()
        t.join(60)
        assert not errors, errors[:3]
        assert [r.seq for r in seen] == [r.seq for r in reader.erasures_since(0)]
        assert len(seen) == writers * per_writer
        # each erasure covered its user's event: the event's seq is at most the erasure's through_seq
        assert reader.count() == 0


def test_the_listener_wakes_on_commits_of_other_writers(store_url):
    with EventStore(store_url) as store:
        if store.dialect == "sqlite":
            assert StoreListener.open(store) is None
            with pytest.raises(StoreError, match="only PostgreSQL"):
                StoreListener(store)
            return
        listener = StoreListener.open(store)
        assert listener is not None
        try:
            t0 = time.monotonic()
            assert listener.wait(0.2) is False and time.monotonic() - t0 >= 0.15  # nothing happened
            with EventStore(store_url) as other:  # another replica's connections
                threading.Timer(0.1, lambda: other.append([Event("u1", "i1")])).start()
                assert listener.wait(10) is True
                other.append([Event("u1", "i1", event_id="e1")])
                assert listener.wait(10) is True
                other.append([Event("u1", "i1", event_id="e1")])  # a duplicate stores nothing: no wake-up
                assert listener.wait(0.3) is False
                erase_user_events(other, "u2", user_hash(KEY, "u2"))
                assert listener.wait(10) is True
        finally:
            listener.close()
        assert listener.closed
