"""Ranking and beyond-accuracy metrics, vectorised over users.

Accuracy metrics take a boolean hit matrix ``hits`` (users × K, column j is
rank j+1) and ``n_rel`` (relevant items per user) and return one value per
user; definitions follow RecBole's, so numbers compare with the field:

* ``recall@k = hits@k / n_rel``
* ``precision@k = hits@k / k``
* ``hit@k = 1 if any hit in the top k``
* ``mrr@k = 1 / rank of the first hit (0 if none in the top k)``
* ``ndcg@k = Σ_j hit_j / log2(j+1) / Σ_{j ≤ min(n_rel, k)} 1 / log2(j+1)``
* ``map@k = Σ_j precision@j · hit_j / min(n_rel, k)``
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

__all__ = [
    "hits_matrix",
    "recall",
    "precision",
    "hit_rate",
    "mrr",
    "ndcg",
    "average_precision",
    "ACCURACY_METRICS",
    "coverage",
    "novelty",
    "intra_list_diversity",
    "average_popularity",
]


def hits_matrix(top: np.ndarray, truth: sp.spmatrix) -> np.ndarray:
    """``hits[r, j]`` is True when item ``top[r, j]`` is in row r of ``truth``.

    Entries of ``top`` outside ``[0, n_items)`` (e.g. ``-1`` for an empty slot)
    are never hits; stored zeros of ``truth`` are not relevant.
    Vectorised: each (row, item) pair becomes one int64 key, looked up in the
    sorted keys of ``truth`` (whose rows align with ``top``'s).  ``truth`` is
    not modified.
    """
    top = np.asarray(top, dtype=np.int64)
    t = sp.csr_matrix(truth)  # a copy-free view when already CSR; never sorted in place
    if top.ndim != 2 or top.shape[0] != t.shape[0]:
        raise ValueError(f"hits_matrix: top of shape {top.shape} does not align with truth of shape {t.shape}")
    n_items = t.shape[1]
    rows = np.repeat(np.arange(t.shape[0], dtype=np.int64), np.diff(t.indptr))
    nz = t.data != 0
    keys = np.unique(rows[nz] * n_items + t.indices[nz])  # sorted, whatever the index order
    valid = (top >= 0) & (top < n_items)
    if len(keys) == 0:
        return np.zeros(top.shape, dtype=bool)
    q = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return (keys[pos] == q) & valid


def _check(hits: np.ndarray, n_rel: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if k <= 0:
        raise ValueError(f"k must be positive; got {k}")
    h = np.asarray(hits, dtype=bool)
    if h.ndim != 2:
        raise ValueError(f"hits must be a 2-d users × ranks array; got shape {h.shape}")
    h = h[:, :k]
    n = np.asarray(n_rel, dtype=np.float64).reshape(-1)
    if len(n) != h.shape[0]:
        raise ValueError(f"n_rel has {len(n)} values for {h.shape[0]} users")
    if (n <= 0).any():
        raise ValueError("every evaluated user needs at least one relevant item")
    return h, n


def recall(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Share of the user's relevant items found in the top k."""
    h, n = _check(hits, n_rel, k)
    return h.sum(axis=1) / n


def precision(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Share of the top k that is relevant."""
    h, _ = _check(hits, n_rel, k)
    return h.sum(axis=1) / k


def hit_rate(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """1 when at least one relevant item is in the top k."""
    h, _ = _check(hits, n_rel, k)
    return h.any(axis=1).astype(np.float64)


def mrr(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first relevant item in the top k."""
    h, _ = _check(hits, n_rel, k)
    if h.shape[1] == 0:
        return np.zeros(h.shape[0])
    first = np.argmax(h, axis=1)
    return np.where(h.any(axis=1), 1.0 / (first + 1), 0.0)


def ndcg(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Normalised discounted cumulative gain with binary relevance."""
    h, n = _check(hits, n_rel, k)
    disc = 1.0 / np.log2(np.arange(2, h.shape[1] + 2))
    dcg = (h * disc).sum(axis=1)
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    return dcg / ideal[np.minimum(n, k).astype(np.int64) - 1]


def average_precision(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    """Average precision at k, normalised by ``min(n_rel, k)``."""
    h, n = _check(hits, n_rel, k)
    prec_at = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
    return (prec_at * h).sum(axis=1) / np.minimum(n, k)


ACCURACY_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "recall": recall,
    "precision": precision,
    "ndcg": ndcg,
    "mrr": mrr,
    "map": average_precision,
    "hit": hit_rate,
}


def _valid(top: np.ndarray, n_items: int | None = None) -> np.ndarray:
    """Boolean mask of the filled slots of a top-k table (``-1`` marks an empty slot)."""
    top = np.asarray(top)
    ok = top >= 0
    if n_items is not None:
        ok &= top < n_items
    return ok


def coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list (empty ``-1`` slots ignored)."""
    if n_items <= 0:
        raise ValueError("n_items must be positive")
    top = np.asarray(top)
    return len(np.unique(top[_valid(top, n_items)])) / n_items


def novelty(top: np.ndarray, item_users: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2(share of users who had the item)`` of recommended items.

    Items no training user had count as if one user had them; empty ``-1``
    slots are ignored (0.0 when every slot is empty).
    """
    top = np.asarray(top)
    share = np.maximum(np.asarray(item_users, dtype=np.float64), 1.0) / max(n_users, 1)
    rec = top[_valid(top, len(share))]
    return float(np.mean(-np.log2(share[rec]))) if rec.size else 0.0


def average_popularity(top: np.ndarray, item_users: np.ndarray) -> float:
    """Mean number of training users of the recommended items (empty ``-1`` slots ignored)."""
    top = np.asarray(top)
    pop = np.asarray(item_users, dtype=np.float64)
    rec = top[_valid(top, len(pop))]
    return float(np.mean(pop[rec])) if rec.size else 0.0


def intra_list_diversity(top: np.ndarray, item_vectors: sp.spmatrix, max_dense_items: int = 4000) -> float:
    """Mean over lists of the average pairwise cosine *distance* between the list's items.

    ``item_vectors`` holds one row per item (e.g. its training users); an
    item with an all-zero vector is at distance 1 from every other.  With
    unit rows v, the sum of pairwise similarities of a list L is
    ``(‖Σ_{i∈L} v_i‖² − |L|) / 2``.  When at most ``max_dense_items``
    distinct items are recommended, their similarity matrix is formed once
    and each list's pairs are gathered from it (much faster); otherwise no
    pair is formed explicitly.  Empty
    ``-1`` slots are ignored; lists with fewer than two items are left out
    (0.0 when no list has two).
    """
    top = np.asarray(top)
    if top.ndim != 2:
        raise ValueError(f"top must be a 2-d lists × k array; got shape {top.shape}")
    v = sp.csr_matrix(item_vectors, dtype=np.float64)
    ok = _valid(top, v.shape[0])
    sizes = ok.sum(axis=1)
    lists = sizes >= 2
    if not lists.any():
        return 0.0
    norms = np.sqrt(np.asarray(v.multiply(v).sum(axis=1)).ravel())
    v = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ v
    m = sizes[lists].astype(np.float64)
    used, local = np.unique(np.where(ok, top, 0), return_inverse=True)
    local = local.reshape(top.shape)
    if len(used) <= max_dense_items:
        # cosine similarities among the recommended items only, then a gather per list
        vu = v[used]
        sim = (vu @ vu.T).toarray()
        k = top.shape[1]
        pair = np.zeros(top.shape[0], dtype=np.float64)
        off = ~np.eye(k, dtype=bool)  # pairs of different positions
        for s0 in range(0, top.shape[0], 4096):  # lists × k × k gathered in blocks
            loc, okb = local[s0 : s0 + 4096], ok[s0 : s0 + 4096]
            g = sim[loc[:, :, None], loc[:, None, :]]
            g *= okb[:, :, None] & okb[:, None, :] & off
            pair[s0 : s0 + 4096] = g.sum(axis=(1, 2))
        mean_sim = pair[lists] / (m * (m - 1))
        return float(np.mean(1.0 - mean_sim))
    unit = (norms > 0).astype(np.float64)
    ind = sp.csr_matrix(
        (np.ones(int(ok.sum())), top[ok], np.concatenate([[0], np.cumsum(sizes)])),
        shape=(top.shape[0], v.shape[0]),
    )
    s = ind @ v
    sq = np.asarray(s.multiply(s).sum(axis=1)).ravel()
    self_sim = np.asarray(ind @ unit).ravel()
    mean_sim = (sq[lists] - self_sim[lists]) / (m * (m - 1))
    return float(np.mean(1.0 - mean_sim))
