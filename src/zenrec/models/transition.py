"""First-order transitions: what followed the user's last item, counted (no training loop)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from zenrec.data.interactions import Interactions
from zenrec.data.sparse import pack_csr, unpack_csr
from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.models.explain import (
    Explanation,
    item_explanations,
    own_scores,
    popular_explanations,
    query_history,
)
from zenrec.models.query import Query

__all__ = ["Transition", "TransitionConfig"]


class TransitionConfig(ModelConfig):
    """Hyper-parameters of :class:`Transition`."""

    window: int = Field(3, ge=1, description="count items up to this many steps after an item")
    decay: float = Field(0.8, gt=0, le=1, description="weight of a step d after the item: decay^(d-1)")


class Transition(Recommender):
    """``score(j) = Σ_d decay^(d-1) · #(last item → j at distance d)``, ties by popularity.

    Cheap and, on some data, stronger than published Transformer numbers.
    Reads a raw history, so anonymous sessions are scored too.
    """

    name = "transition"
    Config = TransitionConfig
    test_config = {}  # counting: nothing to shrink
    supports_history = True
    sequential = True

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        c = self.config
        n = train.n_items
        same_user = train.user
        rows, cols, vals = [], [], []
        for d in range(1, c.window + 1):
            ok = same_user[:-d] == same_user[d:]
            rows.append(train.item[:-d][ok])
            cols.append(train.item[d:][ok])
            vals.append(np.full(int(ok.sum()), c.decay ** (d - 1), np.float32))
        t = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        t.sum_duplicates()
        self.transitions_ = t.astype(np.float32)
        self.last_ = self._last(train, np.arange(train.n_users))

    @staticmethod
    def _last(inter: Interactions, users: np.ndarray) -> np.ndarray:
        p = inter.seq_indptr
        has = p[users + 1] > p[users]
        return np.where(has, inter.item[np.maximum(p[users + 1] - 1, 0)], -1)

    def _from_last(self, last: np.ndarray) -> np.ndarray:
        out = np.empty((len(last), self.n_items_), dtype=np.float32)
        ok = last >= 0
        out[ok] = self.transitions_[last[ok]].toarray()
        out[~ok] = 0
        return out + 1e-3 * self.popularity_[None, :]  # popularity breaks ties and fills gaps

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._from_last(self.last_[users])

    def _score_history(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        return self._from_last(self._last(history, users))

    def explain(self, query: Query, items: np.ndarray) -> list[Explanation]:
        """The last item of the history carries the whole transition count; popularity (the tie-break) is the
        baseline.  Without a last item the list is popularity alone."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        scores, fallback = own_scores(self, query, items)
        hist = query_history(self, query)
        base = 1e-3 * self.popularity_[items].astype(np.float64)
        if fallback is not None or hist is None or not len(hist):
            return popular_explanations(items, scores)
        last = int(hist[-1])
        weights = self.transitions_[[last]][:, items].toarray().astype(np.float64)
        return item_explanations("transition", items, np.asarray([last]), weights, scores, base)

    def history(self, user: int) -> np.ndarray:
        """The one item the model keeps of a user: its last training item (none when it has no event)."""
        last = int(self.last_[user])
        return np.asarray([last] if last >= 0 else [], dtype=np.int64)

    def _state(self) -> dict[str, np.ndarray]:
        return {**pack_csr("transitions", self.transitions_), "last": self.last_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.transitions_ = unpack_csr(arrays, "transitions", (self.n_items_, self.n_items_))
        self.last_ = arrays["last"]

    def _index_bounds(self, state: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
        return {"last": (-1, self.n_items_ - 1)}  # -1: a user without events
