"""Each user's last score row, reused until the user's history changes: :class:`ScoreCache`.

Scoring a user through a sequence model (or an item model on a large
catalogue) costs far more than picking the top k from the scores.  A user's
scores change only when their history does (a new event) or the model does
(a hot swap builds a new :class:`~zenrec.serve.live.LiveModel`, with a new
cache).  So the live model keeps the score row of recently served users,
stamped with the user's event count: an event bumps the stamp, and the next
request recomputes.  The cache is an LRU bounded in bytes; ``max_bytes=0``
turns it off.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

__all__ = ["ScoreCache"]


class ScoreCache:
    """Score rows by user key and history stamp, least recently used first out, within ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            from zenrec.errors import ConfigError

            raise ConfigError(f"the score cache size must be a non-negative number of bytes; got {max_bytes!r}")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._rows: OrderedDict[str, tuple[int, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, stamp: int) -> np.ndarray | None:
        """The row stored for ``key`` at ``stamp`` (read-only), or None."""
        with self._lock:
            hit = self._rows.get(key)
            if hit is None or hit[0] != stamp:
                self.misses += 1
                return None
            self._rows.move_to_end(key)
            self.hits += 1
            return hit[1]

    def put(self, key: str, stamp: int, row: np.ndarray) -> None:
        """Keep ``row`` for ``key`` at ``stamp`` (a newer stamp already stored wins); evicts the oldest rows."""
        size = int(row.nbytes)
        if size > self.max_bytes:
            return
        row = row.copy() if row.flags.writeable else row
        row.flags.writeable = False  # shared by every later request for this user
        with self._lock:
            old = self._rows.get(key)
            if old is not None:
                if old[0] > stamp:  # a request that started before an event finished after it
                    return
                self.bytes -= int(old[1].nbytes)
                del self._rows[key]
            self._rows[key] = (stamp, row)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._rows.popitem(last=False)
                self.bytes -= int(dropped.nbytes)

    def drop(self, key: str) -> int:
        """Forget ``key``'s row (an erased user); 1 when there was one."""
        with self._lock:
            old = self._rows.pop(key, None)
            if old is None:
                return 0
            self.bytes -= int(old[1].nbytes)
            return 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def hit_rate(self) -> float:
        """Hits over lookups so far (0 before any)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
