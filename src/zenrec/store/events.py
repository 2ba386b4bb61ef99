"""A durable, idempotent event store over SQLAlchemy Core.

SQLite (a file, WAL journal, ``synchronous=FULL``) is the default; PostgreSQL
is chosen by URL (``postgresql+psycopg://user@host/db``), so several serving
replicas can share one store.  The main table, ``events``::

    seq            autoincrement primary key: the order events were stored in
    event_id       the client's id for the event, unique when given (idempotency)
    user_id        raw user id (text)
    item_id        raw item id (text)
    type           view / click / cart / purchase / rating / any other name
    value          strength or rating (float, default 1)
    ts             when it happened, epoch seconds
    list_id        the served recommendation list the event answers, if any
    model_version  the model version that served that list, if any
    created        when the store received it, epoch seconds

:meth:`EventStore.append` acknowledges a batch only after its transaction has
committed, so an acknowledged event survives the process being killed.
:class:`BatchWriter` gathers events from many threads into few transactions
for load, resolving each caller's future only after the commit.

Beside it, ``served_lists`` (:mod:`zenrec.store.served`) and ``erasures``: one
row per erasure (:func:`zenrec.store.erasure.erase_user_events`), naming the
user by keyed hash only, with the last event ``seq`` it covered.  Replicas
tail ``events`` and ``erasures`` by ``seq`` (:meth:`EventStore.events_since`,
:meth:`EventStore.erasures_since`); on PostgreSQL each commit that adds to
them also notifies the store's channel (:data:`CHANGE_CHANNEL_SQL`, one per
schema), a wake-up for :class:`zenrec.store.changes.StoreListener` (the
``seq`` stays the truth).
"""

from __future__ import annotations

import math
import numbers
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from zenrec.data.ids import MAX_ID_LENGTH, normalize_id
from zenrec.data.schema import TIMESTAMP_MAX, TIMESTAMP_MIN
from zenrec.errors import ConfigError, DataError, ZenrecError
from zenrec.store.checkpoint import WalCheckpointer

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Event",
    "EventRecord",
    "ErasureRecord",
    "CHANGE_CHANNEL_SQL",
    "Stored",
    "EventStore",
    "BatchWriter",
    "StoreError",
    "MAX_ID_LENGTH",
    "FRAME_COLUMNS",
]

# MAX_ID_LENGTH (the longest user, item, event, list id or model version, in characters) is data.ids' one rule
#: Longest event type name accepted (characters).
MAX_TYPE_LENGTH = 64
#: Columns of :meth:`EventStore.frame`, in order.
FRAME_COLUMNS = ("user", "item", "event", "value", "timestamp", "event_id", "list_id", "model_version", "seq")

_IN_CHUNK = 500  # ids per ``IN (...)`` lookup
_APPEND_LOCK = 0x7A656E72  # PostgreSQL advisory lock key of appends ("zenr")
#: SQL for the PostgreSQL channel that every commit adding events or erasures notifies (a wake-up, no
#: payload): one channel per schema, so stores in other schemas of the database do not wake each other
CHANGE_CHANNEL_SQL = "'zenrec:' || md5(coalesce(current_schema(), ''))"


class StoreError(ZenrecError, RuntimeError):
    """The event store cannot be opened, read or written; the message names the store."""


# ---------------------------------------------------------------- the table

_metadata = sa.MetaData()

events_table = sa.Table(
    "events",
    _metadata,
    # INTEGER (not BIGINT) on SQLite, where only ``INTEGER PRIMARY KEY`` is the rowid
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(MAX_ID_LENGTH), nullable=True),
    sa.Column("user_id", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("item_id", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("type", sa.String(MAX_TYPE_LENGTH), nullable=False),
    sa.Column("value", sa.Double(), nullable=False, default=1.0),
    sa.Column("ts", sa.Double(), nullable=False),
    sa.Column("list_id", sa.String(MAX_ID_LENGTH), nullable=True),
    sa.Column("model_version", sa.String(MAX_ID_LENGTH), nullable=True),
    sa.Column("created", sa.Double(), nullable=False),
    sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    sa.Index("ix_events_user_seq", "user_id", "seq"),
    sa.Index("ix_events_ts", "ts"),
    # never reuse the seq of a deleted last row: readers tail the table by seq
    sqlite_autoincrement=True,
)

# one row per served recommendation list (written best-effort by zenrec.store.served.ServedLog)
served_table = sa.Table(
    "served_lists",
    _metadata,
    sa.Column("list_id", sa.String(MAX_ID_LENGTH), primary_key=True),
    sa.Column("user_id", sa.String(MAX_ID_LENGTH), nullable=True),  # None: an anonymous session or similar items
    sa.Column("model_version", sa.String(MAX_ID_LENGTH), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # user, session or similar
    sa.Column("fallback", sa.String(32), nullable=True),
    sa.Column("items", sa.Text(), nullable=False),  # JSON list of the raw item ids, in rank order
    sa.Column("catalogue", sa.Integer(), nullable=False),  # the serving model's number of items
    sa.Column("latency_ms", sa.Double(), nullable=False),
    sa.Column("created", sa.Double(), nullable=False),
    sa.Index("ix_served_created", "created"),
)


# one row per erasure (written by zenrec.store.erasure.erase_user_events): replicas tail it by seq and forget
# the user; the user is named by keyed hash only, never by raw id
erasures_table = sa.Table(
    "erasures",
    _metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("user_hash", sa.String(64), nullable=False),  # hex HMAC-SHA256 (zenrec.store.erasure.user_hash)
    sa.Column("through_seq", sa.BigInteger(), nullable=False),  # the largest events.seq when the rows were deleted
    sa.Column("created", sa.Double(), nullable=False),
    sqlite_autoincrement=True,
)


# ---------------------------------------------------------------- events


def _field_error(name: str, message: str) -> DataError:
    err = DataError(f"event field {name!r} {message}")
    err.column = name
    return err


def _text(name: str, value: Any, required: bool, limit: int = MAX_ID_LENGTH, id_rule: bool = False) -> str | None:
    """A non-empty id as text: strings as they are, integers as decimal.

    With ``id_rule`` (user and item ids) the text goes through ingest's rule,
    :func:`zenrec.data.ids.normalize_id`: stripped, no control characters."""
    if value is None:
        if required:
            raise _field_error(name, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Integral)):
        raise _field_error(name, f"must be a string or an integer; got {type(value).__name__} {value!r}")
    text = value if isinstance(value, str) else str(int(value))
    if id_rule:
        try:
            return normalize_id(text)
        except ValueError as exc:
            raise _field_error(name, str(exc)) from None
    if not text.strip():
        raise _field_error(name, "must not be empty")
    if len(text) > limit:
        raise _field_error(name, f"is longer than {limit} characters ({len(text)})")
    if "\x00" in text:
        raise _field_error(name, "must not contain NUL characters")
    return text


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _field_error(name, f"must be a number; got {type(value).__name__} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise _field_error(name, f"must be finite; got {out!r}")
    return out


@dataclass(frozen=True)
class Event:
    """One user-behaviour event, validated on construction.

    ``timestamp`` is epoch seconds (a ``datetime`` is converted; a naive one is
    taken as UTC) and defaults to now.  ``event_id`` is the client's id that
    makes posting the same event twice harmless.  ``list_id`` and
    ``model_version`` attribute the event to the served list it answers.
    Invalid fields raise :class:`~zenrec.errors.DataError` naming the field.
    """

    user: str
    item: str
    type: str = "click"
    value: float = 1.0
    timestamp: float | None = None
    event_id: str | None = None
    list_id: str | None = None
    model_version: str | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "user", _text("user", self.user, True, id_rule=True))
        put(self, "item", _text("item", self.item, True, id_rule=True))
        put(self, "type", _text("type", self.type, True, MAX_TYPE_LENGTH))
        put(self, "value", _number("value", self.value))
        ts = self.timestamp
        if ts is None:
            ts = time.time()
        elif isinstance(ts, datetime):
            ts = (ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)).timestamp()
        ts = _number("timestamp", ts)
        if not TIMESTAMP_MIN <= ts <= TIMESTAMP_MAX:
            raise _field_error("timestamp", f"must be epoch seconds from {TIMESTAMP_MIN:.0f} (1970) to "
                               f"{TIMESTAMP_MAX:.0f} (9999); got {ts!r}")
        put(self, "timestamp", ts)
        put(self, "event_id", _text("event_id", self.event_id, False))
        put(self, "list_id", _text("list_id", self.list_id, False))
        put(self, "model_version", _text("model_version", self.model_version, False))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Event:
        """Build an event from a dict with :class:`Event`'s field names (unknown keys are refused)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            raise _field_error(unknown[0], f"is not an event field; expected some of {sorted(known)}")
        for name in ("user", "item"):
            if name not in data:
                raise _field_error(name, "is required")
        return cls(**data)


def _as_events(events: Iterable[Event | Mapping[str, Any]]) -> list[Event]:
    """Validate a batch; an error names the position of the bad event."""
    if isinstance(events, (Event, Mapping, str, bytes)):
        raise DataError(f"expected a list of events; got a single {type(events).__name__}")
    out = []
    for i, e in enumerate(events):
        try:
            if isinstance(e, Event):
                out.append(e)
            elif isinstance(e, Mapping):
                out.append(Event.from_mapping(e))
            else:
                raise DataError(f"must be an Event or a mapping; got {type(e).__name__}")
        except DataError as exc:
            err = DataError(f"events[{i}]: {exc}")
            err.row, err.column = i, exc.column
            raise err from None
    return out


@dataclass(frozen=True)
class Stored:
    """What :meth:`EventStore.append` acknowledges for one event.

    ``duplicate`` is true when an event with the same ``event_id`` was already
    stored (earlier, or earlier in the same batch); ``seq`` is then the
    original event's.
    """

    seq: int
    event_id: str | None
    duplicate: bool = False


@dataclass(frozen=True)
class EventRecord:
    """An event as read back from the store."""

    seq: int
    user: str
    item: str
    type: str
    value: float
    timestamp: float
    event_id: str | None
    list_id: str | None
    model_version: str | None
    created: float


@dataclass(frozen=True)
class ErasureRecord:
    """One erasure as read back from the store: the user's keyed hash, and the last event ``seq`` it covered
    (every event of the user up to ``through_seq`` was deleted; later ones are new)."""

    seq: int
    user_hash: str
    through_seq: int
    created: float


_T = events_table.c
_RECORD_COLUMNS = (_T.seq, _T.user_id, _T.item_id, _T.type, _T.value, _T.ts, _T.event_id, _T.list_id,
                   _T.model_version, _T.created)


def _record(row: Sequence[Any]) -> EventRecord:
    return EventRecord(int(row[0]), row[1], row[2], row[3], float(row[4]), float(row[5]), row[6], row[7],
                       row[8], float(row[9]))


# ---------------------------------------------------------------- the store


#: what an acknowledged commit survives (:class:`EventStore`'s ``durability``)
DURABILITY = ("fsync", "os")


def check_durability(durability: Any) -> str:
    """``durability`` itself when it is one of :data:`DURABILITY`, else a :class:`ConfigError` naming them."""
    if durability not in DURABILITY:
        raise ConfigError(f"the event store's durability must be one of {', '.join(DURABILITY)}; got {durability!r}")
    return durability


def _engine_for(url: str, autocheckpoint: bool = True, durability: str = "fsync") -> tuple[Engine, str]:
    """A configured engine and the URL as printed in messages (password hidden).

    ``autocheckpoint=False``: SQLite connections never checkpoint the WAL
    themselves (a :class:`~zenrec.store.checkpoint.WalCheckpointer` does).
    ``durability``: see :class:`EventStore`.
    """
    check_durability(durability)
    if not isinstance(url, str) or not url:
        raise ConfigError(f"event store URL must be a non-empty string; got {url!r}")
    try:
        u = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"event store URL {url!r} is not a database URL; expected sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None
    shown = u.render_as_string(hide_password=True)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if u.get_driver_name() not in ("pysqlite", ""):
            u = u.set(drivername="sqlite")
        db = u.database
        if not db or db == ":memory:" or db.startswith("file:"):
            raise ConfigError(f"event store URL {shown!r}: give a file path (sqlite:///PATH/events.db); "
                              "events must outlive the process")
        Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(u, connect_args={"timeout": 60})
        sync = "FULL" if durability == "fsync" else "NORMAL"

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            _sqlite_on_connect(dbapi_conn, sync, autocheckpoint)

        sa.event.listen(engine, "connect", on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
    elif backend == "postgresql":
        if u.get_driver_name() != "psycopg":
            u = u.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(u, pool_pre_ping=True, pool_size=8, max_overflow=16)
        if durability == "os":  # commits return before the server's WAL flush (it follows within ~0.6 s)
            sa.event.listen(engine, "connect", _pg_async_commit)
    else:
        raise ConfigError(f"event store URL {shown!r}: unsupported database {backend!r}; use sqlite or postgresql")
    return engine, shown


def _sqlite_on_connect(dbapi_conn: Any, synchronous: str, autocheckpoint: bool) -> None:
    # SQLAlchemy's recipe: the driver stays out of transactions, ``_sqlite_on_begin`` opens them
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        if not autocheckpoint:
            cur.execute("PRAGMA wal_autocheckpoint=0")
    finally:
        cur.close()


def _pg_async_commit(dbapi_conn: Any, _record: Any) -> None:
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    try:
        dbapi_conn.execute("SET synchronous_commit TO off")
    finally:
        dbapi_conn.autocommit = autocommit


def _sqlite_on_begin(conn: Connection) -> None:
    # a writer takes the write lock up front, so it waits (busy_timeout) instead of failing on upgrade
    immediate = conn.get_execution_options().get("zenrec_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class EventStore:
    """Durable, idempotent storage of user events (SQLite by default, PostgreSQL by URL).

    >>> store = EventStore("sqlite:///data/events.db")      # doctest: +SKIP
    >>> store.append([Event("u1", "i9", "click", event_id="c-1")])  # doctest: +SKIP
    [Stored(seq=1, event_id='c-1', duplicate=False)]

    The table and its indexes are created when missing.  The store is safe to
    share between threads and between processes (or replicas, on PostgreSQL).

    ``background_checkpoint`` (SQLite only, for long-running writers such as
    the server): commits never checkpoint the write-ahead log; a thread does it
    every second instead (:mod:`zenrec.store.checkpoint`), so no commit pays
    for copying the log into the database.

    ``durability`` says what an acknowledged (committed) event survives:

    * ``"fsync"`` (default): anything, power loss included — every commit
      waits for the disk (SQLite ``synchronous=FULL``; PostgreSQL
      ``synchronous_commit=on``);
    * ``"os"``: the writing process being killed (the commit is in the
      operating system's or the database server's hands before it returns),
      but an operating-system crash or power loss may lose the events of
      the last moments — about a second; the store itself stays consistent
      (SQLite WAL with ``synchronous=NORMAL``, the log synced at every
      checkpoint; PostgreSQL ``synchronous_commit=off``).  Commits then never
      wait on the disk, whose sync can stall for tens of milliseconds.
    """

    def __init__(self, url: str, background_checkpoint: bool = False, durability: str = "fsync") -> None:
        self.durability = durability
        self._engine, self.url = _engine_for(url, autocheckpoint=not background_checkpoint, durability=durability)
        self.dialect: str = self._engine.dialect.name
        self.checkpointer: WalCheckpointer | None = None
        self._writer = self._engine.execution_options(zenrec_write=True)
        try:
            self._create()
        except BaseException:
            self._engine.dispose()
            raise
        if background_checkpoint and self.dialect == "sqlite":
            self.checkpointer = WalCheckpointer(str(self._engine.url.database))

    @property
    def background_checkpoint(self) -> bool:
        """True when a background thread, not the commits, checkpoints this SQLite store's log."""
        return self.checkpointer is not None

    def _create(self) -> None:
        for attempt in range(3):
            try:
                _metadata.create_all(self._writer)
                return
            except SQLAlchemyError as exc:
                # another process may have created the table between check and create
                if attempt == 2:
                    raise StoreError(f"event store {self.url}: cannot create the events table ({_why(exc)})") from None
                time.sleep(0.05 * (attempt + 1))

    # ---------------------------------------------------------------- writes

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        try:
            with self._writer.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"event store {self.url}: {what} failed, nothing was written ({_why(exc)})") from None

    def _insert(self) -> Any:
        return (pg_dialect.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(events_table)

    def append(self, events: Iterable[Event | Mapping[str, Any]]) -> list[Stored]:
        """Store a batch in one transaction, committed before this returns; one :class:`Stored` per event.

        Idempotent on ``event_id``: an event whose id is already stored (or
        appears earlier in the batch) with the same user and item is not stored
        again and comes back with ``duplicate=True`` and the original ``seq``;
        safe under concurrent writers.  The same id on another user or item is
        a :class:`~zenrec.errors.DataError` (nothing of the batch is stored).  Raises :class:`~zenrec.errors.DataError` for an invalid event
        (nothing is stored) and :class:`StoreError` when the database fails.
        """
        evs = _as_events(events)
        if not evs:
            return []
        now = time.time()
        first: dict[str, int] = {}
        to_insert: list[int] = []
        for i, e in enumerate(evs):
            if e.event_id is None:
                to_insert.append(i)
            elif e.event_id not in first:
                first[e.event_id] = i
                to_insert.append(i)
        seqs: dict[int, int] = {}
        fresh: set[int] = set()
        with self._write("append") as conn:
            if self.dialect == "postgresql":
                # one appender at a time, until commit: seqs then become visible in order, so a reader that
                # has seen seq N never later finds a new event below N (replay and retrain tail by seq).
                # SQLite's BEGIN IMMEDIATE already serialises writers.
                hold_append_lock(conn)
            # runs of keyed / unkeyed events, so seqs follow the batch order
            start = 0
            while start < len(to_insert):
                keyed = evs[to_insert[start]].event_id is not None
                end = start
                while end < len(to_insert) and (evs[to_insert[end]].event_id is not None) == keyed:
                    end += 1
                run = to_insert[start:end]
                rows = [_row(evs[i], now) for i in run]
                if keyed:
                    got = self._insert_keyed(conn, rows)
                    for i in run:
                        s = got.get(evs[i].event_id)  # type: ignore[arg-type]
                        if s is not None:
                            seqs[i] = s
                            fresh.add(i)
                else:
                    for i, s in zip(run, self._insert_plain(conn, rows), strict=True):
                        seqs[i] = s
                        fresh.add(i)
                start = end
            missing = [evs[i].event_id for i in first.values() if i not in fresh]
            existing: dict[str, int] = {}
            owners: dict[str, tuple[str, str]] = {}  # event id -> (user, item) it was stored with
            for k in range(0, len(missing), _IN_CHUNK):
                chunk = missing[k : k + _IN_CHUNK]
                sel = sa.select(_T.event_id, _T.seq, _T.user_id, _T.item_id).where(_T.event_id.in_(chunk))
                for eid, seq, user, item in conn.execute(sel).all():
                    existing[eid], owners[eid] = int(seq), (user, item)
            lost = [m for m in missing if m not in existing]
            if lost:
                raise StoreError(f"event store {self.url}: event id {lost[0]!r} conflicted but cannot be read back")
            # an event id names one event: reusing it for another user or item is a client bug, not a retry
            for i, e in enumerate(evs):
                if e.event_id is None or i in fresh:
                    continue
                was = owners.get(e.event_id) or (evs[first[e.event_id]].user, evs[first[e.event_id]].item)
                if was != (e.user, e.item):
                    raise DataError(f"event_id {e.event_id!r} already names the event of user {was[0]!r} on item "
                                    f"{was[1]!r}; this one is user {e.user!r} on item {e.item!r} (nothing was "
                                    "stored: give each event its own id)")
            if fresh and self.dialect == "postgresql":
                notify_change(conn)  # delivered at the commit, to every replica listening
        out = []
        for i, e in enumerate(evs):
            if i in fresh:
                out.append(Stored(seqs[i], e.event_id, False))
            else:
                key = e.event_id
                assert key is not None
                j = first[key]
                out.append(Stored(seqs[j] if j in fresh else int(existing[key]), key, True))
        return out

    def _insert_plain(self, conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
        if self._engine.dialect.insert_returning:
            stmt = sa.insert(events_table).returning(_T.seq, sort_by_parameter_order=True)
            return [int(r[0]) for r in conn.execute(stmt, rows)]
        return [int(conn.execute(sa.insert(events_table), r).inserted_primary_key[0]) for r in rows]

    def _insert_keyed(self, conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert rows whose event ids are distinct; returns event_id -> seq of those actually inserted."""
        stmt = self._insert().on_conflict_do_nothing(index_elements=[_T.event_id])
        if self._engine.dialect.insert_returning:
            return {r[1]: int(r[0]) for r in conn.execute(stmt.returning(_T.seq, _T.event_id), rows)}
        got = {}
        for r in rows:  # an old SQLite without RETURNING
            res = conn.execute(stmt, r)
            if res.rowcount == 1:
                got[r["event_id"]] = int(res.lastrowid)
        return got

    def delete_user(self, user: str) -> int:
        """Erase every event of ``user`` and the lists served to it; returns how many events were deleted."""
        uid = _text("user", user, True)
        with self._write("delete_user") as conn:
            conn.execute(sa.delete(served_table).where(served_table.c.user_id == uid))
            return int(conn.execute(sa.delete(events_table).where(_T.user_id == uid)).rowcount)

    # ---------------------------------------------------------------- reads

    def _read(self, stmt: Any) -> list[Any]:
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(stmt).all())
        except SQLAlchemyError as exc:
            raise StoreError(f"event store {self.url}: read failed ({_why(exc)})") from None

    def count(self) -> int:
        """How many events are stored."""
        return int(self._read(sa.select(sa.func.count()).select_from(events_table))[0][0])

    def user_events(self, user: str, limit: int | None = None) -> list[EventRecord]:
        """A user's events, oldest first; with ``limit``, only the most recent ``limit``."""
        uid = _text("user", user, True)
        stmt = sa.select(*_RECORD_COLUMNS).where(_T.user_id == uid)
        if limit is None:
            return [_record(r) for r in self._read(stmt.order_by(_T.ts, _T.seq))]
        rows = self._read(stmt.order_by(_T.ts.desc(), _T.seq.desc()).limit(_limit(limit)))
        return [_record(r) for r in reversed(rows)]

    def events_since(self, seq: int = 0, limit: int | None = None) -> list[EventRecord]:
        """Events stored after ``seq`` (exclusive), in ``seq`` order: tail the store with the last seq seen.

        Appends are serialised (SQLite's write lock, a PostgreSQL advisory
        lock held to commit), so events become visible in ``seq`` order and a
        tailer never misses one behind the last seq it read.
        """
        if isinstance(seq, bool) or not isinstance(seq, numbers.Integral) or seq < 0:
            raise ConfigError(f"the 'seq' parameter must be a non-negative integer; got {seq!r}")
        stmt = sa.select(*_RECORD_COLUMNS).where(_T.seq > int(seq)).order_by(_T.seq)
        if limit is not None:
            stmt = stmt.limit(_limit(limit))
        return [_record(r) for r in self._read(stmt)]

    def last_seq(self) -> int:
        """The largest event ``seq`` stored so far (0 for an empty store)."""
        return int(self._read(sa.select(sa.func.coalesce(sa.func.max(_T.seq), 0)))[0][0])

    def erasures_since(self, seq: int = 0, limit: int | None = None) -> list[ErasureRecord]:
        """Erasures recorded after ``seq`` (exclusive), in ``seq`` order (written, like events, one writer at a
        time, so a tailer never misses one behind the last seq it read)."""
        if isinstance(seq, bool) or not isinstance(seq, numbers.Integral) or seq < 0:
            raise ConfigError(f"the 'seq' parameter must be a non-negative integer; got {seq!r}")
        e = erasures_table.c
        stmt = sa.select(e.seq, e.user_hash, e.through_seq, e.created).where(e.seq > int(seq)).order_by(e.seq)
        if limit is not None:
            stmt = stmt.limit(_limit(limit))
        return [ErasureRecord(int(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in self._read(stmt)]

    def last_erasure_seq(self) -> int:
        """The largest erasure ``seq`` recorded so far (0 when none)."""
        e = erasures_table.c
        return int(self._read(sa.select(sa.func.coalesce(sa.func.max(e.seq), 0)))[0][0])

    def frame(self, since_ts: float | None = None, until_ts: float | None = None) -> pd.DataFrame:
        """Events with ``since_ts <= timestamp < until_ts`` as a DataFrame, oldest first.

        Columns: user, item, event, value, timestamp (epoch seconds), event_id,
        list_id, model_version, seq — ready for ``Dataset.from_frame`` with
        ``ColumnMap(user="user", item="item", event="event", value="value",
        timestamp="timestamp")``.
        """
        import pandas as pd

        stmt = sa.select(_T.user_id, _T.item_id, _T.type, _T.value, _T.ts, _T.event_id, _T.list_id,
                         _T.model_version, _T.seq)
        if since_ts is not None:
            stmt = stmt.where(_T.ts >= _number("since_ts", since_ts))
        if until_ts is not None:
            stmt = stmt.where(_T.ts < _number("until_ts", until_ts))
        rows = self._read(stmt.order_by(_T.ts, _T.seq))
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(FRAME_COLUMNS)
        dtypes = {"value": "float64", "timestamp": "float64", "seq": "int64"}
        # text columns stay object dtype with None for missing, whatever pandas infers by default
        return pd.DataFrame(
            {name: pd.Series(list(col), dtype=dtypes.get(name, object)) for name, col in zip(FRAME_COLUMNS, cols, strict=True)}
        )

    def close(self) -> None:
        """Release the database connections (after a last checkpoint, with ``background_checkpoint``)."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self._engine.dispose()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventStore({self.url!r})"


def hold_append_lock(conn: Connection) -> None:
    """PostgreSQL: take the appenders' advisory lock until ``conn``'s transaction ends (SQLite's ``BEGIN
    IMMEDIATE`` already serialises writers): a transaction holding it sees every committed event and no
    append commits beside it, so its ``max(seq)`` is exact."""
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_APPEND_LOCK})")


def notify_change(conn: Connection) -> None:
    """PostgreSQL: notify the store's channel (:data:`CHANGE_CHANNEL_SQL`) from ``conn``'s transaction; it is
    sent when the transaction commits."""
    conn.exec_driver_sql(f"SELECT pg_notify({CHANGE_CHANNEL_SQL}, '')")


def _row(e: Event, now: float) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "user_id": e.user,
        "item_id": e.item,
        "type": e.type,
        "value": e.value,
        "ts": e.timestamp,
        "list_id": e.list_id,
        "model_version": e.model_version,
        "created": now,
    }


def _limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 0:
        raise ConfigError(f"the 'limit' parameter must be a non-negative integer or None; got {limit!r}")
    return int(limit)


def _why(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]


# ---------------------------------------------------------------- batching


def drain(q: queue.Queue | queue.SimpleQueue, first: Any, max_size: int, max_wait: float,
          size: Callable[[Any], int] = lambda _: 1) -> tuple[list[Any], bool]:
    """``first`` and what follows it on ``q`` (waiting up to ``max_wait`` s), up to ``max_size`` in all.

    Returns the batch and whether the stop marker (None) was met.
    """
    batch, n = [first], size(first)
    deadline = time.monotonic() + max_wait
    while n < max_size:
        wait = deadline - time.monotonic()
        try:
            nxt = q.get(timeout=wait) if wait > 0 else q.get_nowait()
        except queue.Empty:
            break
        if nxt is None:
            return batch, True
        batch.append(nxt)
        n += size(nxt)
    return batch, False


class BatchWriter:
    """Group events from many threads into few transactions.

    A background thread takes the first pending submission, with everything
    queued behind it (waiting up to ``max_wait_ms`` for more; by default not
    at all), up to ``max_batch`` events, appends them all in one transaction,
    and then resolves each submission's future with its :class:`Stored` list
    — only after the commit.  Under load the submissions that arrive during
    one commit form the next batch, so batching needs no waiting.  A failed write fails every
    future of that batch.  :meth:`close` writes what is pending and stops.
    """

    def __init__(self, store: EventStore, max_batch: int = 256, max_wait_ms: float = 0.0) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, numbers.Integral) or max_batch < 1:
            raise ConfigError(f"the 'max_batch' parameter must be a positive integer; got {max_batch!r}")
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, numbers.Real) or not (
            0 <= max_wait_ms < math.inf
        ):
            raise ConfigError(f"the 'max_wait_ms' parameter must be a non-negative number; got {max_wait_ms!r}")
        self.store = store
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self._queue: queue.SimpleQueue[tuple[list[Event], Future[list[Stored]]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0  # transactions written, for monitoring
        self._thread = threading.Thread(target=self._run, name="zenrec-batch-writer", daemon=True)
        self._thread.start()

    def submit(self, events: Iterable[Event | Mapping[str, Any]]) -> Future[list[Stored]]:
        """Queue a batch (validated here, in the caller's thread); the future resolves after the commit."""
        evs = _as_events(events)
        fut: Future[list[Stored]] = Future()
        if not evs:
            fut.set_result([])
            return fut
        with self._lock:
            if self._closed:
                raise StoreError(f"event store {self.store.url}: the batch writer is closed")
            self._queue.put((evs, fut))
        return fut

    def write(self, events: Iterable[Event | Mapping[str, Any]], timeout: float | None = None) -> list[Stored]:
        """Submit and wait for the commit."""
        return self.submit(events).result(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                break
            batch, stop = drain(self._queue, item, self.max_batch, self.max_wait, size=lambda x: len(x[0]))
            self._flush(batch)

    def _flush(self, batch: list[tuple[list[Event], Future[list[Stored]]]]) -> None:
        live = [(evs, fut) for evs, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            stored = self.store.append([e for evs, _ in live for e in evs])
        except DataError as exc:
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            for evs, fut in live:  # one request's bad event must not fail the others grouped with it
                try:
                    fut.set_result(self.store.append(evs))
                except Exception as one:
                    fut.set_exception(one)
            self.batches += len(live)
            return
        except Exception as exc:
            for _, fut in live:
                fut.set_exception(exc)
            return
        self.batches += 1
        pos = 0
        for evs, fut in live:
            fut.set_result(stored[pos : pos + len(evs)])
            pos += len(evs)

    def close(self, timeout: float | None = None) -> None:
        """Write everything submitted so far, then stop the background thread."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
