"""Served recommendation lists, logged beside the events for online metrics.

Every list the server answers with has a ``list_id``; events posted with it
are attributed to the version that served it.  To report click-through,
conversion and coverage per version (``zenrec report online``) the lists
themselves are kept too, in the store's ``served_lists`` table.

Logging a list is off the request path: :class:`ServedLog` queues it and a
background thread writes batches.  It is best-effort by design — a full
queue drops lists (counted in :attr:`ServedLog.dropped`) rather than slowing
a request, and lists queued when the process is killed are lost — so online
rates are computed over the lists that were logged.  Events, unlike lists,
are acknowledged only after their commit.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from zenrec.errors import ConfigError
from zenrec.store.events import EventStore, drain, served_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ServedList", "ServedLog", "served_frame", "check_served_bounds", "SERVED_COLUMNS"]

log = logging.getLogger(__name__)

#: columns of :func:`served_frame`, in order
SERVED_COLUMNS = ("list_id", "user", "model_version", "kind", "fallback", "items", "catalogue", "latency_ms",
                  "created")


@dataclass(frozen=True)
class ServedList:
    """One served list: who got it, from which version, the raw item ids in rank order, and how fast."""

    list_id: str
    user: str | None
    model_version: str
    kind: str
    items: Sequence[Any]
    catalogue: int
    latency_ms: float
    fallback: str | None = None
    created: float = 0.0

    def row(self) -> dict[str, Any]:
        """The table row."""
        return {
            "list_id": self.list_id, "user_id": self.user, "model_version": self.model_version, "kind": self.kind,
            "fallback": self.fallback, "items": json.dumps([str(i) for i in self.items]),
            "catalogue": int(self.catalogue), "latency_ms": float(self.latency_ms),
            "created": float(self.created or time.time()),
        }


#: default bound of the served-list log: rows kept, and the age past which a list is deleted (30 days)
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_AGE_S = 30 * 86_400.0


def check_served_bounds(max_rows: Any, max_age_s: Any, prune_every_s: Any) -> None:
    """Refuse bounds of the served-list log that are not numbers: ``max_rows`` and ``max_age_s`` positive
    or None, ``prune_every_s`` seconds from 0 to a day (:class:`~zenrec.errors.ConfigError` naming it)."""
    for name, v in (("max_rows", max_rows), ("max_age_s", max_age_s)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf")):
            raise ConfigError(f"the {name!r} parameter of the served-list log must be positive or None; got {v!r}")
    if isinstance(prune_every_s, bool) or not isinstance(prune_every_s, (int, float)) or not 0 <= prune_every_s <= 86_400:
        raise ConfigError(f"the 'prune_every_s' parameter of the served-list log must be seconds from 0 to 86400; "
                          f"got {prune_every_s!r}")


class ServedLog:
    """Queue served lists and write them in batches from a background thread (best-effort, never blocks).

    The log is bounded: lists older than ``max_age_s`` and all but the newest ``max_rows`` are deleted
    every ``prune_every_s`` seconds (None turns a bound off).
    """

    def __init__(self, store: EventStore, max_batch: int = 500, max_wait_s: float = 0.2,
                 max_queue: int = 100_000, max_rows: int | None = DEFAULT_MAX_ROWS,
                 max_age_s: float | None = DEFAULT_MAX_AGE_S, prune_every_s: float = 60.0) -> None:
        check_served_bounds(max_rows, max_age_s, prune_every_s)
        self.max_rows, self.max_age_s, self.prune_every_s = max_rows, max_age_s, float(prune_every_s)
        self._pruned_at = 0.0
        self.pruned = 0
        self.store = store
        self._engine = None
        self._writer = store._writer
        if store.dialect == "sqlite":
            # its own connection that commits without an fsync (WAL, synchronous=NORMAL): a list log batch
            # then holds SQLite's single write lock for well under a millisecond, so it does not delay the
            # durable event commits queued behind it; a crash may lose the last lists, never an event
            from zenrec.store.events import _engine_for

            self._engine, _ = _engine_for(store.url, autocheckpoint=not store.background_checkpoint, durability="os")
            self._writer = self._engine.execution_options(zenrec_write=True)
        self.max_batch = max_batch
        self.max_wait = max_wait_s
        self._queue: queue.Queue[ServedList | None] = queue.Queue(maxsize=max_queue)
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="zenrec-served-log", daemon=True)
        self._thread.start()

    def log(self, served: ServedList) -> None:
        """Queue one list (dropped, and counted, when the queue is full)."""
        try:
            self._idle.clear()
            self._queue.put_nowait(served)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued list is written; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.wait(0.01) and self._queue.empty():
                return True
        return False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = drain(self._queue, first, self.max_batch, self.max_wait)
            self._write(batch)
            if time.monotonic() - self._pruned_at >= self.prune_every_s:
                self.prune()
            if self._queue.empty():
                self._idle.set()
            if stop:
                return

    def _write(self, batch: list[ServedList]) -> None:
        try:
            with self._writer.begin() as conn:
                conn.execute(sa.insert(served_table), [s.row() for s in batch])
            self.written += len(batch)
        except Exception as exc:  # noqa: BLE001 - losing a log batch must not stop serving
            self.failed += len(batch)
            log.warning("could not log %d served lists: %s", len(batch), exc)

    def prune(self, now: float | None = None) -> int:
        """Delete lists older than ``max_age_s`` and all but the newest ``max_rows``; returns how many went.

        Runs on the writer thread every ``prune_every_s`` seconds, so the log stays within its bound under any
        read rate (about ``max_rows`` rows plus what one interval adds).
        """
        self._pruned_at = time.monotonic()
        t = served_table.c
        gone = 0
        try:
            with self._writer.begin() as conn:
                if self.max_age_s is not None:
                    cut = (time.time() if now is None else now) - self.max_age_s
                    gone += conn.execute(sa.delete(served_table).where(t.created < cut)).rowcount or 0
                if self.max_rows is not None:
                    edge = conn.execute(sa.select(t.created).order_by(t.created.desc())
                                        .offset(int(self.max_rows)).limit(1)).scalar()
                    if edge is not None:
                        gone += conn.execute(sa.delete(served_table).where(t.created <= edge)).rowcount or 0
        except Exception as exc:  # noqa: BLE001 - a failed prune is retried at the next interval
            log.warning("could not prune the served-list log: %s", exc)
        self.pruned += gone
        return gone

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()


def served_frame(store: EventStore, since_ts: float | None = None, until_ts: float | None = None) -> pd.DataFrame:
    """Served lists with ``since_ts <= created < until_ts`` as a DataFrame (``items``: lists of raw ids)."""
    import pandas as pd

    t = served_table.c
    stmt = sa.select(t.list_id, t.user_id, t.model_version, t.kind, t.fallback, t["items"], t.catalogue, t.latency_ms,
                     t.created)
    if since_ts is not None:
        stmt = stmt.where(t.created >= float(since_ts))
    if until_ts is not None:
        stmt = stmt.where(t.created < float(until_ts))
    rows = store._read(stmt.order_by(t.created))
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(SERVED_COLUMNS))
    df["items"] = [json.loads(x) for x in df["items"]]
    return df.astype({"catalogue": "int64", "latency_ms": "float64", "created": "float64"})
