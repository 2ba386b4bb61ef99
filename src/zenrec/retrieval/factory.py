"""Pick a retriever for a catalogue (:func:`make_retriever`) and read any saved one (:func:`load_retriever`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from zenrec.errors import ConfigError
from zenrec.retrieval.base import Retriever, check_k
from zenrec.retrieval.exact import ExactRetriever
from zenrec.retrieval.faiss import FaissRetriever

__all__ = ["make_retriever", "load_retriever"]


# ------------------------------------------------------------------ factories
def make_retriever(
    item_vectors: np.ndarray,
    item_bias: np.ndarray | None = None,
    backend: Literal["auto", "exact", "faiss", "hnsw", "ivf"] = "auto",
    exact_max_items: int = 50_000,
    **params: Any,
) -> Retriever:
    """Exact scoring for catalogues of at most ``exact_max_items`` items, faiss above.

    ``backend`` forces one: ``"exact"``, ``"faiss"`` (``params['kind']``,
    HNSW by default), ``"hnsw"`` or ``"ivf"``.  ``params`` go to
    :class:`FaissRetriever`; with ``"auto"`` they are ignored when the
    catalogue is small enough for exact scoring.
    """
    if backend not in ("auto", "exact", "faiss", "hnsw", "ivf"):
        raise ConfigError(f"the 'backend' parameter must be auto, exact, faiss, hnsw or ivf; got {backend!r}")
    n = len(np.asarray(item_vectors)) if np.ndim(item_vectors) else 0
    if backend == "auto":
        check_k(exact_max_items, "exact_max_items")
        backend = "exact" if n <= exact_max_items else "faiss"
        if backend == "exact":
            params = {}
    if backend == "exact":
        if params:
            raise ConfigError(f"the exact backend takes no parameters; got {sorted(params)}")
        return ExactRetriever(item_vectors, item_bias)
    if backend in ("hnsw", "ivf"):
        if params.setdefault("kind", backend) != backend:
            raise ConfigError(f"backend={backend!r} conflicts with kind={params['kind']!r}")
    return FaissRetriever(item_vectors, item_bias, **params)


def load_retriever(path: str | Path) -> Retriever:
    """Load any retriever written by :meth:`Retriever.save` (exact, score or faiss)."""
    return Retriever.load(path)
