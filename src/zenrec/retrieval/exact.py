"""Exact inner-product retrieval: :class:`ExactRetriever`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from zenrec._io import load_arrays, save_arrays
from zenrec.errors import ArtifactError
from zenrec.retrieval.base import Retriever, _check_vectors
from zenrec.retrieval.score import ScoreRetriever

__all__ = ["ExactRetriever"]


class ExactRetriever(ScoreRetriever):
    """Exact inner-product retrieval: scores ``q·V + b`` by a matrix product, top-k by ``argpartition``."""

    backend = "exact"

    def __init__(self, item_vectors: np.ndarray, item_bias: np.ndarray | None = None) -> None:
        t0 = time.perf_counter()
        self.item_vectors, self.item_bias = _check_vectors(item_vectors, item_bias)
        self.n_items, self.dim = self.item_vectors.shape
        self._vt = self.item_vectors.T  # a view: no second copy
        self.build_seconds = time.perf_counter() - t0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_items={self.n_items}, dim={self.dim}, bias={self.item_bias is not None})"

    def _check_queries(self, queries: Any) -> np.ndarray:
        return Retriever._check_queries(self, queries)

    def _block(self, q: np.ndarray, start: int, stop: int) -> np.ndarray:
        block = q[start:stop] @ self._vt
        if self.item_bias is not None:
            block += self.item_bias
        return block

    def _write(self, directory: Path, manifest: dict[str, Any]) -> None:
        arrays = {"item_vectors": self.item_vectors}
        if self.item_bias is not None:
            arrays["item_bias"] = self.item_bias
        save_arrays(directory / "vectors.npz", arrays)
        manifest["has_bias"] = self.item_bias is not None

    @classmethod
    def _read(cls, path: Path, manifest: dict[str, Any], mmap: bool = False) -> ExactRetriever:
        n_items = cls._n_items(path, manifest)
        arrays = load_arrays(path / "vectors.npz")
        if "item_vectors" not in arrays or len(arrays["item_vectors"]) != n_items:
            raise ArtifactError(f"{path}/vectors.npz: does not match the manifest (n_items={n_items})")
        r = cls(arrays["item_vectors"], arrays.get("item_bias"))
        r.build_seconds = float(manifest.get("build_seconds") or 0.0)
        return r
