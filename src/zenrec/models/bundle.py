"""A trained model together with what turns raw ids into recommendations.

:class:`ModelBundle` is what ``zenrec train`` writes and ``zenrec recommend``
(and later the server) reads: the model's own arrays plus the user and item
vocabularies, each user's seen items and, when known, item titles — all in
the same pickle-free artifact directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from zenrec.data.dataset import Dataset
from zenrec.data.sparse import pack_csr, unpack_csr
from zenrec.data.vocab import Vocabulary
from zenrec.errors import ArtifactError, ConfigError
from zenrec.models.base import Recommender, TrainOptions
from zenrec.models.registry import create_model, load_model

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

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write model + vocabularies + seen items atomically (npz + JSON, no pickle)."""
        extra = {
            "user_ids": self.users.to_array(),
            "item_ids": self.items.to_array(),
            **pack_csr("seen", self.seen, binary=True),
        }
        if self.titles is not None:
            extra["item_titles"] = self.titles.astype(str)
        return self.model.save(path, metadata=metadata, extra=extra)

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
        return cls(model, users, items, seen, extra.get("item_titles"), manifest)

    def recommend(
        self, user_ids: list | np.ndarray, k: int = 10, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Top-k per raw user id as a long table: user_id, rank, item_id, score, title, fallback.

        Users unseen in training follow the model's ``on_unknown_user`` policy;
        their rows say ``fallback = "popular"``.
        """
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
            raise ConfigError(f"the 'k' parameter must be a positive integer; got {k!r}")
        raw = np.asarray(user_ids)
        idx = self.users.index(raw, missing="mask")
        items, scores = self.model.recommend(idx, k=k, exclude=self.seen if exclude_seen else None)
        n = items.shape[1]
        valid = items >= 0
        rows = np.repeat(np.arange(len(raw)), n).reshape(items.shape)[valid]
        out = pd.DataFrame(
            {
                "user_id": raw[rows],
                "rank": (np.tile(np.arange(1, n + 1), (len(raw), 1)))[valid],
                "item_id": self.items.ids(items[valid]),
                "score": scores[valid],
            }
        )
        if self.titles is not None:
            out["title"] = self.titles[items[valid]]
        out["fallback"] = np.where(idx[rows] < 0, "popular", "")
        return out

    def history(self, user_id: Any) -> pd.DataFrame:
        """The items a known user interacted with in training (with titles)."""
        u = int(self.users.index([user_id])[0])
        cols = self.seen.indices[self.seen.indptr[u] : self.seen.indptr[u + 1]]
        out = pd.DataFrame({"item_id": self.items.ids(cols)})
        if self.titles is not None:
            out["title"] = self.titles[cols]
        return out


def train_bundle(
    dataset: Dataset, model: str, params: dict[str, Any] | None = None, options: TrainOptions | None = None
) -> ModelBundle:
    """Fit a registered model on every interaction of ``dataset`` and bundle it."""
    m = create_model(model, **(params or {})).fit(dataset.interactions, None, options)
    titles = None
    if dataset.item_table is not None and "title" in dataset.item_table.columns:
        titles = dataset.item_table["title"].astype("string").fillna("").to_numpy(dtype=str)
    return ModelBundle(m, dataset.users, dataset.items, dataset.interactions.binary, titles)
