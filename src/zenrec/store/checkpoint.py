"""SQLite WAL checkpoints in a background thread instead of inside a commit.

By default SQLite checkpoints its write-ahead log from whichever connection
commits the transaction that takes the log past 1000 pages: that commit then
copies megabytes into the database file and syncs it, and an event commit that
usually takes half a millisecond took 50–180 ms under load.  A server store
(:class:`~zenrec.store.events.EventStore` with ``background_checkpoint=True``)
turns that off on its connections and runs :class:`WalCheckpointer` instead:
a ``PASSIVE`` checkpoint every ``interval`` seconds from its own connection,
which copies what readers allow and never blocks a writer.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

__all__ = ["WalCheckpointer"]

log = logging.getLogger(__name__)


class WalCheckpointer:
    """Checkpoint the WAL of the SQLite file ``path`` every ``interval`` seconds from a daemon thread."""

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self.path = path
        self.interval = float(interval)
        self.checkpoints = 0  # checkpoints that copied frames
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zenrec-wal-checkpoint", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    def checkpoint(self, conn: sqlite3.Connection, mode: str = "PASSIVE") -> None:
        """One checkpoint; counted in :attr:`checkpoints` when it copied frames into the database."""
        _busy, _frames, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        if copied > 0:
            self.checkpoints += 1

    def _run(self) -> None:
        conn = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    conn = conn or self._connect()
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # a failed checkpoint only leaves the log longer; try again later
                    self.failures += 1
                    log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
                    if conn is not None:
                        conn.close()
                    conn = None
            conn = conn or self._connect()
            self.checkpoint(conn, "TRUNCATE")  # leave a short log behind at shutdown
        except sqlite3.Error as exc:
            log.warning("final WAL checkpoint of %s failed: %s", self.path, exc)
        finally:
            if conn is not None:
                conn.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after one last checkpoint."""
        self._stop.set()
        self._thread.join(timeout)
