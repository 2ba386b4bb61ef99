"""Wake-ups when a shared event store changes: :class:`StoreListener` (PostgreSQL ``LISTEN``).

Every PostgreSQL transaction that stores events or records an erasure
notifies the store's channel (:data:`~zenrec.store.events.CHANGE_CHANNEL_SQL`)
as it commits.  A
server following the store (:mod:`zenrec.serve.follower`) listens on its own
connection and reads the new rows by ``seq`` at once, instead of waiting for
its next poll.  A notification carries nothing the reader relies on: one
that is lost (the connection dropped, the server restarted) only delays the
rows to the next poll, which reads the same ``seq`` tail.  SQLite has no such
channel; :meth:`StoreListener.open` returns None there and the follower polls.

The channel is named after the store's schema (its ``search_path``), so
stores in other schemas of the same database do not wake each other.
"""

from __future__ import annotations

import logging
from typing import Any

from zenrec.store.events import CHANGE_CHANNEL_SQL, EventStore, StoreError

__all__ = ["StoreListener"]

log = logging.getLogger(__name__)


class StoreListener:
    """One dedicated PostgreSQL connection that ``LISTEN``\\ s on the store's change channel.

    Use from one thread: :meth:`wait` blocks until a notification or the timeout.
    """

    def __init__(self, store: EventStore) -> None:
        import psycopg
        from psycopg import sql

        if store.dialect != "postgresql":
            raise StoreError(f"event store {store.url}: only PostgreSQL stores notify changes")
        self.url = store.url
        engine = store._engine
        _, params = engine.dialect.create_connect_args(engine.url)
        params.pop("context", None)  # SQLAlchemy's adapters; a plain connection needs none
        try:
            self._conn: Any = psycopg.connect(**params, autocommit=True, connect_timeout=10)
            channel = self._conn.execute(f"SELECT {CHANGE_CHANNEL_SQL}").fetchone()[0]
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except psycopg.Error as exc:
            raise StoreError(f"event store {self.url}: cannot listen for changes ({_first_line(exc)})") from None
        self.wakeups = 0

    @classmethod
    def open(cls, store: EventStore) -> StoreListener | None:
        """A listener on ``store``, or None for a store without a change channel (SQLite)."""
        return cls(store) if store.dialect == "postgresql" else None

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a change; True when one was notified (every notification
        pending then is consumed with it).  A broken connection raises :class:`StoreError`."""
        import psycopg

        try:
            got = False
            for _ in self._conn.notifies(timeout=max(float(timeout), 0.0), stop_after=1):
                got = True
            if got:
                self.wakeups += 1
                for _ in self._conn.notifies(timeout=0.0):  # coalesce a burst into one read
                    pass
            return got
        except psycopg.Error as exc:
            raise StoreError(f"event store {self.url}: the change listener failed ({_first_line(exc)})") from None

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (after :meth:`close`, or lost)."""
        return bool(self._conn.closed)

    def close(self) -> None:
        """Close the connection."""
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
