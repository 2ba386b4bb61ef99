"""Filters and top-k over precomputed score rows: :class:`ScoreRetriever` and :func:`filtered_topk`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zenrec.errors import ConfigError
from zenrec.retrieval.base import _BLOCK_FLOATS, Exclude, Retriever, _Filter, _finish
from zenrec.retrieval.topk import topk

__all__ = ["ScoreRetriever", "filtered_topk"]


# -------------------------------------------------------------------- exact
class ScoreRetriever(Retriever):
    """Filters and top-k over precomputed score rows: each "query" is one row of ``n_items`` scores.

    For models whose scores are not a dot product: a serving layer calls
    ``model.score(users)`` and passes the block as ``queries``.  NaN ranks
    like ``-inf``; an allowed item with a ``-inf``/NaN score still counts as
    available and is returned (last) rather than a filtered one.
    """

    backend = "score"

    def __init__(self, n_items: int) -> None:
        if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items <= 0:
            raise ConfigError(f"the 'n_items' parameter must be a positive integer; got {n_items!r}")
        self.n_items = self.dim = int(n_items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_items={self.n_items})"

    def _check_queries(self, queries: Any) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.n_items or q.dtype.kind not in "fiu":
            raise ConfigError(f"the score rows must be a numeric m × {self.n_items} matrix; got {q.dtype} {q.shape}")
        return q

    def _block(self, q: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Scores of query rows ``start:stop``: a fresh float32 block the caller may modify."""
        return np.array(q[start:stop], dtype=np.float32, copy=True)

    def _search(self, q: np.ndarray, k: int, f: _Filter, ids: np.ndarray, scores: np.ndarray) -> None:
        m = len(q)
        step = max(1, _BLOCK_FLOATS // self.n_items)
        for s in range(0, m, step):
            e = min(m, s + step)
            block = self._block(q, s, e)
            if f.active:
                f.mask(block, s, e)
            bi, bs = topk(block, k)
            if f.active:
                want = np.minimum(f.available[s:e], k)
                within = np.arange(k)[None, :] < want[:, None]
                # an allowed item scored -inf/NaN ties with filtered ones: redo those rows
                for r in np.flatnonzero((f.rejected(np.arange(s, e), bi) & within).any(axis=1)):
                    raw = self._block(q, s + r, s + r + 1)[0]
                    key = np.where(raw > -np.inf, raw, np.finfo(np.float32).min)
                    key[~f.candidates(s + r)] = -np.inf
                    ri, _ = topk(key[None, :], k)
                    bi[r], bs[r] = ri[0], raw[ri[0]]
                _finish(bi, bs, want)
            ids[s:e, :k], scores[s:e, :k] = bi, bs

    def _write(self, directory: Path, manifest: dict[str, Any]) -> None:
        return None

    @classmethod
    def _read(cls, path: Path, manifest: dict[str, Any], mmap: bool = False) -> ScoreRetriever:
        n_items = cls._n_items(path, manifest)
        return cls(n_items)


def filtered_topk(
    scores: np.ndarray, k: int, exclude: Exclude = None, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The one filtered top-k: best ``k`` items of each score row after ``exclude``/``allowed``.

    Returns ``(ids m×k int64, scores m×k float32)``, best first; ties go to
    the lower item id.  Each row holds exactly ``min(k, available)`` items
    (an allowed item scored ``-inf``/NaN still counts and comes last); the rest
    is padded with id ``-1`` and score ``-inf``.  ``scores`` is not modified.
    """
    s = np.asarray(scores)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2 or s.shape[1] == 0:
        raise ConfigError(f"the score rows must be a non-empty m × items matrix; got shape {s.shape}")
    return ScoreRetriever(s.shape[1]).search(s, k, exclude=exclude, allowed=allowed)

