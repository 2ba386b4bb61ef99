"""Popularity: every user gets the items most users interacted with in training."""

from __future__ import annotations

import numpy as np

from zenrec.data.interactions import Interactions
from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.models.explain import Explanation, own_scores, popular_explanations
from zenrec.models.query import Query

__all__ = ["Popularity", "PopularityConfig"]


class PopularityConfig(ModelConfig):
    """Popularity has no hyper-parameters beyond the unknown-user policy."""


class Popularity(Recommender):
    """Scores each item by its number of distinct training users (ties: lower index)."""

    name = "pop"
    Config = PopularityConfig
    test_config = {}  # counting: nothing to shrink

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        self.counts_ = train.item_counts().astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(users), len(self.counts_))).copy()

    def explain(self, query: Query, items: np.ndarray) -> list[Explanation]:
        """Popularity explains itself: the score is the item's count of users, nothing of the user."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        return popular_explanations(items, own_scores(self, query, items)[0])

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts_ = arrays["counts"]
