"""Padded item sequences straight from :class:`~zenrec.data.Interactions`, vectorised.

Item ids are shifted by one so that 0 can pad; sequences are left-padded so
the most recent item always sits in the last column.
"""

from __future__ import annotations

import numpy as np

from zenrec.data.interactions import Interactions

__all__ = ["last_items", "training_windows", "pad_sequences"]


def pad_sequences(items: np.ndarray, indptr: np.ndarray, rows: np.ndarray, length: int) -> np.ndarray:
    """``len(rows) × length`` int64 matrix of the last ``length`` items (+1) of each row's range."""
    start, end = indptr[rows], indptr[rows + 1]
    pos = end[:, None] - length + np.arange(length)[None, :]
    valid = pos >= start[:, None]
    out = np.zeros((len(rows), length), dtype=np.int64)
    out[valid] = items[pos[valid]].astype(np.int64) + 1
    return out


def last_items(inter: Interactions, users: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` items of each user's time-ordered history, left-padded with 0."""
    return pad_sequences(inter.item, inter.seq_indptr, np.asarray(users, dtype=np.int64), length)


def training_windows(inter: Interactions, length: int, all_windows: bool = True, stride: int | None = None) -> np.ndarray:
    """Windows of ``length + 1`` consecutive items (shifted by one, 0-padded on the left).

    Each user's history is cut from its end into windows of ``length`` steps,
    a new window ending every ``stride`` steps (default ``length``:
    consecutive windows share one item, so every transition is trained
    once; a smaller stride overlaps them, so transitions are trained again
    with a longer context); with ``all_windows=False`` only the most recent
    window per user is kept.  Users with fewer than two events give no window.
    """
    stride = length if stride is None else int(stride)
    if not 1 <= stride <= length:  # a longer stride would skip transitions
        raise ValueError(f"stride must be from 1 to the window length {length}; got {stride}")
    indptr = inter.seq_indptr
    n = np.diff(indptr)
    users = np.flatnonzero(n >= 2)
    if all_windows:
        # windows end at n, n - stride, …; the last one still covers the first transition
        per_user = np.ceil(np.maximum(n[users] - 1 - length, 0) / stride).astype(np.int64) + 1
    else:
        per_user = np.ones(len(users), np.int64)
    owner = np.repeat(users, per_user)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    end = indptr[owner + 1] - k * stride  # exclusive end of each window
    start = indptr[owner]
    pos = end[:, None] - (length + 1) + np.arange(length + 1)[None, :]
    valid = pos >= start[:, None]
    out = np.zeros((len(owner), length + 1), dtype=np.int64)
    out[valid] = inter.item[pos[valid]].astype(np.int64) + 1
    return out
