"""EventStore and BatchWriter on SQLite and PostgreSQL: round trip, idempotency, validation, batching."""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timezone

import pytest

from zenrec.errors import ConfigError, DataError
from zenrec.store import BatchWriter, Event, EventStore, Stored, StoreError
from zenrec.store.events import FRAME_COLUMNS, MAX_ID_LENGTH


def test_append_and_read_round_trip(store):
    got = store.append(
        [
            Event("u1", "i1", "view", timestamp=100.0, event_id="e1"),
            Event("u1", "i2", "purchase", value=2.5, timestamp=50.0, list_id="L7", model_version="v0003"),
            {"user": "u2", "item": "i1", "type": "rating", "value": 4, "timestamp": 75, "event_id": "e3"},
        ]
    )
    assert [s.duplicate for s in got] == [False, False, False]
    assert [s.event_id for s in got] == ["e1", None, "e3"]
    assert len({s.seq for s in got}) == 3
    assert got[0].seq < got[1].seq < got[2].seq  # seqs follow the batch order
    assert store.count() == 3

    hist = store.user_events("u1")
    assert [(r.item, r.type, r.timestamp) for r in hist] == [("i2", "purchase", 50.0), ("i1", "view", 100.0)]
    assert hist[0].value == 2.5 and hist[0].list_id == "L7" and hist[0].model_version == "v0003"
    assert hist[1].event_id == "e1" and hist[1].list_id is None
    assert [r.item for r in store.user_events("u1", limit=1)] == ["i1"]  # the most recent one
    assert store.user_events("nobody") == []

    since = store.events_since(got[0].seq)
    assert [r.seq for r in since] == [got[1].seq, got[2].seq]
    assert [r.seq for r in store.events_since(0, limit=2)] == [got[0].seq, got[1].seq]

    df = store.frame()
    assert list(df.columns) == list(FRAME_COLUMNS)
    assert df["item"].tolist() == ["i2", "i1", "i1"]  # oldest first
    assert df["event"].tolist() == ["purchase", "rating", "view"]
    assert df["value"].tolist() == [2.5, 4.0, 1.0]
    assert df["event_id"].tolist() == [None, "e3", "e1"]
    assert store.frame(since_ts=60, until_ts=100)["user"].tolist() == ["u2"]
    empty = store.frame(since_ts=1e12)
    assert list(empty.columns) == list(FRAME_COLUMNS) and len(empty) == 0

    assert store.delete_user("u1") == 2
    assert store.count() == 1 and store.user_events("u1") == []
    # a deleted last seq is never handed out again (tailers read by seq)
    later = store.append([Event("u3", "i9")])[0]
    assert later.seq > got[2].seq


def test_reopen_sees_stored_events(store_url):
    with EventStore(store_url) as a:
        a.append([Event("u", "i", event_id="x")])
    with EventStore(store_url) as b:  # the table exists: created once, reused
        assert b.count() == 1
        assert b.append([Event("u", "i", event_id="x")])[0].duplicate


def test_ids_and_defaults_are_normalised(store):
    e = Event(42, 7)
    assert (e.user, e.item, e.type, e.value) == ("42", "7", "click", 1.0)
    assert abs(e.timestamp - datetime.now(timezone.utc).timestamp()) < 60
    assert Event("u", "i", timestamp=datetime(2020, 1, 1)).timestamp == 1577836800.0  # naive = UTC
    store.append([e])
    assert store.user_events(42)[0].item == "7"


def test_idempotent_across_batches(store):
    first = store.append([Event("u", "a", event_id="k1"), Event("u", "b", event_id="k2")])
    again = store.append([Event("u", "c", event_id="k3"), Event("u", "a", event_id="k1")])
    assert again[1] == Stored(first[0].seq, "k1", True)
    assert not again[0].duplicate
    assert store.count() == 3
    # the stored event is the first one, not the retry's content
    assert [r.item for r in store.user_events("u")] == ["a", "b", "c"]


def test_idempotent_within_one_batch(store):
    got = store.append(
        [Event("u", "a", event_id="same"), Event("u", "b"), Event("u", "a", "view", event_id="same"), Event("u", "d")]
    )
    assert got[0].duplicate is False and got[2].duplicate is True
    assert got[2].seq == got[0].seq
    assert store.count() == 3
    # events without an id are never deduplicated
    store.append([Event("u", "b"), Event("u", "b")])
    assert store.count() == 5


def test_concurrent_writers_store_each_id_once(store_url):
    """Four threads (own connections) post the same 60 ids at once: each id is stored once, one owner each."""
    stores = [EventStore(store_url) for _ in range(4)]
    ids = [f"c{i}" for i in range(60)]
    barrier = threading.Barrier(4)
    results: dict[int, list[Stored]] = {}
    errors: list[BaseException] = []

    def post(t: int) -> None:
        try:
            order = ids if t % 2 == 0 else ids[::-1]
            barrier.wait()
            out = []
            for k in range(0, len(order), 5):
                out += stores[t].append([Event("u", eid, event_id=eid) for eid in order[k : k + 5]])
            results[t] = out
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    try:
        assert not errors, errors
        assert stores[0].count() == 60
        seq_of = {r.event_id: r.seq for r in stores[0].events_since(0)}
        fresh: dict[str, int] = {}
        for out in results.values():
            assert len(out) == 60
            for s in out:
                assert s.seq == seq_of[s.event_id]
                fresh[s.event_id] = fresh.get(s.event_id, 0) + (not s.duplicate)
        assert fresh == {eid: 1 for eid in ids}  # exactly one writer inserted each id
    finally:
        for s in stores:
            s.close()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"user": "", "item": "i"}, "user"),
        ({"user": "   ", "item": "i"}, "user"),
        ({"user": None, "item": "i"}, "user"),
        ({"user": "u", "item": 1.5}, "item"),
        ({"user": True, "item": "i"}, "user"),
        ({"user": "u", "item": "x" * (MAX_ID_LENGTH + 1)}, "item"),
        ({"user": "u", "item": "a\x00b"}, "item"),
        ({"user": "u", "item": "i", "type": ""}, "type"),
        ({"user": "u", "item": "i", "value": math.nan}, "value"),
        ({"user": "u", "item": "i", "value": math.inf}, "value"),
        ({"user": "u", "item": "i", "value": "5"}, "value"),
        ({"user": "u", "item": "i", "timestamp": math.nan}, "timestamp"),
        ({"user": "u", "item": "i", "timestamp": "yesterday"}, "timestamp"),
        ({"user": "u", "item": "i", "event_id": ""}, "event_id"),
        ({"user": "u", "item": "i", "list_id": ["L"]}, "list_id"),
    ],
)
def test_invalid_event_names_the_field(kwargs, field):
    with pytest.raises(DataError, match=f"'{field}'") as info:
        Event(**kwargs)
    assert info.value.column == field


def test_bad_batch_stores_nothing_and_names_the_position(store):
    with pytest.raises(DataError, match=r"events\[1\]: event field 'value'") as info:
        store.append([Event("u", "i"), {"user": "u", "item": "j", "value": math.inf}])
    assert info.value.row == 1 and info.value.column == "value"
    with pytest.raises(DataError, match=r"events\[0\]: event field 'item' is required"):
        store.append([{"user": "u"}])
    with pytest.raises(DataError, match="'colour' is not an event field"):
        store.append([{"user": "u", "item": "j", "colour": "red"}])
    with pytest.raises(DataError, match=r"events\[0\]"):
        store.append([("u", "i")])
    with pytest.raises(DataError, match="single Event"):
        store.append(Event("u", "i"))
    assert store.count() == 0
    assert store.append([]) == []


def test_bad_urls_and_parameters(tmp_path):
    with pytest.raises(ConfigError, match="not a database URL"):
        EventStore("events.db")
    with pytest.raises(ConfigError, match="unsupported database 'mysql'"):
        EventStore("mysql://u@localhost/db")
    with pytest.raises(ConfigError, match="file path"):
        EventStore("sqlite://")
    with EventStore(f"sqlite:///{tmp_path}/e.db") as s:
        with pytest.raises(ConfigError, match="'limit'"):
            s.events_since(0, limit=-1)
        with pytest.raises(ConfigError, match="'seq'"):
            s.events_since(-3)
        with pytest.raises(ConfigError, match="'max_batch'"):
            BatchWriter(s, max_batch=0)
        with pytest.raises(ConfigError, match="'max_wait_ms'"):
            BatchWriter(s, max_wait_ms=-1)


def test_unreachable_postgres_is_a_store_error():
    with pytest.raises(StoreError, match="cannot create the events table") as info:
        EventStore("postgresql+psycopg://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
    assert "secret" not in str(info.value)  # the password is never printed


def test_sqlite_is_wal_with_full_sync(tmp_path):
    with EventStore(f"sqlite:///{tmp_path}/deep/dir/events.db") as s:
        with s._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert (tmp_path / "deep" / "dir" / "events.db").exists()


def _pragma(store, name):
    with store._engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_durability_and_background_checkpoints(tmp_path):
    """``os`` durability syncs at checkpoints only; background checkpoints take the log off the commits."""
    path = tmp_path / "events.db"
    with EventStore(f"sqlite:///{path}", durability="os", background_checkpoint=True) as s:
        assert _pragma(s, "synchronous") == 1  # NORMAL
        assert _pragma(s, "wal_autocheckpoint") == 0  # commits never checkpoint
        assert s.checkpointer is not None and s.background_checkpoint
        for i in range(40):
            s.append([Event(f"u{i}", "i", "click")])
        wal = path.with_name("events.db-wal")
        assert wal.stat().st_size > 0
        deadline = time.monotonic() + 10
        while s.checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.checkpointer.checkpoints >= 1 and s.checkpointer.failures == 0
        s.append([Event("late", "i", "click")])  # still writable while the checkpointer runs
    assert not wal.exists() or wal.stat().st_size == 0  # the last checkpoint truncated the log
    with EventStore(f"sqlite:///{path}") as again:
        assert again.count() == 41
        assert _pragma(again, "synchronous") == 2 and _pragma(again, "wal_autocheckpoint") == 1000
        assert again.checkpointer is None
    with pytest.raises(ConfigError, match="durability must be one of fsync, os"):
        EventStore(f"sqlite:///{path}", durability="sometimes")


def test_os_durability_on_each_backend(store_url):
    with EventStore(store_url, durability="os") as s, s._engine.connect() as conn:
        if s.dialect == "postgresql":
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        else:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        assert s.append([Event("u", "i", "click", event_id="e1")])[0].seq >= 1
    with EventStore(store_url) as s, s._engine.connect() as conn:
        if s.dialect == "postgresql":
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        assert s.count() == 1


def test_batch_writer_many_threads(store):
    """8 threads x 200 events through one writer: all stored once, each future gets its own seqs."""
    n_threads, per_thread = 8, 200
    writer = BatchWriter(store, max_batch=256, max_wait_ms=5)
    futures: dict[tuple[int, int], object] = {}
    lock = threading.Lock()

    def post(t: int) -> None:
        for i in range(0, per_thread, 4):
            evs = [Event(f"u{t}", f"i{t}-{i + j}", event_id=f"{t}-{i + j}") for j in range(4)]
            fut = writer.submit(evs)
            with lock:
                futures[(t, i)] = fut

    threads = [threading.Thread(target=post, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    # a retry of some ids through the writer comes back as duplicates
    retry = writer.submit([Event("u0", "i0-0", event_id="0-0"), Event("u9", "new", event_id="fresh")])
    writer.close()

    assert store.count() == n_threads * per_thread + 1
    seq_of = {r.event_id: r.seq for r in store.events_since(0)}
    for (t, i), fut in futures.items():
        got = fut.result(0)
        assert [s.event_id for s in got] == [f"{t}-{i + j}" for j in range(4)]
        assert [s.seq for s in got] == [seq_of[s.event_id] for s in got]
        assert not any(s.duplicate for s in got)
    r = retry.result(0)
    assert r[0] == Stored(seq_of["0-0"], "0-0", True) and not r[1].duplicate
    assert writer.batches < len(futures)  # submissions really were grouped
    with pytest.raises(StoreError, match="closed"):
        writer.submit([Event("u", "i")])


def test_batch_writer_validates_in_the_caller_and_fails_futures_on_db_error(store):
    with BatchWriter(store, max_wait_ms=0) as writer:
        with pytest.raises(DataError, match="'user'"):
            writer.submit([{"user": "", "item": "i"}])
        assert writer.write([]) == []
        assert writer.write([Event("u", "i", event_id="ok")])[0].seq >= 1

        def broken(_events):
            raise StoreError("disk on fire")

        store.append = broken  # type: ignore[method-assign]
        with pytest.raises(StoreError, match="disk on fire"):
            writer.write([Event("u", "j")], timeout=10)


@pytest.mark.parametrize("ts", [1e300, -1e15, -1.0, 1.7e308, 253_402_300_800.0])
def test_an_event_time_outside_what_dates_can_hold_is_refused_by_name(ts):
    """A far-future or negative time would overflow every later date computation (a retrain window crashed on 1e300)."""
    with pytest.raises(DataError, match=r"timestamp.*must be epoch seconds from 0 \(1970\) to 253402300799"):
        Event("u", "i", timestamp=ts)


def test_the_edges_of_the_time_range_are_kept():
    assert Event("u", "i", timestamp=0.0).timestamp == 0.0
    assert Event("u", "i", timestamp=253_402_300_799.0).timestamp == 253_402_300_799.0
    assert datetime.fromtimestamp(Event("u", "i", timestamp=253_402_300_799.0).timestamp, tz=timezone.utc).year == 9999


def test_an_event_id_reused_for_another_user_or_item_is_refused_and_nothing_is_stored(store):
    """A retry (same id, same user and item) is a duplicate; the same id on another event is a client bug."""
    first = store.append([Event("u1", "i1", event_id="e-1")])[0]
    again = store.append([Event("u1", "i1", "view", event_id="e-1")])[0]
    assert again.duplicate and again.seq == first.seq
    with pytest.raises(DataError, match=r"event_id 'e-1' already names the event of user 'u1' on item 'i1'; "
                                        r"this one is user 'u2' on item 'i1'"):
        store.append([Event("u0", "i0", event_id="e-2"), Event("u2", "i1", event_id="e-1")])
    with pytest.raises(DataError, match="this one is user 'u9' on item 'i9'"):
        store.append([Event("u8", "i8", event_id="e-3"), Event("u9", "i9", event_id="e-3")])  # within one batch
    assert store.count() == 1  # the refused batches stored nothing, e-2 and e-3 included


def test_a_bad_request_grouped_with_good_ones_fails_alone(store):
    """The batch writer groups requests into one transaction; one request's reused id must not fail the others."""
    store.append([Event("u1", "i1", event_id="taken")])
    with BatchWriter(store, max_batch=64, max_wait_ms=50) as w:
        futures = [w.submit([Event("a", "x", event_id="ok-1")]),
                   w.submit([Event("b", "y", event_id="taken")]),
                   w.submit([Event("c", "z")])]
        results = []
        for f in futures:
            try:
                results.append(f.result(timeout=30))
            except DataError as exc:
                results.append(exc)
    assert not results[0][0].duplicate and isinstance(results[1], DataError) and not results[2][0].duplicate
    assert store.count() == 3
