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
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from zenrec import __version__
from zenrec._io import atomic_dir, load_arrays, read_manifest, save_arrays, write_json
from zenrec.errors import ArtifactError, ConfigError, DataError
from zenrec.evaluate.ranking import topk

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Retriever",
    "ExactRetriever",
    "ScoreRetriever",
    "FaissRetriever",
    "make_retriever",
    "load_retriever",
    "attribute_filter",
    "RETRIEVER_FORMAT",
]

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


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ConfigError(f"the 'k' parameter must be a positive integer; got {k!r}")
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
        k = _check_k(k)
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

    def save(self, path: str | Path) -> Path:
        """Write the retriever to a directory (``manifest.json`` + its index), atomically."""
        path = Path(path)
        with atomic_dir(path) as tmp:
            manifest = self._manifest()
            self._write(tmp, manifest)
            write_json(tmp / "manifest.json", manifest)
        return path

    @abstractmethod
    def _write(self, directory: Path, manifest: dict[str, Any]) -> None:
        """Write the index files (and add their parameters to ``manifest``)."""

    @classmethod
    def load(cls, path: str | Path) -> Retriever:
        """Load a retriever saved by :meth:`save` (any backend when called on the base)."""
        r = load_retriever(path)
        if cls is not Retriever and not isinstance(r, cls):
            raise ArtifactError(f"{path}: holds a {type(r).__name__}, not a {cls.__name__}")
        return r


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


# -------------------------------------------------------------------- faiss
def _faiss() -> Any:
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        raise ConfigError("approximate retrieval needs faiss; install the 'faiss-cpu' package") from None
    return faiss


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"the {name!r} parameter must be a positive integer; got {value!r}")
    return int(value)


class FaissRetriever(Retriever):
    """Approximate maximum-inner-product retrieval through faiss: ``kind="hnsw"`` or ``"ivf"``.

    HNSW: ``M`` links per node, ``ef_construction`` (build) and ``ef_search``
    (query) candidate lists.  IVF (flat lists): ``nlist`` k-means lists
    (default ≈ √n_items) trained on ``train_size`` sampled items (default
    ``64·nlist``) with ``seed``, ``nprobe`` lists visited per query (default
    ``nlist/8``).  The item bias is exact: items are indexed as ``[v, b]`` and
    queries as ``[q, 1]``.

    An inner-product index places an item by its vector, so an item whose
    score comes mostly from a large bias (or a large norm) is easily missed.
    The ``exact_head`` items with the largest bias (without a bias: the
    largest norm) are therefore scored exactly on every search and merged
    with the index's candidates.  Rows whose filters remove many candidates
    fetch deeper and search harder (HNSW ``efSearch ≥ 2·fetch``; IVF
    ``nprobe·√(fetch/k)`` lists).  The index holds its own float32 copy of
    the vectors; the input array is not kept.
    """

    backend = "faiss"

    def __init__(
        self,
        item_vectors: np.ndarray,
        item_bias: np.ndarray | None = None,
        kind: Literal["hnsw", "ivf"] = "hnsw",
        *,
        M: int | None = None,
        ef_construction: int | None = None,
        ef_search: int | None = None,
        nlist: int | None = None,
        nprobe: int | None = None,
        train_size: int | None = None,
        seed: int = 2020,
        exact_head: int = 512,
    ) -> None:
        if kind not in ("hnsw", "ivf"):
            raise ConfigError(f"the 'kind' parameter must be 'hnsw' or 'ivf'; got {kind!r}")
        other = {"M": M, "ef_construction": ef_construction, "ef_search": ef_search} if kind == "ivf" else {
            "nlist": nlist, "nprobe": nprobe, "train_size": train_size}
        given = sorted(name for name, v in other.items() if v is not None)
        if given:
            raise ConfigError(f"{', '.join(repr(g) for g in given)} do(es) not apply to kind={kind!r}")
        vectors, bias = _check_vectors(item_vectors, item_bias)
        if isinstance(exact_head, bool) or not isinstance(exact_head, (int, np.integer)) or exact_head < 0:
            raise ConfigError(f"the 'exact_head' parameter must be an integer ≥ 0; got {exact_head!r}")
        self.kind = kind
        self.n_items, self.dim = vectors.shape
        self.has_bias = bias is not None
        faiss = _faiss()
        head = min(int(exact_head), self.n_items)
        weight = bias if bias is not None else np.einsum("ij,ij->i", vectors, vectors)
        head_ids = np.sort(np.argsort(-weight, kind="stable")[:head]).astype(np.int64)
        if bias is not None:
            vectors = np.ascontiguousarray(np.hstack([vectors, bias[:, None]]))
        self._set_head(head_ids, vectors[head_ids])
        d = vectors.shape[1]
        t0 = time.perf_counter()
        if kind == "hnsw":
            self.M = _positive("M", 32 if M is None else M)
            self.ef_construction = _positive("ef_construction", 80 if ef_construction is None else ef_construction)
            self.ef_search = _positive("ef_search", 64 if ef_search is None else ef_search)
            index = faiss.IndexHNSWFlat(d, self.M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            index.add(vectors)
        else:
            n = self.n_items
            default_nlist = max(1, min(round(math.sqrt(n)), n // 39 if n >= 39 else 1))
            self.nlist = _positive("nlist", default_nlist if nlist is None else nlist)
            if self.nlist > n:
                raise ConfigError(f"the 'nlist' parameter ({self.nlist}) cannot exceed the number of items ({n})")
            self.nprobe = _positive("nprobe", max(1, math.ceil(self.nlist / 8)) if nprobe is None else nprobe)
            size = min(n, _positive("train_size", 64 * self.nlist if train_size is None else train_size))
            if size < self.nlist:
                raise ConfigError(f"the 'train_size' parameter ({size}) must be at least nlist ({self.nlist})")
            sample = vectors
            if size < n:
                pick = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
                sample = vectors[pick]
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, self.nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = int(seed)
            index.train(sample)
            index.add(vectors)
        self.build_seconds = time.perf_counter() - t0
        self.index = index
        self._init_search()
        log.info("built faiss %s over %d items × %d dims in %.2fs", kind, self.n_items, self.dim, self.build_seconds)

    def _set_head(self, head_ids: np.ndarray, head_vectors: np.ndarray) -> None:
        self._head_ids = head_ids
        self._head_vt = np.ascontiguousarray(head_vectors, dtype=np.float32).T
        self._is_head = np.zeros(self.n_items + 1, dtype=bool)  # the last entry: id -1
        self._is_head[head_ids] = True

    @property
    def exact_head(self) -> int:
        """How many items are scored exactly on every search."""
        return len(self._head_ids)

    def _init_search(self) -> None:
        faiss = _faiss()
        if self.kind == "hnsw":
            self._flat = faiss.downcast_index(self.index.storage)  # exact scans, no copy
        else:
            self._flat = None

    def __repr__(self) -> str:
        p = (f"M={self.M}, ef_search={self.ef_search}" if self.kind == "hnsw"
             else f"nlist={self.nlist}, nprobe={self.nprobe}")
        return f"{type(self).__name__}(kind={self.kind!r}, n_items={self.n_items}, dim={self.dim}, {p})"

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None) -> FaissRetriever:
        """Change the query-time effort (``ef_search`` for HNSW, ``nprobe`` for IVF); returns self."""
        if ef_search is not None:
            if self.kind != "hnsw":
                raise ConfigError("the 'ef_search' parameter applies to kind='hnsw' only")
            self.ef_search = _positive("ef_search", ef_search)
        if nprobe is not None:
            if self.kind != "ivf":
                raise ConfigError("the 'nprobe' parameter applies to kind='ivf' only")
            self.nprobe = _positive("nprobe", nprobe)
        return self

    # ----------------------------------------------------------------- search
    def _augment(self, q: np.ndarray) -> np.ndarray:
        if not self.has_bias:
            return q
        return np.ascontiguousarray(np.hstack([q, np.ones((len(q), 1), dtype=np.float32)]))

    def _ann(self, qa: np.ndarray, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top ``n`` (unfiltered) of each query row, in chunks; the effort grows with ``n / k``."""
        faiss = _faiss()
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, 2 * n if n > k else n))
        else:
            # more lists for a deeper fetch, and at least enough to hold about 2n items
            probe = max(math.ceil(self.nprobe * math.sqrt(n / k)), math.ceil(2 * n * self.nlist / self.n_items))
            params = faiss.SearchParametersIVF(nprobe=min(self.nlist, probe))
        step = max(1, _FETCH_ENTRIES // n)
        dist = np.empty((len(qa), n), dtype=np.float32)
        lab = np.empty((len(qa), n), dtype=np.int64)
        for s in range(0, len(qa), step):
            dist[s : s + step], lab[s : s + step] = self.index.search(qa[s : s + step], n, params=params)
        return lab, dist

    def _scan(self, qa: np.ndarray, k: int, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` of each row of ``qa`` among the ``candidates`` items (a boolean mask)."""
        faiss = _faiss()
        bitmap = np.packbits(candidates, bitorder="little")
        sel = faiss.IDSelectorBitmap(self.n_items, faiss.swig_ptr(bitmap))
        if self.kind == "hnsw":
            dist, lab = self._flat.search(qa, k, params=faiss.SearchParameters(sel=sel))
        else:
            dist, lab = self.index.search(qa, k, params=faiss.SearchParametersIVF(sel=sel, nprobe=self.nlist))
        del bitmap  # kept alive until here: faiss reads it during the search
        return lab, dist

    def _search(self, q: np.ndarray, k: int, f: _Filter, ids: np.ndarray, scores: np.ndarray) -> None:
        qa = self._augment(q)
        n = self.n_items
        want = np.minimum(f.available, k)
        if f.active:
            # first fetch: k plus the excluded items, scaled by the share of items allowed,
            # rounded up to k·2^j so that a batch needs few index calls
            need = np.ceil((k + f.n_excluded) * (n / np.maximum(f.n_allowed, 1))).astype(np.int64)
            level = np.ceil(np.log2(np.maximum(need, k) / k)).astype(np.int64)
            fetch = np.minimum(k << level, n)
            pending = np.flatnonzero(want > 0)
        else:
            fetch = np.full(len(q), k, dtype=np.int64)
            pending = np.arange(len(q))
        scan_from = max(k, math.ceil(_SCAN_FRACTION * n))
        while len(pending):
            still = []
            sizes = fetch[pending]
            for size in np.unique(sizes) if sizes.min() != sizes.max() else sizes[:1]:
                rows = pending[sizes == size] if len(pending) > 1 else pending
                if size >= scan_from and size > k:
                    self._scan_rows(qa, rows, k, f, ids, scores)
                    continue
                lab, dist = self._ann(qa[rows], int(size), k)
                bad = f.rejected(rows, lab) if f.active else lab < 0
                enough = (~bad).sum(axis=1) >= want[rows]
                bi, bs = self._merge_head(qa, rows, k, f, lab, dist, bad)
                _finish(bi, bs, want[rows])
                ok = rows[enough]
                ids[ok, :k], scores[ok, :k] = bi[enough], bs[enough]
                short = rows[~enough]
                if len(short):
                    if size >= n:  # the whole catalogue was fetched and some items never came back
                        self._scan_rows(qa, short, k, f, ids, scores)
                    else:
                        fetch[short] = np.minimum(2 * size, n)
                        still.append(short)
            pending = np.concatenate(still) if still else np.empty(0, dtype=np.int64)

    def _merge_head(self, qa: np.ndarray, rows: np.ndarray, k: int, f: _Filter, lab: np.ndarray,
                    dist: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of the index's kept candidates together with the exactly scored head items."""
        n_head = len(self._head_ids)
        if n_head:
            bad = bad | self._is_head[lab]  # the head part scores these (lab -1 reads the last, False entry)
        r = np.arange(len(rows))[:, None]
        if bad[:, :k].any():
            order = np.argsort(bad, axis=1, kind="stable")[:, :k]  # kept items first, in rank order
            bi, bs = lab[r, order], np.where(bad[r, order], np.float32(-np.inf), dist[r, order])
        else:
            bi, bs = lab[:, :k], dist[:, :k]
        if not n_head:
            return bi, bs
        hs = qa[rows] @ self._head_vt
        if f.active:
            hs[f.rejected(rows, np.broadcast_to(self._head_ids, hs.shape))] = -np.inf
        if n_head > k:
            part = np.argpartition(hs, n_head - k, axis=1)[:, n_head - k :]
            hi, hs = self._head_ids[part], hs[r, part]
        else:
            hi = np.broadcast_to(self._head_ids, hs.shape)
        cand_i, cand_s = np.hstack([bi, hi]), np.hstack([bs, hs])
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        return cand_i[r, order], cand_s[r, order]

    def _scan_rows(self, qa: np.ndarray, rows: np.ndarray, k: int, f: _Filter,
                   ids: np.ndarray, scores: np.ndarray) -> None:
        """Exact filtered scans: one batch for rows sharing the global mask, one scan per other row."""
        shared = np.zeros(len(rows), dtype=bool)
        if f.allowed is None or f.allowed.ndim == 1:
            shared = ~f.has_exclusions()[rows]
        groups: list[tuple[np.ndarray, np.ndarray]] = []
        if shared.any():
            groups.append((rows[shared], f.candidates(int(rows[shared][0]))))
        groups += [(rows[i : i + 1], f.candidates(int(rows[i]))) for i in np.flatnonzero(~shared)]
        for grp, cand in groups:
            lab, dist = self._scan(qa[grp], k, cand)
            bad = lab < 0
            dist[bad] = -np.inf
            _finish(lab, dist, np.minimum(f.available[grp], k))
            ids[grp, :k], scores[grp, :k] = lab, dist

    # ------------------------------------------------------------ persistence
    def _write(self, directory: Path, manifest: dict[str, Any]) -> None:
        faiss = _faiss()
        faiss.write_index(self.index, str(directory / "index.faiss"))
        save_arrays(directory / "head.npz", {"ids": self._head_ids, "vectors": self._head_vt.T})
        manifest["has_bias"] = self.has_bias
        manifest["exact_head"] = self.exact_head
        manifest["faiss_kind"] = self.kind
        manifest["faiss_version"] = faiss.__version__
        if self.kind == "hnsw":
            manifest["params"] = {"M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search}
        else:
            manifest["params"] = {"nlist": self.nlist, "nprobe": self.nprobe}

    @classmethod
    def _read(cls, path: Path, manifest: dict[str, Any]) -> FaissRetriever:
        faiss = _faiss()
        file = path / "index.faiss"
        if not file.exists():
            raise ArtifactError(f"{file}: missing (the retriever is incomplete)")
        try:
            index = faiss.read_index(str(file))
        except RuntimeError as exc:
            raise ArtifactError(f"{file}: not a readable faiss index ({str(exc).splitlines()[0]})") from None
        self = cls.__new__(cls)
        try:
            self.kind = manifest["faiss_kind"]
            self.n_items, self.dim = int(manifest["n_items"]), int(manifest["dim"])
            self.has_bias = bool(manifest["has_bias"])
            self.build_seconds = float(manifest.get("build_seconds") or 0.0)
            params = dict(manifest["params"])
            if self.kind == "hnsw":
                self.M, self.ef_construction = int(params["M"]), int(params["ef_construction"])
                self.ef_search = int(params["ef_search"])
            elif self.kind == "ivf":
                self.nlist, self.nprobe = int(params["nlist"]), int(params["nprobe"])
            else:
                raise ValueError(f"faiss_kind={self.kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}/manifest.json: corrupted or incompatible manifest ({exc})") from None
        expected = (self.n_items, self.dim + self.has_bias)
        if (index.ntotal, index.d) != expected:
            raise ArtifactError(f"{file}: holds {index.ntotal} items × {index.d} dims; the manifest says {expected}")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ArtifactError(f"{file}: not an inner-product index")
        head = load_arrays(path / "head.npz")
        try:
            head_ids, head_vectors = head["ids"].astype(np.int64), head["vectors"]
            if head_vectors.shape != (len(head_ids), index.d) or (len(head_ids) and (
                    head_ids.min() < 0 or head_ids.max() >= self.n_items)):
                raise ValueError(f"{len(head_ids)} ids, vectors of shape {head_vectors.shape}")
        except (KeyError, ValueError) as exc:
            raise ArtifactError(f"{path}/head.npz: does not match the index ({exc})") from None
        self._set_head(head_ids, head_vectors)
        self.index = index
        self._init_search()
        return self


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
        _positive("exact_max_items", exact_max_items)
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
    """Load any retriever written by :meth:`Retriever.save`."""
    path = Path(path)
    manifest = read_manifest(path, "retriever", RETRIEVER_FORMAT)
    backend = manifest.get("backend")
    if backend == "faiss":
        return FaissRetriever._read(path, manifest)
    try:
        n_items = int(manifest["n_items"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}/manifest.json: corrupted manifest ({exc})") from None
    if backend == "score":
        return ScoreRetriever(n_items)
    if backend == "exact":
        arrays = load_arrays(path / "vectors.npz")
        if "item_vectors" not in arrays or len(arrays["item_vectors"]) != n_items:
            raise ArtifactError(f"{path}/vectors.npz: does not match the manifest (n_items={n_items})")
        r = ExactRetriever(arrays["item_vectors"], arrays.get("item_bias"))
        r.build_seconds = float(manifest.get("build_seconds") or 0.0)
        return r
    raise ArtifactError(f"{path}/manifest.json: unknown retriever backend {backend!r}")


# ---------------------------------------------------------- attribute filters
_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains")
_SYMBOLS = {"==": "eq", "=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "~": "contains"}
_CLAUSE = re.compile(
    r"^\s*(?P<col>[^\s=!<>~]+?)\s*(?:(?P<sym><=|>=|!=|==|=|<|>|~)|\s(?P<word>not\s+in|in)\s)\s*(?P<value>.*?)\s*$",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"\s*(?:,|;|\s+and\s+)\s*", re.IGNORECASE)


def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def _parse_rule(rule: str | Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """A rule as ``(column, operator, value)`` clauses, all of which must hold."""
    clauses: list[tuple[str, str, Any]] = []
    if isinstance(rule, str):
        for part in _SPLIT.split(rule.strip()):
            if not part:
                continue
            m = _CLAUSE.match(part)
            if m is None or not m.group("value"):
                raise ConfigError(
                    f"filter: cannot read {part!r}; write clauses like genre=Comedy, price<20, "
                    "genre in Comedy|Drama, genres~Comedy, joined by ',' or 'and'"
                )
            col = m.group("col")
            if m.group("sym"):
                op = _SYMBOLS[m.group("sym")]
                value: Any = _unquote(m.group("value"))
            else:
                op = "not_in" if m.group("word").lower().startswith("not") else "in"
                value = [_unquote(v.strip()) for v in m.group("value").split("|")]
            clauses.append((col, op, value))
    elif isinstance(rule, Mapping):
        for col, spec in rule.items():
            if isinstance(spec, Mapping):
                if not spec:
                    raise ConfigError(f"filter: the condition on column {col!r} is empty")
                for op, value in spec.items():
                    if op not in _OPS:
                        raise ConfigError(
                            f"filter: unknown operator {op!r} on column {col!r}; use one of {', '.join(_OPS)}"
                        )
                    clauses.append((str(col), op, value))
            elif isinstance(spec, (list, tuple, set, frozenset, np.ndarray)):
                clauses.append((str(col), "in", list(spec)))
            else:
                clauses.append((str(col), "eq", spec))
    else:
        raise ConfigError(f"filter: a rule must be a string or a dict; got {type(rule).__name__}")
    if not clauses:
        raise ConfigError("filter: the rule is empty")
    return clauses


def _coerce(series: pd.Series, col: str, value: Any) -> Any:
    """``value`` in the type of ``series`` (numbers for numeric columns, …), or a ConfigError."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ConfigError(f"filter: column {col!r} is boolean; {value!r} is not true or false")
    if pd.api.types.is_numeric_dtype(series.dtype):
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            return value
        try:
            return float(str(value))
        except ValueError:
            raise ConfigError(f"filter: column {col!r} is numeric; {value!r} is not a number") from None
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            return pd.Timestamp(value)
        except (ValueError, TypeError):
            raise ConfigError(f"filter: column {col!r} holds dates; {value!r} is not a date") from None
    return value


def _apply(series: pd.Series, col: str, op: str, value: Any) -> np.ndarray:
    import pandas as pd

    if op in ("in", "not_in"):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
            raise ConfigError(f"filter: operator {op!r} on column {col!r} needs a list of values; got {value!r}")
        hit = series.isin([_coerce(series, col, v) for v in value]).to_numpy(dtype=bool)
        return hit if op == "in" else ~hit
    if op == "contains":
        needle = str(value)
        if pd.api.types.is_string_dtype(series.dtype) or isinstance(series.dtype, pd.CategoricalDtype):
            if series.map(lambda c: isinstance(c, (list, tuple, set, frozenset, np.ndarray))).any():
                return series.map(
                    lambda c: isinstance(c, (list, tuple, set, frozenset, np.ndarray)) and needle in list(c)
                ).to_numpy(dtype=bool)
            pattern = rf"(?:^|\|){re.escape(needle)}(?:\||$)"
            return series.astype("string").str.contains(pattern, regex=True, na=False).to_numpy(dtype=bool)
        raise ConfigError(f"filter: operator 'contains' needs a text or list column; {col!r} is {series.dtype}")
    v = _coerce(series, col, value)
    try:
        with np.errstate(invalid="ignore"):
            out = {
                "eq": lambda: series == v,
                "ne": lambda: series != v,
                "lt": lambda: series < v,
                "le": lambda: series <= v,
                "gt": lambda: series > v,
                "ge": lambda: series >= v,
            }[op]()
    except TypeError:
        raise ConfigError(f"filter: cannot compare column {col!r} ({series.dtype}) with {value!r}") from None
    return out.fillna(False).to_numpy(dtype=bool) if hasattr(out, "fillna") else np.asarray(out, dtype=bool)


def attribute_filter(item_table: pd.DataFrame, rule: str | Mapping[str, Any], n_items: int | None = None) -> np.ndarray:
    """Boolean ``allowed`` mask from a business rule over item attributes (row i = item i).

    ``rule`` is a dict — ``{"genre": "Comedy"}`` (equals), ``{"genre":
    ["Comedy", "Drama"]}`` (one of), ``{"price": {"lt": 20}}`` with operators
    eq, ne, lt, le, gt, ge, in, not_in, contains — or the same as a string:
    ``"genre=Comedy, price<20"``, ``"genre in Comedy|Drama"``,
    ``"genres~Comedy"`` (a list cell holds the value, or a ``|``-separated
    text such as ``"Action|Comedy"`` has it as one part).  All clauses must
    hold; a missing value (NaN) never passes a comparison.  Unknown columns,
    operators and values of the wrong type raise :class:`ConfigError`.
    """
    import pandas as pd

    if not isinstance(item_table, pd.DataFrame):
        raise ConfigError(f"filter: the item table must be a pandas DataFrame; got {type(item_table).__name__}")
    if n_items is not None and len(item_table) != n_items:
        raise ConfigError(f"filter: the item table has {len(item_table)} rows; the catalogue has {n_items} items")
    mask = np.ones(len(item_table), dtype=bool)
    for col, op, value in _parse_rule(rule):
        if col not in item_table.columns:
            cols = ", ".join(repr(str(c)) for c in item_table.columns)
            raise ConfigError(f"filter: no column {col!r} in the item table (columns: {cols})")
        mask &= _apply(item_table[col], col, op, value)
    return mask
