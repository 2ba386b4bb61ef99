"""A served model with real-time user state: :class:`LiveModel`.

A :class:`~zenrec.models.bundle.ModelBundle` answers for the users and items it
was trained on.  :class:`LiveModel` adds what arrived after training: an
in-process, thread-safe overlay of each user's new events.  The next
recommendation for that user reads them without retraining, through the
model's own ``score(users, history=...)``:

* sequence models (SASRec, GRU4Rec, BERT4Rec, transition, two-tower) see the
  training sequence followed by the new items, in time order;
* item models (EASE, ItemKNN) see the training row plus the new items;
* factor models (ALS, logistic MF) fold the user in from that row.

A user unseen in training is scored from its events the same way
(anonymous); without events it gets popular items, flagged
``fallback="popular"``.  Models that cannot read a history keep their stored
scores.  Top-k selection with the seen and business-rule filters is
delegated to :mod:`zenrec.retrieval`, which never loses results to a
filter.  No scoring math lives here: every number comes from the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zenrec.data.interactions import Interactions
from zenrec.errors import ConfigError, UnknownIdError
from zenrec.models.bundle import ModelBundle
from zenrec.retrieval import Retriever, ScoreRetriever, attribute_filter, make_retriever
from zenrec.serve.cache import ScoreCache

__all__ = ["ListLog", "LiveModel", "Recommendation", "RecList", "Similar", "is_registry", "manifest_version",
           "default_store_url"]

log = logging.getLogger(__name__)

#: new events kept per user in the overlay (older ones are dropped from scoring)
MAX_OVERLAY = 500
#: served list ids remembered for attributing events to the version that served them
MAX_LISTS = 100_000
#: catalogues up to this size are scored in the server's event loop (no thread hand-off)
INLINE_MAX_ITEMS = 50_000
#: default memory for users' cached score rows (:class:`~zenrec.serve.cache.ScoreCache`)
SCORE_CACHE_BYTES = 64 << 20


@dataclass(frozen=True)
class Recommendation:
    """One recommended item: raw id, score and title when the bundle has titles."""

    item: Any
    score: float
    title: str | None = None
    reasons: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, every key of the API's ``ItemOut`` present (None when there is none)."""
        return {"item": self.item, "score": self.score, "title": self.title, "reasons": self.reasons}


@dataclass(frozen=True)
class RecList:
    """A served list: who it is for, the items, the model version, a fresh list id and any fallback."""

    user: Any
    items: list[Recommendation]
    model_version: str
    list_id: str
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as the API's ``ListOut`` (``fallback`` None when the model scored the user itself)."""
        return {
            "user": self.user,
            "items": [r.to_dict() for r in self.items],
            "model_version": self.model_version,
            "list_id": self.list_id,
            "fallback": self.fallback,
        }


@dataclass(frozen=True)
class Similar:
    """Items similar to one item, and how similarity was measured."""

    item: Any
    items: list[Recommendation]
    model_version: str
    list_id: str
    method: str = field(default="embedding")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "item": self.item,
            "items": [r.to_dict() for r in self.items],
            "model_version": self.model_version,
            "list_id": self.list_id,
            "method": self.method,
        }


class ListLog:
    """Served list ids → the model version that served them (the newest ``max_lists``, thread-safe)."""

    def __init__(self, max_lists: int = MAX_LISTS) -> None:
        self._lists: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.max_lists = max_lists

    def new(self, version: str) -> str:
        """A fresh list id, remembered as served by ``version``."""
        lid = uuid.uuid4().hex
        with self._lock:
            self._lists[lid] = version
            while len(self._lists) > self.max_lists:
                self._lists.popitem(last=False)
        return lid

    def version_of(self, list_id: str | None) -> str | None:
        """The version that served ``list_id`` while it is remembered, else None."""
        if list_id is None:
            return None
        with self._lock:
            return self._lists.get(list_id)


def _plain(x: Any) -> Any:
    """A numpy scalar as a plain Python value (for JSON)."""
    return x.item() if isinstance(x, np.generic) else x


def _trained_at(manifest: dict[str, Any] | None) -> float:
    """When the model was written (epoch seconds), from its manifest; 0 when unknown."""
    raw = (manifest or {}).get("created_at")
    try:
        return datetime.fromisoformat(str(raw)).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _item_embeddings(model: Any) -> np.ndarray | None:
    """The model's item vectors (items × d) where it has them, else None."""
    v = model.item_embeddings()
    return None if v is None else np.asarray(v, dtype=np.float32)


class LiveModel:
    """A loaded :class:`ModelBundle`, its version id and a thread-safe overlay of new events per user.

    ``item_table`` (one row per item, in the bundle's item order) makes
    attribute filters possible; without it, a table of the item ids and
    titles is used.  ``retrieval`` picks the top-k backend of factor models
    for known users (:func:`~zenrec.retrieval.make_retriever`: ``auto``
    is exact up to 50,000 items and faiss HNSW above).
    """

    def __init__(self, bundle: ModelBundle, version: str, item_table: pd.DataFrame | None = None,
                 retrieval: str = "auto", lists: ListLog | None = None,
                 score_cache_bytes: int = SCORE_CACHE_BYTES) -> None:
        self.bundle = bundle
        self.model = bundle.model
        self.version = str(version)
        self.n_items = int(self.model.n_items_)
        self.trained_at = _trained_at(bundle.manifest)
        if item_table is not None and len(item_table) != self.n_items:
            raise ConfigError(f"the item table has {len(item_table)} rows; the model knows {self.n_items} items")
        if item_table is None:
            item_table = pd.DataFrame({"item": bundle.items.all_ids})
            if bundle.titles is not None:
                item_table["title"] = bundle.titles
        self.item_table = item_table.reset_index(drop=True)
        self._lock = threading.Lock()
        self._overlay: dict[str, deque[tuple[float, int, int]]] = {}
        self._stamps: dict[str, int] = {}  # events applied per user: a cached score row is valid at one stamp
        self.score_cache = ScoreCache(score_cache_bytes)
        self.lists = lists if lists is not None else ListLog()
        self._served = np.zeros(self.n_items, dtype=bool)  # items this version has recommended
        self.items_served = 0
        self.replayed_through = 0  # the store seq up to which stored events were replayed
        self.events_applied = 0
        self.events_ignored = 0  # events on items the model does not know: stored, not scored
        self._scorer = ScoreRetriever(self.n_items)
        self._factor_retriever: Retriever | None = None
        self._similar: tuple[str, Any] | None = None
        self._sim_lock = threading.Lock()
        m = self.model
        uf, itf = getattr(m, "user_factors_", None), getattr(m, "item_factors_", None)
        if isinstance(uf, np.ndarray) and isinstance(itf, np.ndarray) and len(itf) == self.n_items:
            # known users without new events: their stored vector against the item factors
            self._factor_retriever = make_retriever(itf, getattr(m, "item_bias_", None), backend=retrieval)

    # ------------------------------------------------------------------ ids
    def _user_index(self, user: Any) -> int:
        """The model's index of a raw user id, -1 when unseen in training."""
        return int(self.bundle.users.index([user], missing="mask")[0])

    def item_indices(self, items: Sequence[Any], what: str = "item") -> np.ndarray:
        """Indices of raw item ids; an unknown id raises :class:`UnknownIdError` naming it."""
        if len(items) == 0:
            return np.empty(0, dtype=np.int64)
        idx = self.bundle.items.index(list(items), missing="mask")
        bad = np.flatnonzero(idx < 0)
        if len(bad):
            raise UnknownIdError(f"unknown {what} {items[int(bad[0])]!r}: the model {self.version} does not know it")
        return idx

    # -------------------------------------------------------------- overlay
    def apply_events(self, events: Iterable[Any]) -> int:
        """Add stored events (anything with ``user``, ``item``, ``timestamp`` and optionally ``seq``) to the overlay.

        Events on items the model does not know are counted and ignored; an
        event whose store ``seq`` is already in the user's overlay is skipped
        (a replay after a hot swap may meet events the route applied).
        Returns how many were applied.
        """
        events = list(events)
        if not events:
            return 0
        idx = self.bundle.items.index([e.item for e in events], missing="mask")
        applied = 0
        with self._lock:
            for e, i in zip(events, idx, strict=True):
                if i < 0:
                    self.events_ignored += 1
                    continue
                q = self._overlay.get(str(e.user))
                if q is None:
                    q = self._overlay[str(e.user)] = deque(maxlen=MAX_OVERLAY)
                seq = int(getattr(e, "seq", 0) or 0)
                if seq > 0 and any(s == seq for _, s, _ in q):
                    continue
                q.append((float(e.timestamp), seq, int(i)))
                self._stamps[str(e.user)] = self._stamps.get(str(e.user), 0) + 1
                applied += 1
            self.events_applied += applied
        return applied

    def new_items(self, user: Any) -> np.ndarray:
        """The item indices of a user's events since training, in time order."""
        return self._events_of(str(user))[0]

    def _events_of(self, key: str) -> tuple[np.ndarray, int]:
        """A user's new item indices in time order, and the stamp of that state (events applied so far)."""
        with self._lock:
            q = list(self._overlay.get(key, ()))
            stamp = self._stamps.get(key, 0)
        q.sort()
        return np.asarray([i for _, _, i in q], dtype=np.int64), stamp

    def cheap_for(self, user: Any) -> bool:
        """True when a list for ``user`` takes well under a millisecond or two of CPU to build.

        Small catalogues are scored exactly; a known user without new events
        of a factor model on a large catalogue is one ANN search.  Anything
        else (scoring a large catalogue exactly) is worth a worker thread.
        """
        if self.n_items <= INLINE_MAX_ITEMS:
            return True
        if self._factor_retriever is None or isinstance(self._factor_retriever, ScoreRetriever):
            return False
        with self._lock:
            return str(user) not in self._overlay and self._user_index(user) >= 0

    def users_with_events(self) -> int:
        """How many users have events in the overlay."""
        with self._lock:
            return len(self._overlay)

    def version_of_list(self, list_id: str | None) -> str | None:
        """The model version that served ``list_id`` (while remembered), else None."""
        return self.lists.version_of(list_id)

    def _new_list_id(self) -> str:
        return self.lists.new(self.version)

    # -------------------------------------------------------------- filters
    def allowed_mask(self, rule: Any) -> np.ndarray | None:
        """A boolean mask over items from a filter: a list of raw item ids (an allow-list) or an attribute rule."""
        if rule is None:
            return None
        if isinstance(rule, (list, tuple)):
            mask = np.zeros(self.n_items, dtype=bool)
            mask[self.item_indices(rule, "item in the filter")] = True
            return mask
        return attribute_filter(self.item_table, rule, self.n_items)

    # -------------------------------------------------------------- scoring
    def _base_sequence(self, u: int) -> np.ndarray:
        """A known user's training items, oldest first where the model keeps the order."""
        m = self.model
        seqs = getattr(m, "sequences_", None)
        if isinstance(seqs, np.ndarray) and seqs.ndim == 2 and len(seqs) == m.n_users_:
            row = seqs[u].astype(np.int64)
            return row[row > 0] - 1  # ids + 1, 0 = padding
        last = getattr(m, "last_", None)
        if getattr(m, "sequential", False) and isinstance(last, np.ndarray) and len(last) == m.n_users_:
            return np.asarray([last[u]] if last[u] >= 0 else [], dtype=np.int64)
        seen = self.bundle.seen
        return seen.indices[seen.indptr[u] : seen.indptr[u + 1]].astype(np.int64)

    def _history_scores(self, u: int, new: np.ndarray) -> np.ndarray:
        """Scores from the training history of ``u`` (−1: none) followed by ``new`` items."""
        base = self._base_sequence(u) if u >= 0 else np.empty(0, dtype=np.int64)
        items = np.concatenate([base, new])
        row = u if u >= 0 else int(self.model.n_users_)  # past the trained users: no id embedding
        hist = Interactions(
            np.full(len(items), row, dtype=np.int32), items, row + 1, self.n_items,
            timestamp=np.arange(len(items), dtype=np.int64),
        )
        return self.model.score(np.asarray([row]), history=hist)[0]

    def _top(self, scores: np.ndarray, k: int, exclude: np.ndarray, allowed: np.ndarray | None,
             retriever: Retriever | None = None, served: bool = False) -> list[Recommendation]:
        """Best k items of one score row (or one query vector for ``retriever``) after the filters.

        ``served``: the list goes to a user, so its items count for :meth:`coverage`.
        """
        r = retriever or self._scorer
        ids, sc = r.search(scores[None, :], k, exclude=[exclude], allowed=allowed)
        keep = (ids[0] >= 0) & np.isfinite(sc[0])  # a -inf/NaN score is no recommendation (and not JSON)
        idx, vals = ids[0][keep], sc[0][keep]
        if served:
            with self._lock:
                new = np.unique(idx[~self._served[idx]])
                self._served[new] = True
                self.items_served += len(new)
        raw = self.bundle.items.ids(idx)
        titles = self.bundle.titles
        return [
            Recommendation(_plain(raw[j]), float(vals[j]), None if titles is None else str(titles[idx[j]]))
            for j in range(len(idx))
        ]

    def coverage(self) -> float:
        """The share of the catalogue this version has recommended since it was loaded."""
        return self.items_served / max(self.n_items, 1)

    def _check_k(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ConfigError(f"the 'k' parameter must be a positive integer; got {k!r}")
        return int(k)

    def _score_for(self, u: int, new: np.ndarray, key: str,
                   stamp: int) -> tuple[np.ndarray, Retriever | None, str | None]:
        """(score row or query vector, the retriever for it or None, fallback).

        A score row the model computed is kept in :attr:`score_cache` under
        the user's ``key`` and history ``stamp``, and reused while both hold.
        """
        m = self.model
        history = len(new) > 0 and m.supports_history
        if not history:
            if u < 0:
                return np.asarray(m.popularity_, dtype=np.float32), None, "popular"
            if self._factor_retriever is not None:
                return np.asarray(m.user_factors_[u], dtype=np.float32), self._factor_retriever, None
        row = self.score_cache.get(key, stamp)
        if row is None:
            row = self._history_scores(u, new) if history else m.score(np.asarray([u]))[0]
            self.score_cache.put(key, stamp, row)
        return row, None, None

    def recommend(self, user: Any, k: int = 10, exclude_seen: bool = True,
                  allowed: np.ndarray | None = None, reasons: bool = False) -> RecList:
        """Top-k for a raw user id, from its training history plus the events that arrived since.

        An unknown user is scored from its events alone; without any, popular
        items are returned with ``fallback="popular"``.
        """
        k = self._check_k(k)
        u = self._user_index(user)
        new, stamp = self._events_of(str(user))
        scores, retriever, fallback = self._score_for(u, new, str(user), stamp)
        exclude = np.empty(0, dtype=np.int64)
        if exclude_seen:
            seen = self.bundle.seen
            old = seen.indices[seen.indptr[u] : seen.indptr[u + 1]] if u >= 0 else np.empty(0, np.int64)
            exclude = np.unique(np.concatenate([old.astype(np.int64), new]))
        items = self._top(scores, k, exclude, allowed, retriever, served=True)
        if reasons:
            hist = np.concatenate([self._base_sequence(u), new]) if u >= 0 else new
            items = self._with_reasons(items, hist)
        return RecList(_plain(user), items, self.version, self._new_list_id(), fallback)

    def recommend_session(self, items: Sequence[Any], k: int = 10, exclude_seen: bool = True,
                          allowed: np.ndarray | None = None, reasons: bool = False) -> RecList:
        """Top-k for an anonymous session given its items, oldest first (unknown ids raise)."""
        k = self._check_k(k)
        new = self.item_indices(list(items))
        if len(new) and self.model.supports_history:
            scores, fallback = self._history_scores(-1, new), None
        else:
            scores, fallback = np.asarray(self.model.popularity_, dtype=np.float32), "popular"
        exclude = np.unique(new) if exclude_seen else np.empty(0, dtype=np.int64)
        items = self._top(scores, k, exclude, allowed, served=True)
        if reasons:
            items = self._with_reasons(items, new)
        return RecList(None, items, self.version, self._new_list_id(), fallback)

    # -------------------------------------------------------------- similar
    def _similarity(self) -> tuple[str, Any]:
        """How this model measures item similarity, built once: (method, state)."""
        with self._sim_lock:
            if self._similar is None:
                m = self.model
                emb = _item_embeddings(m)
                if emb is not None:
                    v = np.asarray(emb, dtype=np.float32)
                    norms = np.linalg.norm(v, axis=1, keepdims=True)
                    unit = np.where(norms > 0, v / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
                    self._similar = ("embedding", (unit, make_retriever(unit)))
                elif isinstance(getattr(m, "weights_", None), np.ndarray):
                    self._similar = ("weights", m.weights_)
                elif getattr(m, "sim_", None) is not None:
                    self._similar = ("weights", m.sim_.tocsc())
                else:
                    seen = self.bundle.seen
                    counts = np.asarray(seen.sum(axis=0)).ravel().astype(np.float64)
                    self._similar = ("cooccurrence", (seen.T.tocsr(), seen, counts))
            return self._similar

    def _affinity(self, hist: np.ndarray | None, recs: np.ndarray) -> tuple[str, np.ndarray]:
        """How strongly each history item relates to each recommended item (``len(hist) × len(recs)``).

        ``hist=None``: every item of the catalogue, without copying the model's matrices row by row.
        """
        method, state = self._similarity()

        def rows(a: Any) -> Any:  # scipy copies a matrix even for a full slice
            return a if hist is None else a[hist]

        if method == "embedding":
            unit, _ = state
            return "embedding", rows(unit) @ unit[recs].T
        if method == "weights":  # columns first: a few recommended items, maybe every history item
            block = rows(state[:, recs])
            return "weights", np.asarray(block.toarray() if hasattr(block, "toarray") else block, dtype=np.float64)
        by_item, seen, counts = state
        co = np.asarray((rows(by_item) @ seen[:, recs]).toarray(), dtype=np.float64)
        return "cooccurrence", co / np.sqrt(np.maximum(np.outer(rows(counts), counts[recs]), 1e-12))

    def _with_reasons(self, items: list[Recommendation], hist: np.ndarray, n: int = 3) -> list[Recommendation]:
        """``items`` with up to ``n`` reasons each: the user's items most related to it, strongest first.

        A reason is ``{"item", "title"?, "weight", "method"}``: the history
        item, its item-item weight in the model (``weights``: EASE, ItemKNN),
        the cosine of the model's item vectors (``embedding``) or normalised
        co-occurrence in training (``cooccurrence``).  Only positive evidence
        is listed, so a reason list may be empty (e.g. popular fallbacks).
        """
        hist = np.unique(np.asarray(hist, dtype=np.int64))
        if not items or not len(hist):
            return [Recommendation(r.item, r.score, r.title, []) for r in items]
        recs = self.bundle.items.index([r.item for r in items], missing="mask")
        method, aff = self._affinity(hist, recs)
        raw, titles = self.bundle.items.ids(hist), self.bundle.titles
        out = []
        for j, r in enumerate(items):
            col = aff[:, j]
            best = np.argsort(-col, kind="stable")[:n]
            why = []
            for b in best:
                if not col[b] > 0:
                    break
                reason: dict[str, Any] = {"item": _plain(raw[b]), "weight": float(col[b]), "method": method}
                if titles is not None:
                    reason["title"] = str(titles[hist[b]])
                why.append(reason)
            out.append(Recommendation(r.item, r.score, r.title, why))
        return out

    def similar(self, item: Any, k: int = 10) -> Similar:
        """Items most similar to one item (cosine of item vectors, the item-item weights, or co-occurrence)."""
        k = self._check_k(k)
        i = int(self.item_indices([item])[0])
        method, state = self._similarity()
        exclude = np.asarray([i], dtype=np.int64)
        if method == "embedding":
            unit, retriever = state
            items = self._top(unit[i], k, exclude, None, retriever)
        else:  # every item's relation to this one, by the same measure as reasons use
            scores = self._affinity(None, exclude)[1][:, 0].astype(np.float32)
            allowed = scores > 0  # no evidence of similarity: not listed
            items = self._top(scores, k, exclude, allowed)
        return Similar(_plain(item), items, self.version, self._new_list_id(), method)


def manifest_version(path: Path, manifest: dict[str, Any] | None) -> str:
    """A version id for a plain model directory: model name + a short hash of its manifest."""
    raw = json.dumps(manifest or {}, sort_keys=True, default=str).encode()
    name = (manifest or {}).get("model", path.name)
    return f"{name}-{hashlib.sha256(raw).hexdigest()[:10]}"


def is_registry(path: str | Path) -> bool:
    """True when ``path`` is a model registry root (``versions/`` or ``CURRENT.json``) rather than a model directory."""
    p = Path(path)
    return (p / "CURRENT.json").is_file() or ((p / "versions").is_dir() and not (p / "manifest.json").is_file())


def default_store_url(source: str | Path) -> str:
    """The default event store of a model directory (``events.db`` beside the model files) or of a registry."""
    if is_registry(source):
        from zenrec.store.registry import ModelRegistry

        return ModelRegistry(source).events_url()
    return f"sqlite:///{(Path(source) / 'events.db').resolve()}"
