"""Padded item sequences straight from :class:`~zenrec.data.Interactions`, vectorised.

Item ids are shifted by one so that 0 can pad; sequences are left-padded so
the most recent item always sits in the last column.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from zenrec.data.interactions import Interactions

__all__ = ["Windows", "last_items", "training_windows", "pad_sequences"]


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


class Windows(NamedTuple):
    """Training windows and, for each, the first of its transitions to train."""

    items: np.ndarray  #: ``W × (length + 1)`` item ids + 1, 0-padded on the left
    first: np.ndarray  #: ``W`` column of the first target to train (0: all of them)


def training_windows(inter: Interactions, length: int, all_windows: bool = True, stride: int | None = None) -> Windows:
    """Windows of ``length + 1`` consecutive items (shifted by one, 0-padded on the left).

    Each user's history is cut from its end into windows of ``length`` steps,
    a new window ending every ``stride`` steps (default ``length``:
    consecutive windows share one item, so every transition is in one
    window); with ``all_windows=False`` only the most recent window per user
    is kept.  Users with fewer than two events give no window.

    A smaller stride overlaps the windows.  A transition lies in every window
    that holds both its items, and is trained in the one where it has the
    most items before it: ``first`` marks the last ``stride`` transitions of
    each window, and all of a user's earliest window (which nothing earlier
    overlaps).  So each transition is trained once, with its longest context.
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
    k = np.arange(len(owner)) - np.repeat(np.cumsum(per_user) - per_user, per_user)  # 0 = most recent
    end = indptr[owner + 1] - k * stride  # exclusive end of each window
    pos = end[:, None] - (length + 1) + np.arange(length + 1)[None, :]
    valid = pos >= indptr[owner][:, None]
    out = np.zeros((len(owner), length + 1), dtype=np.int64)
    out[valid] = inter.item[pos[valid]].astype(np.int64) + 1
    earliest = k == np.repeat(per_user, per_user) - 1
    return Windows(out, np.where(earliest, 0, length - stride).astype(np.int64))
