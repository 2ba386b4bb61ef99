"""Padded item sequences straight from :class:`~zenrec.data.Interactions`, vectorised.

Item ids are shifted by one so that 0 can pad; sequences are left-padded so
the most recent item always sits in the last column.
"""

from __future__ import annotations

import numpy as np

from zenrec.data.interactions import Interactions

__all__ = ["last_items", "training_windows", "trained_from", "pad_sequences"]


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


def _window_layout(inter: Interactions, length: int, all_windows: bool, stride: int | None):
    """Owner user, index from the end (0 = most recent) and count per owner of every training window."""
    stride = length if stride is None else int(stride)
    if not 1 <= stride <= length:  # a longer stride would skip transitions
        raise ValueError(f"stride must be from 1 to the window length {length}; got {stride}")
    n = np.diff(inter.seq_indptr)
    users = np.flatnonzero(n >= 2)
    if all_windows:
        # windows end at n, n - stride, …; the last one still covers the first transition
        per_user = np.ceil(np.maximum(n[users] - 1 - length, 0) / stride).astype(np.int64) + 1
    else:
        per_user = np.ones(len(users), np.int64)
    owner = np.repeat(users, per_user)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    return owner, k, np.repeat(per_user, per_user), stride


def training_windows(inter: Interactions, length: int, all_windows: bool = True, stride: int | None = None) -> np.ndarray:
    """Windows of ``length + 1`` consecutive items (shifted by one, 0-padded on the left).

    Each user's history is cut from its end into windows of ``length`` steps,
    a new window ending every ``stride`` steps (default ``length``:
    consecutive windows share one item, so every transition is in one
    window; a smaller stride overlaps them, and :func:`trained_from` says
    which transitions of each window to train so that each is trained once,
    with its longest context); with ``all_windows=False`` only the most
    recent window per user is kept.  Users with fewer than two events give
    no window.
    """
    owner, k, _, stride = _window_layout(inter, length, all_windows, stride)
    end = inter.seq_indptr[owner + 1] - k * stride  # exclusive end of each window
    start = inter.seq_indptr[owner]
    pos = end[:, None] - (length + 1) + np.arange(length + 1)[None, :]
    valid = pos >= start[:, None]
    out = np.zeros((len(owner), length + 1), dtype=np.int64)
    out[valid] = inter.item[pos[valid]].astype(np.int64) + 1
    return out


def trained_from(inter: Interactions, length: int, all_windows: bool = True, stride: int | None = None) -> np.ndarray:
    """For each window of :func:`training_windows`, the first of its ``length`` transitions to train.

    A transition lies in every overlapping window that holds both its items;
    it is trained in the one where it has the most items before it: the
    last ``stride`` transitions of each window, and all of a user's
    earliest window (which nothing earlier overlaps).  With the default
    stride every transition of every window is trained (all zeros).
    """
    _, k, count, stride = _window_layout(inter, length, all_windows, stride)
    return np.where(k == count - 1, 0, length - stride).astype(np.int64)
