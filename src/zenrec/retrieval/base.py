"""Top-k retrieval over an item catalogue, with filters that never cost results.

One interface, :class:`Retriever`, three implementations with the same
``search(queries, k, exclude=None, allowed=None) -> (ids, scores)``:

* :class:`ExactRetriever` — scores ``q·V + b`` by a matrix product and
  selects the top k with ``argpartition``; exact, best for small catalogues;
* :class:`FaissRetriever` — approximate nearest neighbours by inner product
  through faiss (HNSW graph or IVF lists), for large catalogues; an item bias
  is folded in exactly (``q' = [q, 1]``, ``v' = [v, b]``);
* :class:`ScoreRetriever` — for models whose scores are not a dot product:
  the "query" is a precomputed score row (``model.score(users)``), and the
  retriever only filters and selects.

Filters: ``exclude`` (items already seen: one id array per query, or a
queries × items sparse matrix) and ``allowed`` (a boolean mask over items:
availability, business rules — :func:`attribute_filter` builds one from an
item table).  They are applied without losing results: every row holds
exactly ``min(k, available)`` items, where ``available`` counts the items that
pass its filters; the rest of the row is padded with id ``-1`` and score
``-inf``.  The approximate backend over-fetches ``k + excluded`` candidates
(scaled up by the share of items ``allowed``), retries the rows that came up
short with twice the fetch, and once a fetch would reach a tenth of the
catalogue, scans the catalogue exactly with the filter inside faiss.

:func:`make_retriever` picks exact scoring below ``exact_max_items`` and faiss
above; :func:`load_retriever` reads any retriever saved with ``save`` (a
``manifest.json`` beside ``index.faiss`` in faiss's own format, or
``vectors.npz``; nothing is ever unpickled).
"""


from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from zenrec import __version__
from zenrec._io import atomic_dir, read_manifest, write_json
from zenrec.errors import ArtifactError, ConfigError, DataError

__all__ = ["Retriever", "Exclude", "RETRIEVER_FORMAT", "check_k"]

log = logging.getLogger(__name__)

#: Version of the on-disk retriever layout; a newer one is refused on load.
RETRIEVER_FORMAT = 1

_BLOCK_FLOATS = 1 << 24  # scores per exact block (64 MB of float32)
_FETCH_ENTRIES = 1 << 22  # ids per faiss call (rows × fetch)
_SCAN_FRACTION = 0.1  # a fetch this share of the catalogue or more: scan it exactly instead


Exclude = Sequence[Any] | sp.spmatrix | None


# --------------------------------------------------------------------- filters
class _Filter:
    """The validated ``exclude``/``allowed`` of one search, as lookups by (query row, item)."""

    def __init__(self, m: int, n_items: int, exclude: Exclude, allowed: np.ndarray | None) -> None:
        self.m, self.n = m, n_items
        self.keys = _exclude_keys(exclude, m, n_items)  # sorted unique row * n + item
        self.allowed = _check_allowed(allowed, m, n_items)
        self.active = len(self.keys) > 0 or self.allowed is not None
        self._disallowed: np.ndarray | None = None
        if not self.active:
            self.n_allowed = self.available = np.full(m, n_items, dtype=np.int64)
            self.n_excluded = np.zeros(m, dtype=np.int64)
            return
        rows, items = np.divmod(self.keys, n_items)
        if self.allowed is None:
            hit = np.ones(len(self.keys), dtype=bool)
            self.n_allowed = np.full(m, n_items, dtype=np.int64)
        elif self.allowed.ndim == 1:
            hit = self.allowed[items]
            self.n_allowed = np.full(m, np.count_nonzero(self.allowed), dtype=np.int64)
        else:
            hit = self.allowed[rows, items]
            self.n_allowed = np.count_nonzero(self.allowed, axis=1).astype(np.int64)
        #: excluded items that the allowed mask would otherwise let through, per row
        self.n_excluded = np.bincount(rows[hit], minlength=m).astype(np.int64)
        #: items that pass every filter, per row
        self.available = self.n_allowed - self.n_excluded

    def rejected(self, rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """True where item ``ids[i, j]`` may not be returned for query row ``rows[i]`` (or is ``-1``)."""
        bad = ids < 0
        safe = np.where(bad, 0, ids)
        if self.allowed is not None:
            if self.allowed.ndim == 1:
                bad |= ~self.allowed[safe]
            else:
                bad |= ~self.allowed[rows[:, None], safe]
        if len(self.keys):
            q = rows[:, None].astype(np.int64) * self.n + safe
            pos = np.minimum(np.searchsorted(self.keys, q), len(self.keys) - 1)
            bad |= self.keys[pos] == q
        return bad

    def mask(self, block: np.ndarray, start: int, stop: int) -> None:
        """Set ``-inf`` in a score block of query rows ``start:stop`` wherever an item is filtered out."""
        if self.allowed is not None:
            if self.allowed.ndim == 1:
                if self._disallowed is None:
                    self._disallowed = np.flatnonzero(~self.allowed)
                block[:, self._disallowed] = -np.inf
            else:
                block[~self.allowed[start:stop]] = -np.inf
        if len(self.keys):
            lo, hi = np.searchsorted(self.keys, [start * self.n, stop * self.n])
            rows, items = np.divmod(self.keys[lo:hi], self.n)
            block[rows - start, items] = -np.inf

    def candidates(self, row: int) -> np.ndarray:
        """Boolean mask of the items query ``row`` may receive."""
        if self.allowed is None:
            ok = np.ones(self.n, dtype=bool)
        else:
            ok = (self.allowed if self.allowed.ndim == 1 else self.allowed[row]).copy()
        lo, hi = np.searchsorted(self.keys, [row * self.n, (row + 1) * self.n])
        ok[self.keys[lo:hi] - row * self.n] = False
        return ok

    def has_exclusions(self) -> np.ndarray:
        """Per row: True when the row has an ``exclude`` list of its own."""
        return np.bincount(self.keys // self.n, minlength=self.m) > 0


def _exclude_keys(exclude: Exclude, m: int, n: int) -> np.ndarray:
    """``exclude`` as sorted unique ``row * n + item`` keys, validated."""
    if exclude is None:
        return np.empty(0, dtype=np.int64)
    if sp.issparse(exclude):
        if exclude.shape != (m, n):
            raise ConfigError(
                f"the 'exclude' matrix must be queries × items = ({m}, {n}); got shape {exclude.shape}"
            )
        coo = sp.coo_matrix(exclude)
        nz = coo.data != 0  # stored zeros exclude nothing
        keys = coo.row[nz].astype(np.int64) * n + coo.col[nz]
        return np.unique(keys)
    if isinstance(exclude, np.ndarray) or not isinstance(exclude, Sequence) or isinstance(exclude, str):
        raise ConfigError(
            "the 'exclude' parameter must be a list with one array of item ids per query, "
            f"or a queries × items sparse matrix; got {type(exclude).__name__}"
        )
    if len(exclude) != m:
        raise ConfigError(f"the 'exclude' list must hold one entry per query ({m}); got {len(exclude)}")
    parts = []
    for r, row in enumerate(exclude):
        if row is None:
            continue
        ids = np.asarray(row).reshape(-1)
        if ids.size == 0:
            continue
        if ids.dtype.kind not in "iu":
            raise ConfigError(f"the 'exclude' entry of query {r} must hold integer item ids; got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= n:
            bad = ids[(ids < 0) | (ids >= n)][0]
            raise ConfigError(f"the 'exclude' entry of query {r} holds item id {bad}, outside [0, {n})")
        parts.append(r * np.int64(n) + ids.astype(np.int64))
    if not parts:
        return np.empty(0, dtype=np.int64)
    if len(parts) == 1 and (len(parts[0]) < 2 or bool((parts[0][1:] > parts[0][:-1]).all())):
        return parts[0]  # one query's sorted ids (a CSR row): already sorted and unique
    return np.unique(np.concatenate(parts))


def _check_allowed(allowed: np.ndarray | None, m: int, n: int) -> np.ndarray | None:
    if allowed is None:
        return None
    a = np.asarray(allowed)
    if a.dtype != np.bool_:
        raise ConfigError(f"the 'allowed' mask must be boolean (one flag per item); got dtype {a.dtype}")
    if a.shape != (n,) and a.shape != (m, n):
        raise ConfigError(f"the 'allowed' mask must have shape ({n},) or ({m}, {n}); got {a.shape}")
    return a


def check_k(k: Any, name: str = "k") -> int:
    """The one validator of a list length ``k`` (and other counts): a positive integer, never a bool."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ConfigError(f"the {name!r} parameter must be a positive integer; got {k!r}")
    return int(k)


def _check_vectors(item_vectors: Any, item_bias: Any) -> tuple[np.ndarray, np.ndarray | None]:
    v = np.asarray(item_vectors)
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0 or v.dtype.kind not in "fiu":
        raise DataError(f"the 'item_vectors' must be a non-empty items × dim numeric matrix; got {v.dtype} {v.shape}")
    v = np.ascontiguousarray(v, dtype=np.float32)
    if not np.isfinite(v).all():
        raise DataError(f"the 'item_vectors' hold non-finite values (row {int(np.flatnonzero(~np.isfinite(v).all(1))[0])})")
    if item_bias is None:
        return v, None
    b = np.asarray(item_bias)
    if b.dtype.kind not in "fiu" or b.reshape(-1).shape != (len(v),):
        raise DataError(f"the 'item_bias' must hold one number per item ({len(v)}); got {b.dtype} {b.shape}")
    b = np.ascontiguousarray(b.reshape(-1), dtype=np.float32)
    if not np.isfinite(b).all():
        raise DataError(f"the 'item_bias' holds non-finite values (item {int(np.flatnonzero(~np.isfinite(b))[0])})")
    return v, b


def _finish(ids: np.ndarray, scores: np.ndarray, want: np.ndarray) -> None:
    """Pad every row past its ``want`` results with id ``-1`` and score ``-inf`` (in place)."""
    pad = np.arange(ids.shape[1])[None, :] >= want[:, None]
    ids[pad] = -1
    scores[pad] = -np.inf


# ------------------------------------------------------------------ interface
class Retriever(ABC):
    """Top-k items for query vectors, with ``exclude``/``allowed`` filters that never cost results."""

    #: name written in the saved manifest
    backend: ClassVar[str]
    #: number of items in the catalogue (ids ``0 .. n_items - 1``)
    n_items: int
    #: length of a query vector
    dim: int
    #: seconds spent building the index (0 for exact scoring)
    build_seconds: float = 0.0
    #: what a loaded retriever's manifest says it was built from (:func:`~zenrec.retrieval.saved.saved_retriever`)
    fingerprint: str | None = None

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Exclude = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` items per query row: ``(ids m×k int64, scores m×k float32)``, best first.

        ``queries`` is ``m × dim`` (one 1-d vector is read as one row).
        ``exclude`` lists item ids never to return, per query (a list of ``m``
        arrays, or an ``m × n_items`` sparse matrix whose non-zeros exclude);
        ``allowed`` is a boolean mask over items (``n_items``, or ``m ×
        n_items`` per query).  Each row holds exactly ``min(k, available)``
        items; the rest is padded with id ``-1`` and score ``-inf``.
        """
        q = self._check_queries(queries)
        k = check_k(k)
        f = _Filter(len(q), self.n_items, exclude, allowed)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        if len(q):
            self._search(q, min(k, self.n_items), f, ids, scores)
        return ids, scores

    @abstractmethod
    def _search(self, q: np.ndarray, k: int, f: _Filter, ids: np.ndarray, scores: np.ndarray) -> None:
        """Fill the first ``k`` columns of ``ids``/``scores``; ``k ≤ n_items``."""

    def _check_queries(self, queries: Any) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim or q.dtype.kind not in "fiu":
            raise ConfigError(
                f"the 'queries' must be a numeric m × {self.dim} matrix for {type(self).__name__}; "
                f"got {q.dtype} {q.shape}"
            )
        q = np.ascontiguousarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            raise ConfigError(f"the 'queries' hold non-finite values (row {int(np.flatnonzero(~np.isfinite(q).all(1))[0])})")
        return q

    # ---------------------------------------------------------- persistence
    def _manifest(self) -> dict[str, Any]:
        return {
            "kind": "retriever",
            "format_version": RETRIEVER_FORMAT,
            "zenrec_version": __version__,
            "backend": self.backend,
            "n_items": self.n_items,
            "dim": self.dim,
            "build_seconds": self.build_seconds,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write the retriever to a directory (``manifest.json`` + its index), atomically; ``metadata`` (JSON)
        goes into the manifest (a ``fingerprint`` is read back as :attr:`fingerprint`)."""
        path = Path(path)
        with atomic_dir(path) as tmp:
            manifest = {**(metadata or {}), **self._manifest()}
            self._write(tmp, manifest)
            write_json(tmp / "manifest.json", manifest)
        return path

    @abstractmethod
    def _write(self, directory: Path, manifest: dict[str, Any]) -> None:
        """Write the index files (and add their parameters to ``manifest``)."""

    #: backend name → class, filled as the backends are defined (see ``__init_subclass__``)
    _backends: ClassVar[dict[str, type[Retriever]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "backend" in cls.__dict__:
            Retriever._backends[cls.backend] = cls

    @classmethod
    @abstractmethod
    def _read(cls, path: Path, manifest: dict[str, Any], mmap: bool = False) -> Retriever:
        """Rebuild a retriever of this backend from its directory and manifest (``mmap``: map the index file
        instead of reading it, where the backend can)."""

    @staticmethod
    def _n_items(path: Path, manifest: dict[str, Any]) -> int:
        """The manifest's item count (an ArtifactError naming the file when it is not a number)."""
        try:
            return int(manifest["n_items"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}/manifest.json: corrupted manifest ({exc})") from None

    @classmethod
    def load(cls, path: str | Path, mmap: bool = False) -> Retriever:
        """Load a retriever saved by :meth:`save` (any backend when called on the base).

        ``mmap``: memory-map a faiss index file rather than read it (start in
        seconds; processes serving the same file share its pages).
        """
        path = Path(path)
        manifest = read_manifest(path, "retriever", RETRIEVER_FORMAT)
        backend = manifest.get("backend")
        impl = Retriever._backends.get(backend) if isinstance(backend, str) else None
        if impl is None:
            raise ArtifactError(f"{path}/manifest.json: unknown retriever backend {backend!r}")
        r = impl._read(path, manifest, mmap)
        fingerprint = manifest.get("fingerprint")
        r.fingerprint = fingerprint if isinstance(fingerprint, str) else None
        if cls is not Retriever and not isinstance(r, cls):
            raise ArtifactError(f"{path}: holds a {type(r).__name__}, not a {cls.__name__}")
        return r

