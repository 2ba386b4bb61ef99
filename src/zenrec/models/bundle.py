"""A trained model together with what turns raw ids into recommendations: :class:`ModelBundle`.

The bundle is what ``zenrec train`` writes and ``zenrec recommend`` and the
server read: the model's own arrays plus the user and item vocabularies, each
user's seen items and, when known, item titles — all in the same pickle-free
artifact directory.  It speaks raw ids: a raw-id :class:`~zenrec.models.query.Query`
becomes the model's index query (:meth:`ModelBundle.to_index_query`) and the
model's :class:`~zenrec.models.query.Recommendations` come back with raw ids,
titles and reasons (:meth:`ModelBundle.result`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from zenrec.data.dataset import Dataset
from zenrec.data.events import EventTypes
from zenrec.data.sparse import pack_csr, row_items, unpack_csr
from zenrec.data.vocab import Vocabulary
from zenrec.errors import ArtifactError, ConfigError, UnknownIdError
from zenrec.features.side import ItemFeatures
from zenrec.models.base import Recommender, TrainOptions
from zenrec.models.explain import Contribution, Explanation, popular_explanations
from zenrec.models.query import Query, Recommendations
from zenrec.models.registry import create_model, load_model
from zenrec.models.similarity import ItemSimilarity

__all__ = ["ModelBundle", "train_bundle"]


@dataclass
class ModelBundle:
    """A fitted model with its vocabularies, seen items and item titles."""

    model: Recommender
    users: Vocabulary
    items: Vocabulary
    seen: sp.csr_matrix
    titles: np.ndarray | None = None
    manifest: dict[str, Any] | None = None
    #: the event vocabulary of the data it was trained on (aliases and weights), read by the server and retrain
    events: EventTypes = field(default_factory=EventTypes)
    _similarity: ItemSimilarity | None = field(default=None, repr=False, compare=False)

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write model + vocabularies + seen items atomically (npz + JSON, no pickle)."""
        extra = {
            "user_ids": self.users.to_array(),
            "item_ids": self.items.to_array(),
            **pack_csr("seen", self.seen, binary=True),
        }
        if self.titles is not None:
            extra["item_titles"] = self.titles.astype(str)
        return self.model.save(path, metadata={**(metadata or {}), "events": self.events.to_dict()}, extra=extra)

    @classmethod
    def load(cls, path: str | Path) -> ModelBundle:
        """Load a directory written by :meth:`save` (``zenrec train``)."""
        model, manifest, extra = load_model(path)
        try:
            users = Vocabulary(extra["user_ids"], "user")
            items = Vocabulary(extra["item_ids"], "item")
            seen = unpack_csr(extra, "seen", (len(users), len(items)))
        except (KeyError, ValueError) as exc:
            raise ArtifactError(
                f"{path}: not a trained bundle with vocabularies ({exc}); write it with `zenrec train`"
            ) from None
        if len(items) != model.n_items_ or len(users) != model.n_users_:
            raise ArtifactError(f"{path}: vocabularies do not match the model's arrays")
        events = EventTypes.from_dict(manifest.get("events"), f"{path}/manifest.json")
        return cls(model, users, items, seen, extra.get("item_titles"), manifest, events)

    # ------------------------------------------------------------- queries
    def item_indices(self, items: Any, what: str = "item") -> np.ndarray:
        """Indices of raw item ids; an unknown id raises :class:`UnknownIdError` naming it."""
        raw = list(items) if not isinstance(items, np.ndarray) else items
        if len(raw) == 0:
            return np.empty(0, dtype=np.int64)
        idx = np.asarray(self.items.index(raw, missing="mask"), dtype=np.int64)
        bad = np.flatnonzero(idx < 0)
        if len(bad):
            raise UnknownIdError(f"unknown {what} {raw[int(bad[0])]!r}: the model does not know it")
        return idx

    def user_index(self, user: Any) -> int:
        """The model's index of a raw user id; -1 for None or a user unseen in training."""
        if user is None:
            return -1
        return int(self.users.index([user], missing="mask")[0])

    def stored_history(self, u: int) -> np.ndarray:
        """A known user's training items as the model scores them: the model's own (ordered) history, else the
        seen row."""
        if u < 0:
            return np.empty(0, dtype=np.int64)
        h = self.model.history(u)
        return np.asarray(h, dtype=np.int64) if h is not None else row_items(self.seen, u)

    def seen_items(self, u: int) -> np.ndarray:
        """A known user's training items (all of them, for exclusion); empty for -1."""
        return np.empty(0, dtype=np.int64) if u < 0 else row_items(self.seen, u)

    def to_index_query(self, query: Query, new: np.ndarray | None = None) -> Query:
        """A raw-id query as the model's index query.

        ``query.history`` (raw ids; ``new``: the same as indices, e.g. events the
        server holds) are the items since training: when there are any, the
        model scores the stored history followed by them.  ``exclude_seen``
        leaves out every training item of the user and the new ones.  A list
        ``filter`` of raw ids becomes an allow-list; a boolean mask passes as it is.
        """
        u = self.user_index(query.user)
        added = self.item_indices(query.history, "history item") if query.history is not None else np.empty(0, np.int64)
        if new is not None and len(new):
            added = np.concatenate([np.asarray(new, dtype=np.int64), added])
        history = np.concatenate([self.stored_history(u), added]) if len(added) else None
        exclude = np.empty(0, dtype=np.int64)
        if query.exclude is not None:
            ex = np.asarray(self.items.index(list(query.exclude), missing="mask"), dtype=np.int64)
            exclude = ex[ex >= 0]  # an unknown item can never be recommended: nothing to exclude
        if query.exclude_seen:
            exclude = np.unique(np.concatenate([exclude, self.seen_items(u), added]))
        flt = query.filter
        if flt is not None and not (isinstance(flt, np.ndarray) and flt.dtype == np.bool_):
            if isinstance(flt, (str, bytes, dict)) or not hasattr(flt, "__len__"):
                raise ConfigError("the 'filter' of a bundle query must be a boolean mask over items or a list of "
                                  f"item ids; got {type(flt).__name__} (attribute rules need the server's item table)")
            flt = self.item_indices(list(flt), "item in the filter")
        return Query(user=u if u >= 0 else None, history=history, k=query.k, exclude=exclude, exclude_seen=False,
                     filter=flt, reasons=query.reasons)

    def raw(self, recs: Recommendations) -> Recommendations:
        """Index-level recommendations with raw item ids and, when the bundle has them, titles."""
        titles = None if self.titles is None else self.titles[recs.items].astype(str)
        return recs.with_(items=self.items.ids(recs.items), titles=titles)

    def result(self, query: Query, index_query: Query, recs: Recommendations) -> Recommendations:
        """Index-level recommendations as raw ids with titles (and reasons when the query asks)."""
        reasons = None
        if query.reasons:
            hist = index_query.history if index_query.history is not None else self.stored_history(
                self.user_index(query.user))
            reasons = self.reasons(np.asarray(hist, dtype=np.int64), recs.items, user=index_query.user)
        return self.raw(recs).with_(user=query.user, reasons=reasons)

    def _raw_reasons(self, reasons: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in reasons:
            idx = int(r["item"])
            r["item"] = _plain(self.items.ids([idx])[0])
            if self.titles is not None:
                r["title"] = str(self.titles[idx])
        return reasons

    def explain(self, query: Query, items: Any, n_similar: int = 5, new: np.ndarray | None = None) -> list[Explanation]:
        """Why the model scores raw ``items`` as it does for a raw-id ``query``: one
        :class:`~zenrec.models.explain.Explanation` per item, with raw ids, titles and the score a list shows.

        The model explains itself from the history the bundle knows (the
        stored one plus ``query.history``) when it can
        (:meth:`Recommender.explain`); its scores are then reconciled with the
        served ones (a gap goes to ``residual``).  A model that cannot split
        its scores gets the ``n_similar`` history items most similar to each
        item (``method="similarity"``, not additive); a user the model cannot
        score gets ``method="popular"``.  Unknown items raise
        :class:`~zenrec.errors.UnknownIdError`.  ``new``: item indices of events since training (the
        server's), as in :meth:`to_index_query`.
        """
        idx = self.item_indices(list(items) if not isinstance(items, np.ndarray) else items)
        iq = self.to_index_query(query.with_(exclude=None, filter=None), new=new)
        rows, fallback = self.model.score_queries([iq])
        served = rows[0][idx].astype(np.float64)
        u = self.user_index(query.user)
        hist = np.asarray(iq.history, dtype=np.int64) if iq.history is not None else self.stored_history(u)
        if fallback[0] is not None or not len(hist):
            exps = popular_explanations(idx, served)
        else:
            # as the model scores the query; a model that splits only its stored user vector (by factors) is
            # asked again with the user's items, and a split by history items is preferred
            exps = self.model.explain(iq, idx)
            if iq.history is None and not _by_items(exps):
                by_items = self.model.explain(iq.with_(history=hist), idx)
                exps = by_items if _by_items(by_items) or exps is None else exps
            if exps is None:
                exps = self._similarity_explanations(hist, idx, served, n_similar)
            else:
                note = ("the listed score comes from the model's trained user vector; the split is of the score "
                        "re-solved from the user's items, the residual is the difference")
                exps = [e.reconciled(s, note) for e, s in zip(exps, served, strict=True)]
        return [self._raw_explanation(e, query.user) for e in exps]

    def _similarity_explanations(self, hist: np.ndarray, idx: np.ndarray, served: np.ndarray,
                                 n: int) -> list[Explanation]:
        sim = self.item_similarity()
        h = np.unique(hist)
        aff = sim.between(h, idx)
        out = []
        for j, i in enumerate(idx):
            col = np.asarray(aff[:, j], dtype=np.float64)
            top = [b for b in np.argsort(-col, kind="stable")[:n] if col[b] > 0]
            parts = tuple(Contribution(float(col[b]), item=int(h[b])) for b in top)
            out.append(Explanation(int(i), float(served[j]), "similarity", parts, additive=False,
                                   note=f"the model does not split its scores; weights are item similarities "
                                        f"({sim.method})"))
        return out

    def _raw_explanation(self, e: Explanation, user: Any) -> Explanation:
        def title(i: int) -> str | None:
            return None if self.titles is None else str(self.titles[i])

        parts = tuple(c if c.item is None else c.__class__(c.weight, _plain(self.items.ids([int(c.item)])[0]),
                                                          c.name, title(int(c.item))) for c in e.contributions)
        return e.with_(item=_plain(self.items.ids([int(e.item)])[0]), title=title(int(e.item)), user=user,
                       contributions=parts, model=self.model.name)

    def recommend(self, query: Query) -> Recommendations:
        """Top-k for one raw-id :class:`Query` (see :meth:`to_index_query`).

        A user unseen in training follows the model's ``on_unknown_user``
        policy: scored from its history when it has one, else popular items
        with ``fallback="popular"``.
        """
        return self.recommend_batch([query])[0]

    def recommend_batch(self, queries: list[Query]) -> list[Recommendations]:
        """:meth:`recommend` for many queries, scored in blocks."""
        idx = [self.to_index_query(q) for q in queries]
        return [self.result(q, iq, r) for q, iq, r in zip(queries, idx, self.model.recommend_batch(idx), strict=True)]

    def recommend_users(self, user_ids: list | np.ndarray, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-k per raw user id as a long table: ``user_id, rank, item_id, score`` (+ ``title``), ``fallback``."""
        lists = self.recommend_batch([Query(user=_plain(u), k=k, exclude_seen=exclude_seen) for u in np.asarray(user_ids)])
        return Recommendations.frame(lists)

    # --------------------------------------------------------- similarity
    def item_similarity(self) -> ItemSimilarity:
        """The model's view of item-item similarity, or normalised co-occurrence in training when it has none."""
        if self._similarity is None:
            self._similarity = self.model.item_similarity() or ItemSimilarity.from_cooccurrence(self.seen)
        return self._similarity

    def reasons(self, history: np.ndarray, recs: np.ndarray, n: int = 3,
                user: int | None = None) -> list[list[dict[str, Any]]]:
        """For each recommended item index, up to ``n`` history items behind it, strongest first.

        When the model explains itself by history items (:meth:`Recommender.explain`: EASE, ItemKNN, ALS,
        transition, sequence models, two-tower), a reason is one of its contributions:
        ``{"item", "title"?, "weight", "method", "share"?}`` with the item's part of the score and the
        explanation's method.  Otherwise (or for a popular fallback) it is the history item's similarity to
        the recommended item by :meth:`item_similarity` (``method``: embedding, weights or cooccurrence).
        ``history`` is oldest first; ``user`` the model's index of a known user, if any.  Only positive
        evidence is listed, so a reason list may be empty.
        """
        ordered = np.asarray(history, dtype=np.int64).reshape(-1)
        hist = np.unique(ordered)
        recs = np.asarray(recs, dtype=np.int64)
        if not len(recs) or not len(hist):
            return [[] for _ in range(len(recs))]
        known = user is not None and 0 <= int(user) < int(self.model.n_users_)
        if self.model.supports_history or known:
            exps = self.model.explain(Query(user=int(user) if known else None, history=ordered), recs)
            if _by_items(exps):
                return [self._raw_reasons(e.reasons(n)) for e in exps]  # type: ignore[union-attr]
        sim = self.item_similarity()
        aff = sim.between(hist, recs)
        raw = self.items.ids(hist)
        out = []
        for j in range(len(recs)):
            col = aff[:, j]
            why = []
            for b in np.argsort(-col, kind="stable")[:n]:
                if not col[b] > 0:
                    break
                reason: dict[str, Any] = {"item": _plain(raw[b]), "weight": float(col[b]), "method": sim.method}
                if self.titles is not None:
                    reason["title"] = str(self.titles[hist[b]])
                why.append(reason)
            out.append(why)
        return out

    def similar_scores(self, item: int) -> np.ndarray:
        """Every item's similarity to item index ``item`` (float32), by :meth:`item_similarity`."""
        return self.item_similarity().between(None, np.asarray([item]))[:, 0].astype(np.float32)

    def history(self, user_id: Any) -> pd.DataFrame:
        """The items a known user interacted with in training (with titles)."""
        u = int(self.users.index([user_id])[0])
        cols = self.seen_items(u)
        out = pd.DataFrame({"item_id": self.items.ids(cols)})
        if self.titles is not None:
            out["title"] = self.titles[cols]
        return out


def _by_items(exps: list[Explanation] | None) -> bool:
    """Whether explanations credit history items (not factors or parts)."""
    return exps is not None and any(c.item is not None for e in exps for c in e.contributions)


def _plain(x: Any) -> Any:
    """A numpy scalar as a plain Python value."""
    return x.item() if isinstance(x, np.generic) else x


def train_bundle(
    dataset: Dataset, model: str, params: dict[str, Any] | None = None, options: TrainOptions | None = None
) -> ModelBundle:
    """Fit a registered model on every interaction of ``dataset`` and bundle it.

    A model that reads side information (``uses_side``: the two-tower) gets
    the item features the dataset declared at ingest (``dataset.item_columns``);
    other models ignore them.  Titles come from the item table's ``title``
    column, else its first declared text column.
    """
    m = create_model(model, **(params or {}))
    side = ItemFeatures.declared(dataset) if m.uses_side else None
    m.fit(dataset.interactions, None, options, side=side)
    titles = None
    table, declared = dataset.item_table, dataset.item_columns
    title = "title" if table is not None and "title" in table.columns else (declared.text[0] if declared and
                                                                            declared.text else None)
    if table is not None and title is not None:
        titles = table[title].astype("string").fillna("").to_numpy(dtype=str)
    return ModelBundle(m, dataset.users, dataset.items, dataset.interactions.binary, titles, events=dataset.events)
