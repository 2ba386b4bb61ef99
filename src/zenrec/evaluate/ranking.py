"""Top-k selection and masking on score blocks: the kernels of evaluation and serving."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["topk", "mask_rows", "hits_matrix"]


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores per row, best first.

    ``argpartition`` selects the candidates, then only those k are sorted;
    ``-inf`` entries come last and ties go to the lower item index.
    """
    n = scores.shape[1]
    k = min(int(k), n)
    if k <= 0:
        return np.empty((scores.shape[0], 0), np.int64), np.empty((scores.shape[0], 0), scores.dtype)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    # sort by value descending, then by item index ascending
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx.astype(np.int64), np.take_along_axis(vals, order, axis=1)


def mask_rows(block: np.ndarray, exclude: sp.csr_matrix, users: np.ndarray) -> None:
    """Set ``block[r, j] = -inf`` for every item j in row ``users[r]`` of ``exclude`` (in place).

    Users outside ``exclude``'s rows (unknown users) are left unmasked.
    """
    users = np.asarray(users, dtype=np.int64)
    valid = (users >= 0) & (users < exclude.shape[0])
    rows = np.flatnonzero(valid)
    if len(rows) == 0:
        return
    sub = exclude[users[rows]]
    r = np.repeat(rows, np.diff(sub.indptr))
    block[r, sub.indices] = -np.inf


def hits_matrix(top: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """``hits[r, j]`` is True when item ``top[r, j]`` is in row r of ``truth``.

    Vectorised: each (row, item) pair becomes one int64 key, looked up in the
    sorted keys of ``truth`` (whose rows align with ``top``'s).
    """
    truth = truth.tocsr()
    truth.sort_indices()
    n_items = truth.shape[1]
    rows = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr))
    keys = rows * n_items + truth.indices
    q = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    pos = np.searchsorted(keys, q)
    pos = np.minimum(pos, len(keys) - 1) if len(keys) else pos
    return (keys[pos] == q) if len(keys) else np.zeros(top.shape, dtype=bool)
