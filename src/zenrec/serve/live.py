"""A served model with real-time user state: :class:`LiveModel`.

A :class:`~zenrec.models.bundle.ModelBundle` answers for the users and items
it was trained on.  :class:`LiveModel` adds what arrived after training: an
in-process, thread-safe overlay of each user's new events.  The next
recommendation for that user reads them without retraining: the bundle turns
the request into the model's :class:`~zenrec.models.query.Query` (stored
history followed by the new items) and the model scores it —

* sequence models (SASRec, GRU4Rec, BERT4Rec, transition, two-tower) see the
  training sequence followed by the new items, in time order;
* item models (EASE, ItemKNN) see the training row plus the new items;
* factor models (ALS, logistic MF) fold the user in from that row.

A user unseen in training is scored from its events the same way
(anonymous); without events it gets popular items, flagged
``fallback="popular"``.  Models that cannot read a history keep their stored
scores.  What the server asks of a model it asks through the seam: its
:meth:`~zenrec.models.base.Recommender.vectors` (ANN retrieval for known users
on large catalogues), the bundle's item similarity (similar items, reasons).
No scoring math lives here: every number comes from the model, and every list
from the one filtered top-k of :mod:`zenrec.retrieval`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zenrec.errors import ConfigError
from zenrec.models.bundle import ModelBundle
from zenrec.models.query import Query, Recommendations, Vectors
from zenrec.retrieval import Retriever, ScoreRetriever, attribute_filter, make_retriever, saved_retriever
from zenrec.retrieval.base import check_k
from zenrec.serve.cache import ScoreCache
from zenrec.store.erasure import erase_from_bundle, hash_prefixes, user_hash

__all__ = ["ListLog", "LiveModel", "is_registry", "manifest_version", "default_store_url"]

log = logging.getLogger(__name__)

#: new events kept per user in the overlay (older ones are dropped from scoring)
MAX_OVERLAY = 500
#: served list ids remembered for attributing events to the version that served them
MAX_LISTS = 100_000
#: catalogues up to this size are scored in the server's event loop (no thread hand-off)
INLINE_MAX_ITEMS = 50_000
#: erased users remembered with the event seq their erasure covered (an event it deleted, met later, is skipped)
MAX_ERASED = 10_000
#: default memory for users' cached score rows (:class:`~zenrec.serve.cache.ScoreCache`)
SCORE_CACHE_BYTES = 64 << 20


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


def _trained_at(manifest: dict[str, Any] | None) -> float:
    """When the model was written (epoch seconds), from its manifest; 0 when unknown."""
    raw = (manifest or {}).get("created_at")
    try:
        return datetime.fromisoformat(str(raw)).timestamp()
    except (TypeError, ValueError):
        return 0.0


class LiveModel:
    """A loaded :class:`ModelBundle`, its version id and a thread-safe overlay of new events per user.

    ``item_table`` (one row per item, in the bundle's item order) makes
    attribute filters possible; without it, a table of the item ids and
    titles is used.  ``retrieval`` picks how known users without new events
    of a model that declares :meth:`~zenrec.models.base.Recommender.vectors`
    are served: ``auto`` scores them through the model up to 50,000 items (the
    same numbers as the library) and searches a faiss HNSW index above;
    ``exact``/``faiss``/``hnsw``/``ivf`` force a retriever over the vectors
    (:func:`~zenrec.retrieval.make_retriever`).  With ``index_dir`` (the
    model directory's ``index/``) an approximate index is kept there and
    memory-mapped at the next start (:func:`~zenrec.retrieval.saved_retriever`).
    """

    def __init__(self, bundle: ModelBundle, version: str, item_table: pd.DataFrame | None = None,
                 retrieval: str = "auto", lists: ListLog | None = None,
                 score_cache_bytes: int = SCORE_CACHE_BYTES, index_dir: Path | None = None) -> None:
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
        self.replayed_through = 0  # the store seq up to which stored events were replayed (or followed)
        self.erasures_through = 0  # the store's erasure seq up to which erasures are reflected in this version
        #: held while a replay or the store follower moves :attr:`replayed_through`
        self.replay_lock = threading.Lock()
        # recently erased users (by a keyed hash under a per-process random key, not by raw id) -> the event seq
        # their erasure covered: an event it deleted, met later, is skipped
        self._erased: OrderedDict[bytes, int] = OrderedDict()
        self._erased_key = os.urandom(16)
        self._hash_index: tuple[bytes, np.ndarray, np.ndarray] | None = None  # key, sorted prefixes, positions
        self.events_applied = 0
        self.events_ignored = 0  # events on items the model does not know: stored, not scored
        self._scorer = ScoreRetriever(self.n_items)
        self._vectors: Vectors | None = None
        self._vector_retriever: Retriever | None = None
        if retrieval != "auto" or self.n_items > INLINE_MAX_ITEMS:
            vectors = self.model.vectors()
            if vectors is not None:
                self._vectors = vectors
                self._vector_retriever = (
                    make_retriever(vectors.items, vectors.item_bias, backend=retrieval) if index_dir is None
                    else saved_retriever(index_dir, vectors.items, vectors.item_bias, backend=retrieval))
        self._similar_retriever: Retriever | None = None
        self._sim_lock = threading.Lock()

    @property
    def retrieval(self) -> str:
        """How known users without new events are served: ``model`` (scored by the model) or the vector
        retriever's backend (``exact``, ``faiss``)."""
        return "model" if self._vector_retriever is None else self._vector_retriever.backend

    # ------------------------------------------------------------------ ids
    def _user_index(self, user: Any) -> int:
        """The model's index of a raw user id, -1 when unseen in training."""
        return self.bundle.user_index(user)

    def item_indices(self, items: Sequence[Any], what: str = "item") -> np.ndarray:
        """Indices of raw item ids; an unknown id raises :class:`UnknownIdError` naming it (and this version)."""
        return self.bundle.item_indices(items, what)

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
                seq = int(getattr(e, "seq", 0) or 0)
                if seq > 0 and self._erased and seq <= self._erased.get(self._erased_name(str(e.user)), 0):
                    continue  # an event an erasure deleted, arriving after it
                q = self._overlay.get(str(e.user))
                if q is None:
                    q = self._overlay[str(e.user)] = deque(maxlen=MAX_OVERLAY)
                if seq > 0 and any(s == seq for _, s, _ in q):
                    continue
                if seq > 0 and len(q) == q.maxlen and seq < min(s for _, s, _ in q):
                    continue  # older than every event kept: it would push out a newer one
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
        of a vector model on a large catalogue is one ANN search.  Anything
        else (scoring a large catalogue exactly) is worth a worker thread.
        """
        if self.n_items <= INLINE_MAX_ITEMS:
            return True
        if self._vector_retriever is None or isinstance(self._vector_retriever, ScoreRetriever):
            return False
        with self._lock:
            return str(user) not in self._overlay and self._user_index(user) >= 0

    def forget(self, user: Any, through_seq: int | None = None) -> dict[str, int]:
        """Erase ``user`` from this loaded version (``zenrec forget``): their events since training, their
        cached score row and their row of the bundle's vocabulary and seen items; from the next read they are
        an unknown user.  Returns what was removed.

        With ``through_seq`` (an erasure another server recorded in the store) only the user's events up to
        that store ``seq`` go: later ones were posted after the erasure, by a user starting afresh.
        """
        key = str(user).strip()
        # the model's row goes first: a request that reads the stamp bumped below then reads the erased
        # vocabulary, so no row scored for the known user can be cached under that stamp
        known = erase_from_bundle(self.bundle, key)
        with self._lock:
            q = self._overlay.pop(key, None)
            gone = len(q) if q else 0
            if through_seq is not None:
                name = self._erased_name(key)
                self._erased[name] = max(int(through_seq), self._erased.pop(name, 0))
                while len(self._erased) > MAX_ERASED:
                    self._erased.popitem(last=False)
                kept = [e for e in (q or ()) if e[1] > through_seq]
                if kept:
                    self._overlay[key] = deque(kept, maxlen=MAX_OVERLAY)
                    gone -= len(kept)
            self._stamps[key] = self._stamps.get(key, 0) + 1  # a request scoring them now caches nothing valid
        rows = self.score_cache.drop(key)
        return {"live_events": gone, "cached_rows": rows, "model_rows": int(known)}

    def _erased_name(self, key: str) -> bytes:
        return hashlib.blake2b(key.encode(), key=self._erased_key, digest_size=16).digest()

    def users_hashed(self, hashes: Iterable[str], key: bytes) -> dict[str, list[str]]:
        """The users this version holds (in its vocabulary, or with events since training) whose keyed hash
        (:func:`~zenrec.store.erasure.user_hash` under ``key``) is one of ``hashes``: hash → raw ids as text.

        The vocabulary's hashes are computed once per key (about 2 s per million users) and kept as 16
        bytes per user; each match is confirmed with the full hash.
        """
        wanted = set(hashes)
        found: dict[str, set[str]] = {}
        with self._lock:
            keys = list(self._overlay)
        for k in keys:
            try:
                h = user_hash(key, k)
            except ConfigError:  # not an id the rule accepts: no erasure can name it
                continue
            if h in wanted:
                found.setdefault(h, set()).add(k)
        index = self._hash_index
        if index is None or index[0] != key:
            prefixes = hash_prefixes(key, self.bundle.users.all_ids)
            order = np.argsort(prefixes, kind="stable")
            index = self._hash_index = (key, prefixes[order], order)
        _, sorted_prefixes, positions = index
        ids = self.bundle.users.all_ids  # read once: an erasure swaps the vocabulary, never moves an index
        for h in wanted:
            p = np.uint64(int(h[:16], 16))
            lo, hi = np.searchsorted(sorted_prefixes, p, "left"), np.searchsorted(sorted_prefixes, p, "right")
            for pos in positions[lo:hi]:
                raw = str(ids[pos].item() if hasattr(ids[pos], "item") else ids[pos])
                try:
                    if user_hash(key, raw) == h:
                        found.setdefault(h, set()).add(raw)
                except ConfigError:  # an erased row's placeholder
                    continue
        return {h: sorted(v) for h, v in found.items()}

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
    def coverage(self) -> float:
        """The share of the catalogue this version has recommended since it was loaded."""
        return self.items_served / max(self.n_items, 1)

    def _count_served(self, idx: np.ndarray) -> None:
        with self._lock:
            new = idx[~self._served[idx]]
            if len(new):  # once most items were served, nothing to sort
                new = np.unique(new)
                self._served[new] = True
                self.items_served += len(new)

    def _select(self, iq: Query, key: str | None, stamp: int) -> Recommendations:
        """The model's list for an index query: one ANN search over its vectors, or its (cached) score row."""
        u = iq.user if iq.user is not None else -1
        allowed = self.model.filter_mask(iq.filter)
        exclude = [np.asarray(iq.exclude, dtype=np.int64)]
        if iq.history is None and u >= 0 and self._vector_retriever is not None and self._vectors is not None:
            ids, dots = self._vector_retriever.search(self._vectors.users[u], iq.k, exclude=exclude, allowed=allowed)
            scores, fallback = self._vectors.scores(dots), None
        else:
            row = self.score_cache.get(key, stamp) if key is not None else None
            fallback = None
            if row is None:
                rows, fallbacks = self.model.score_queries([iq])
                row, fallback = rows[0], fallbacks[0]
                if key is not None and fallback is None:
                    self.score_cache.put(key, stamp, row)
            ids, scores = self._scorer.search(row[None, :], iq.k, exclude=exclude, allowed=allowed)
        return Recommendations.from_top(ids[0], scores[0], fallback=fallback)

    def recommend(self, query: Query) -> Recommendations:
        """Top-k for a raw-id :class:`Query`: a user (its training history plus the events since) or, with
        ``user=None``, an anonymous session given by ``query.history`` (oldest first; unknown ids raise).

        An unknown user is scored from its events alone; without any, popular
        items are returned with ``fallback="popular"``.  ``query.filter`` may
        also be an attribute rule on the item table.
        """
        if query.filter is not None and not isinstance(query.filter, np.ndarray):
            query = query.with_(filter=self.allowed_mask(query.filter))
        key = None if query.user is None else str(query.user)
        new, stamp = self._events_of(key) if key is not None else (np.empty(0, np.int64), 0)
        iq = self.bundle.to_index_query(query, new=new)
        recs = self._select(iq, key if query.history is None else None, stamp)
        self._count_served(recs.items)
        out = self.bundle.result(query, iq, recs)
        return out.with_(user=query.user, model_version=self.version, list_id=self._new_list_id())

    # -------------------------------------------------------------- similar
    def _similar_index(self) -> Retriever | None:
        """An inner-product index over the unit item vectors, when the model's similarity is their cosine."""
        with self._sim_lock:
            sim = self.bundle.item_similarity()
            if sim.unit_vectors is not None and self._similar_retriever is None:
                self._similar_retriever = make_retriever(sim.unit_vectors)
            return self._similar_retriever

    def similar(self, item: Any, k: int = 10) -> Recommendations:
        """Items most similar to one item (cosine of item vectors, the item-item weights, or co-occurrence)."""
        k = check_k(k)
        i = int(self.item_indices([item])[0])
        exclude = [np.asarray([i], dtype=np.int64)]
        retriever = self._similar_index()
        sim = self.bundle.item_similarity()
        if retriever is not None:
            ids, sc = retriever.search(sim.unit_vectors[i], k, exclude=exclude)
        else:  # every item's relation to this one, by the same measure as reasons use
            scores = self.bundle.similar_scores(i)
            ids, sc = self._scorer.search(scores[None, :], k, exclude=exclude, allowed=scores > 0)
        return self.bundle.raw(Recommendations.from_top(ids[0], sc[0])).with_(
            user=item, model_version=self.version, list_id=self._new_list_id(), method=sim.method)


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
