"""``Interactions``: the user×item events every model trains on."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["Interactions"]


def _is_sorted(user: np.ndarray, ts: np.ndarray) -> bool:
    """True when rows are already ordered by (user, time): no sort (and no copy) needed."""
    if len(user) < 2:
        return True
    du = np.diff(user)
    if (du < 0).any():
        return False
    return bool(((du > 0) | (np.diff(ts) >= 0)).all())


class Interactions:
    """Events on contiguous integer ids, kept sorted by (user, time).

    Parameters are parallel arrays of one row per event.  ``weight`` is the
    strength of the event (from its type weight and value); ``event`` holds a
    small integer code into ``event_names``.

    The two views every model needs are derived once and cached:
    :attr:`csr` (users × items, one entry per pair, weights summed) and
    per-user time-ordered sequences (:meth:`sequence`, :attr:`seq_indptr`).
    """

    def __init__(
        self,
        user: np.ndarray,
        item: np.ndarray,
        n_users: int,
        n_items: int,
        timestamp: np.ndarray | None = None,
        weight: np.ndarray | None = None,
        event: np.ndarray | None = None,
        event_names: tuple[str, ...] = (),
    ) -> None:
        user = np.asarray(user, dtype=np.int32)
        item = np.asarray(item, dtype=np.int32)
        n = len(user)
        if len(item) != n:
            raise ValueError("user and item arrays must have the same length")
        if n and (user.min() < 0 or user.max() >= n_users):
            raise ValueError(f"user ids must lie in [0, {n_users}); got {user.min()}..{user.max()}")
        if n and (item.min() < 0 or item.max() >= n_items):
            raise ValueError(f"item ids must lie in [0, {n_items}); got {item.min()}..{item.max()}")
        ts = np.arange(n, dtype=np.int64) if timestamp is None else np.asarray(timestamp, dtype=np.int64)
        w = np.ones(n, dtype=np.float32) if weight is None else np.asarray(weight, dtype=np.float32)
        ev = np.zeros(n, dtype=np.int8) if event is None else np.asarray(event, dtype=np.int8)
        if len(ts) != n or len(w) != n or len(ev) != n:
            raise ValueError("timestamp, weight and event arrays must have one entry per event")
        if not _is_sorted(user, ts):
            order = np.lexsort((ts, user))
            user, item, ts, w, ev = user[order], item[order], ts[order], w[order], ev[order]
        self.user, self.item, self.timestamp, self.weight, self.event = user, item, ts, w, ev
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        self.event_names = tuple(event_names)

    def __len__(self) -> int:
        return len(self.user)

    def __repr__(self) -> str:
        return (
            f"Interactions(n={len(self)}, users={self.n_users}, items={self.n_items}, "
            f"pairs={self.csr.nnz})"
        )

    @cached_property
    def csr(self) -> sp.csr_matrix:
        """users × items matrix, ``float32``; repeated pairs have their weights summed."""
        m = sp.csr_matrix(
            (self.weight, (self.user, self.item)), shape=(self.n_users, self.n_items), dtype=np.float32
        )
        m.sum_duplicates()
        m.sort_indices()
        return m

    @cached_property
    def binary(self) -> sp.csr_matrix:
        """users × items 0/1 matrix (``float32``): which pairs occurred at all."""
        m = self.csr.copy()
        m.data[:] = 1.0
        return m

    @cached_property
    def seq_indptr(self) -> np.ndarray:
        """``item[seq_indptr[u]:seq_indptr[u+1]]`` is user u's time-ordered history."""
        counts = np.bincount(self.user, minlength=self.n_users)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def sequence(self, u: int) -> np.ndarray:
        """Items of user ``u`` in time order (repeats kept)."""
        p = self.seq_indptr
        return self.item[p[u] : p[u + 1]]

    @property
    def active_users(self) -> np.ndarray:
        """Users with at least one event."""
        return np.flatnonzero(np.diff(self.seq_indptr) > 0)

    def item_counts(self) -> np.ndarray:
        """Number of distinct users per item."""
        return np.bincount(self.binary.indices, minlength=self.n_items).astype(np.int64)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The rows where ``mask`` holds (a boolean array or row indices), same id spaces."""
        return Interactions(
            self.user[mask],
            self.item[mask],
            self.n_users,
            self.n_items,
            self.timestamp[mask],
            self.weight[mask],
            self.event[mask],
            self.event_names,
        )

    def with_n_items(self, n_items: int) -> Interactions:
        """The same rows over a catalogue of ``n_items`` (at least the current one: items added without events)."""
        if n_items < self.n_items:
            raise ValueError(f"cannot shrink the catalogue from {self.n_items} to {n_items} items")
        out = self.subset(slice(None))
        out.n_items = int(n_items)
        return out

    def concat(self, other: Interactions) -> Interactions:
        """All rows of both (same id spaces)."""
        if (other.n_users, other.n_items) != (self.n_users, self.n_items):
            raise ValueError("cannot concatenate interactions over different id spaces")
        return Interactions(
            np.concatenate([self.user, other.user]),
            np.concatenate([self.item, other.item]),
            self.n_users,
            self.n_items,
            np.concatenate([self.timestamp, other.timestamp]),
            np.concatenate([self.weight, other.weight]),
            np.concatenate([self.event, other.event]),
            self.event_names or other.event_names,
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per event: user, item, timestamp, weight, event."""
        return pd.DataFrame(
            {
                "user": self.user,
                "item": self.item,
                "timestamp": self.timestamp,
                "weight": self.weight,
                "event": self.event,
            }
        )

    @classmethod
    def from_csr(cls, matrix: sp.spmatrix) -> Interactions:
        """Interactions from a users × items matrix (one event per non-zero)."""
        m = sp.csr_matrix(matrix)
        m.sum_duplicates()
        coo = m.tocoo()
        return cls(coo.row, coo.col, m.shape[0], m.shape[1], weight=coo.data)
