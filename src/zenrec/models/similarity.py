"""How a model relates items to items: :class:`ItemSimilarity` (similar items and reasons).

Three kinds, each built by one constructor:

* :meth:`ItemSimilarity.from_vectors` — cosine of item vectors (factor and
  neural models); its unit vectors allow ANN search for similar items;
* :meth:`ItemSimilarity.from_weights` — a model's own item-item weights
  (EASE's B matrix, ItemKNN's neighbour table);
* :meth:`ItemSimilarity.from_cooccurrence` — normalised co-occurrence in the
  training matrix, for models that have neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["ItemSimilarity"]


@dataclass(frozen=True)
class ItemSimilarity:
    """Item-item similarity of one kind (``method``): ``between(rows, cols)`` gives a ``len(rows) × len(cols)`` block.

    ``unit_vectors`` is set when the similarity is the inner product of
    those (L2-normalised) vectors, so an ANN index over them finds similar items.
    """

    method: str
    unit_vectors: np.ndarray | None = None
    _matrix: Any = None  # weights: dense or CSC items × items
    _cooc: tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray] | None = None

    @classmethod
    def from_vectors(cls, vectors: np.ndarray) -> ItemSimilarity:
        """Cosine of item vectors (a zero vector is similar to nothing)."""
        v = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        unit = np.where(norms > 0, v / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        return cls("embedding", unit_vectors=unit)

    @classmethod
    def from_weights(cls, weights: np.ndarray | sp.spmatrix) -> ItemSimilarity:
        """A model's item-item weight matrix: entry (i, j) is how much item i supports item j."""
        w = weights.tocsc() if sp.issparse(weights) else np.asarray(weights)
        return cls("weights", _matrix=w)

    @classmethod
    def from_cooccurrence(cls, seen: sp.csr_matrix) -> ItemSimilarity:
        """Co-occurrence in a users × items matrix, normalised by ``sqrt(count_i · count_j)``."""
        seen = sp.csr_matrix(seen, dtype=np.float32)
        counts = np.asarray(seen.sum(axis=0)).ravel().astype(np.float64)
        return cls("cooccurrence", _cooc=(seen.T.tocsr(), seen, counts))

    def between(self, rows: np.ndarray | None, cols: np.ndarray) -> np.ndarray:
        """Similarity of each item of ``rows`` (None: every item) to each item of ``cols``, float64.

        Computed without copying the model's matrices row by row: only the
        ``cols`` columns are read, then the ``rows``.
        """
        cols = np.asarray(cols, dtype=np.int64)

        def take(a: Any) -> Any:  # scipy copies a matrix even for a full slice
            return a if rows is None else a[np.asarray(rows, dtype=np.int64)]

        if self.unit_vectors is not None:
            unit = self.unit_vectors
            return np.asarray(take(unit) @ unit[cols].T, dtype=np.float64)
        if self._matrix is not None:
            block = take(self._matrix[:, cols])
            return np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)
        assert self._cooc is not None
        by_item, seen, counts = self._cooc
        co = np.asarray((take(by_item) @ seen[:, cols]).toarray(), dtype=np.float64)
        return co / np.sqrt(np.maximum(np.outer(take(counts), counts[cols]), 1e-12))
