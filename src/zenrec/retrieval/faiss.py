"""Approximate maximum-inner-product retrieval through faiss: :class:`FaissRetriever`."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zenrec._io import load_arrays, save_arrays
from zenrec.errors import ArtifactError, ConfigError
from zenrec.retrieval.base import (
    _FETCH_ENTRIES,
    _SCAN_FRACTION,
    Retriever,
    _check_vectors,
    _Filter,
    _finish,
    check_k,
)

__all__ = ["FaissRetriever"]

log = logging.getLogger(__name__)


# -------------------------------------------------------------------- faiss
def _faiss() -> Any:
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        raise ConfigError("approximate retrieval needs faiss; install the 'faiss-cpu' package") from None
    return faiss


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
            self.M = check_k(32 if M is None else M, "M")
            self.ef_construction = check_k(80 if ef_construction is None else ef_construction, "ef_construction")
            self.ef_search = check_k(64 if ef_search is None else ef_search, "ef_search")
            index = faiss.IndexHNSWFlat(d, self.M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            index.add(vectors)
        else:
            n = self.n_items
            default_nlist = max(1, min(round(math.sqrt(n)), n // 39 if n >= 39 else 1))
            self.nlist = check_k(default_nlist if nlist is None else nlist, "nlist")
            if self.nlist > n:
                raise ConfigError(f"the 'nlist' parameter ({self.nlist}) cannot exceed the number of items ({n})")
            self.nprobe = check_k(max(1, math.ceil(self.nlist / 8)) if nprobe is None else nprobe, "nprobe")
            size = min(n, check_k(64 * self.nlist if train_size is None else train_size, "train_size"))
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
        self._hnsw_params: dict[int, Any] = {}  # efSearch -> SearchParametersHNSW (read-only once made)
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
            self.ef_search = check_k(ef_search, "ef_search")
        if nprobe is not None:
            if self.kind != "ivf":
                raise ConfigError("the 'nprobe' parameter applies to kind='ivf' only")
            self.nprobe = check_k(nprobe, "nprobe")
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
            ef = max(self.ef_search, 2 * n if n > k else n)
            params = self._hnsw_params.get(ef)
            if params is None:  # made once per effort: a SWIG object costs more to build than a small search
                params = self._hnsw_params[ef] = faiss.SearchParametersHNSW(efSearch=ef)
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

    # ----------------------------------------------------------- verification
    def check_matches(self, item_vectors: np.ndarray, item_bias: np.ndarray | None = None, where: str = "") -> None:
        """Raise :class:`ArtifactError` unless this (loaded) index holds exactly these item vectors and a graph
        or list structure whose every id lies inside the catalogue.

        A saved index comes from a file that may be truncated, edited or made
        for other vectors; faiss trusts its ids (an id past the catalogue
        reads outside memory) and its vectors (other vectors give other
        answers).  Reads every stored vector and link once (about a second
        per million items).
        """
        faiss = _faiss()
        where = where or type(self).__name__
        vectors, bias = _check_vectors(item_vectors, item_bias)
        if (bias is not None) != self.has_bias or vectors.shape != (self.n_items, self.dim):
            raise ArtifactError(f"{where}: built for {self.n_items} items × {self.dim} dims "
                                f"({'with' if self.has_bias else 'without'} bias); the model has {vectors.shape}")
        n, d = self.n_items, self.dim + self.has_bias
        if (self.index.ntotal, self.index.d) != (n, d):
            raise ArtifactError(f"{where}: holds {self.index.ntotal} items × {self.index.d} dims; expected {(n, d)}")

        def same(rows: np.ndarray, stored: np.ndarray) -> bool:
            if not np.array_equal(stored[:, : self.dim], vectors[rows]):
                return False
            return bias is None or np.array_equal(stored[:, self.dim], bias[rows])

        head = np.hstack([vectors[self._head_ids], bias[self._head_ids, None]]) if bias is not None else vectors[
            self._head_ids]
        if not np.array_equal(self._head_vt.T, head):
            raise ArtifactError(f"{where}: its exactly scored head items hold other vectors than the model's")
        if self.kind == "hnsw":
            stored = faiss.rev_swig_ptr(self._flat.get_xb(), n * d).reshape(n, d)
            step = 1 << 16
            for s in range(0, n, step):
                if not same(np.arange(s, min(s + step, n)), stored[s : s + step]):
                    raise ArtifactError(f"{where}: holds other vectors than the model's (from item {s} on)")
            self._check_graph(where)
        else:
            lists = self.index.invlists
            seen = 0
            for lst in range(lists.nlist):
                size = lists.list_size(lst)
                if not size:
                    continue
                ids = faiss.rev_swig_ptr(lists.get_ids(lst), size).astype(np.int64)
                if ids.min() < 0 or ids.max() >= n:
                    raise ArtifactError(f"{where}: list {lst} holds item ids outside [0, {n})")
                codes = faiss.rev_swig_ptr(lists.get_codes(lst), size * d * 4).view(np.float32).reshape(size, d)
                if not same(ids, codes):
                    raise ArtifactError(f"{where}: list {lst} holds other vectors than the model's")
                seen += size
            if seen != n:
                raise ArtifactError(f"{where}: its lists hold {seen} entries for {n} items")

    def _check_graph(self, where: str) -> None:
        """Every HNSW level, offset, link and the entry point within bounds (a corrupt graph reads outside memory)."""
        faiss = _faiss()
        h, n = self.index.hnsw, self.n_items
        cum = faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int64)
        levels = faiss.vector_to_array(h.levels).astype(np.int64)
        offsets = faiss.vector_to_array(h.offsets).astype(np.int64)
        links = faiss.rev_swig_ptr(h.neighbors.data(), h.neighbors.size()) if h.neighbors.size() else np.empty(0)
        problem = None
        if len(levels) != n or len(offsets) != n + 1 or len(cum) < 2 or (np.diff(cum) < 0).any():
            problem = f"{len(levels)} levels and {len(offsets)} offsets for {n} items"
        elif levels.min() < 1 or levels.max() >= len(cum) or h.max_level != levels.max() - 1:
            problem = f"node levels in {levels.min()}..{levels.max()}, max_level={h.max_level}"
        elif offsets[0] != 0 or not np.array_equal(np.diff(offsets), cum[levels]) or offsets[-1] != len(links):
            problem = "link offsets that do not match the node levels"
        elif not 0 <= h.entry_point < n or levels[h.entry_point] != h.max_level + 1:
            problem = f"entry point {h.entry_point}"
        elif len(links) and (int(links.min()) < -1 or int(links.max()) >= n):
            problem = f"links to items {int(links.min())}..{int(links.max())}, outside [0, {n})"
        if problem is not None:
            raise ArtifactError(f"{where}: a corrupted HNSW graph ({problem})")

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
    def _read(cls, path: Path, manifest: dict[str, Any], mmap: bool = False) -> FaissRetriever:
        faiss = _faiss()
        file = path / "index.faiss"
        if not file.exists():
            raise ArtifactError(f"{file}: missing (the retriever is incomplete)")
        try:
            index = faiss.read_index(str(file), faiss.IO_FLAG_MMAP if mmap else 0)
        except RuntimeError as exc:
            raise ArtifactError(f"{file}: not a readable faiss index ({str(exc).splitlines()[0]})") from None
        expected_type = {"hnsw": faiss.IndexHNSWFlat, "ivf": faiss.IndexIVFFlat}.get(manifest.get("faiss_kind"))
        if expected_type is not None and not isinstance(index, expected_type):
            raise ArtifactError(f"{file}: holds a {type(index).__name__}, not the {manifest.get('faiss_kind')} index "
                                "its manifest names")
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

