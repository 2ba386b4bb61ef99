"""An approximate index kept on disk beside the model it indexes: :func:`saved_retriever`.

Building an HNSW graph over a million items takes minutes; reading it back
takes seconds, and memory-mapping it (``faiss.IO_FLAG_MMAP``) lets every
process that serves the same model share one copy of its pages.  The first
server to need the index builds it and writes it atomically into the model's
directory (``index/``: faiss's own format beside a JSON manifest, never a
pickle); later starts map it.

The manifest records a fingerprint of what the index was built from (a hash
of the item vectors and bias, and the build parameters).  A saved index is
used only when its fingerprint is the one of the vectors at hand *and* a full
check (:meth:`FaissRetriever.check_matches`) finds exactly those vectors and a
graph whose every link stays inside the catalogue; anything else (stale,
foreign, truncated, edited) is logged as a warning and rebuilt over.  Two
processes starting together take a lock so that one builds while the other
waits for its file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zenrec.errors import ArtifactError
from zenrec.retrieval.base import Retriever, _check_vectors
from zenrec.retrieval.factory import make_retriever
from zenrec.retrieval.faiss import FaissRetriever

__all__ = ["INDEX_DIR", "saved_retriever", "vectors_fingerprint"]

log = logging.getLogger(__name__)

#: the folder, inside a model directory, that holds its saved approximate index
INDEX_DIR = "index"
#: build parameters that change only the query-time effort (not part of the fingerprint)
_QUERY_TIME = ("ef_search", "nprobe")


def vectors_fingerprint(item_vectors: np.ndarray, item_bias: np.ndarray | None, params: dict[str, Any]) -> str:
    """A hash of the item vectors, the bias and the build ``params``: what an index was built from."""
    vectors, bias = _check_vectors(item_vectors, item_bias)
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps({"shape": list(vectors.shape), "bias": bias is not None,
                         "params": {k: v for k, v in sorted(params.items()) if k not in _QUERY_TIME}},
                        sort_keys=True, default=str).encode())
    h.update(memoryview(vectors).cast("B"))
    if bias is not None:
        h.update(memoryview(bias).cast("B"))
    return h.hexdigest()


def saved_retriever(
    directory: str | Path,
    item_vectors: np.ndarray,
    item_bias: np.ndarray | None = None,
    backend: str = "auto",
    exact_max_items: int = 50_000,
    **params: Any,
) -> Retriever:
    """:func:`~zenrec.retrieval.make_retriever` for these vectors, kept in ``directory`` when it is an
    approximate (faiss) index.

    A saved index whose manifest fingerprint matches and which passes
    :meth:`FaissRetriever.check_matches` is memory-mapped; otherwise the index
    is built and written to ``directory`` atomically (a warning, not an
    error, when that folder cannot be written: the built index still serves).
    Query-time parameters (``ef_search``, ``nprobe``) are applied to a loaded
    index as given.  Exact retrieval keeps nothing on disk.
    """
    n = len(np.asarray(item_vectors)) if np.ndim(item_vectors) else 0
    if backend == "exact" or (backend == "auto" and n <= exact_max_items):
        return make_retriever(item_vectors, item_bias, backend, exact_max_items, **params)
    directory = Path(directory)
    fingerprint = vectors_fingerprint(item_vectors, item_bias, {"backend": backend, **params})
    with _build_lock(directory):
        found = _load(directory, fingerprint, item_vectors, item_bias)
        if found is not None:
            query_time = {k: params[k] for k in _QUERY_TIME if params.get(k) is not None}
            return found.set_search_params(**query_time) if query_time else found
        built = make_retriever(item_vectors, item_bias, backend, exact_max_items, **params)
        try:
            built.save(directory, metadata={"fingerprint": fingerprint})
            log.info("saved the %s index to %s (%.1fs to build)", built.backend, directory, built.build_seconds)
        except (OSError, ArtifactError) as exc:
            log.warning("%s: cannot save the index (%s); it is rebuilt at every start", directory, exc)
        return built


def _load(directory: Path, fingerprint: str, item_vectors: np.ndarray,
          item_bias: np.ndarray | None) -> FaissRetriever | None:
    """The index saved in ``directory`` when it is one for these vectors, else None (with a warning why)."""
    if not (directory / "manifest.json").exists():
        return None
    try:
        found = Retriever.load(directory, mmap=True)
        saved = found.fingerprint
        if not isinstance(found, FaissRetriever):
            raise ArtifactError(f"{directory}: holds a {type(found).__name__}, not a faiss index")
        if saved != fingerprint:
            raise ArtifactError(f"{directory}: built for other vectors or parameters (fingerprint "
                                f"{str(saved)[:12]}…, expected {fingerprint[:12]}…)")
        found.check_matches(item_vectors, item_bias, str(directory / "index.faiss"))
    except ArtifactError as exc:
        log.warning("not using the saved index: %s; rebuilding it", exc)
        return None
    log.info("memory-mapped the saved %s index from %s", found.kind, directory)
    return found


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock beside ``directory`` (POSIX), so that one process builds while the others wait for its
    file; no lock where the folder cannot be written or locks do not exist."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory.parent / f".{directory.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
