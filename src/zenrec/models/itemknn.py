"""ItemKNN: cosine item-item similarity with shrinkage, top-k neighbours per item."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from zenrec.data.interactions import Interactions
from zenrec.data.sparse import pack_csr, row_items, unpack_csr
from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.models.estimate import FitEstimate, itemknn_estimate
from zenrec.models.explain import Explanation, weights_explanations
from zenrec.models.query import Query
from zenrec.models.similarity import ItemSimilarity
from zenrec.retrieval.topk import topk

__all__ = ["ItemKNN", "ItemKNNConfig"]


class ItemKNNConfig(ModelConfig):
    """Hyper-parameters of :class:`ItemKNN`."""

    k: int = Field(200, ge=1, description="neighbours kept per item")
    shrink: float = Field(10.0, ge=0, description="added to the cosine denominator; damps rare co-occurrences")
    alpha: float = Field(0.5, ge=0, le=1, description="asymmetric cosine: 0.5 is plain cosine")
    weighting: Literal["none", "idf"] = Field(
        "idf", description="weight each user's vector by log(n_items / user's items): heavy users count less"
    )
    block_size: int = Field(2048, ge=1, description="items per block when computing similarities")


class ItemKNN(Recommender):
    """Item-based collaborative filtering.

    ``sim(i, j) = x_i·x_j / (‖x_i‖^{2α} ‖x_j‖^{2(1-α)} + shrink)`` on binary
    user vectors; a user's score for item j sums the similarities to j of
    those of j's ``k`` nearest neighbours that are in the user's history.
    The similarity matrix is built block by block, so memory stays
    ``block_size × n_items`` dense plus the sparse result.
    """

    name = "itemknn"
    Config = ItemKNNConfig
    test_config = {"k": 20}  # fewer neighbours than the fixture's items: the pruning path runs too
    supports_history = True

    def estimate_fit(self, n_users: int, n_items: int, nnz: int) -> FitEstimate | None:
        """Time and peak memory of the fit (:func:`~zenrec.models.estimate.itemknn_estimate`); None below 2,000
        items (a few million similarities: about a second at most)."""
        if n_items < 2000:
            return None
        return itemknn_estimate(n_users, n_items, nnz, self.config.k, self.config.block_size)

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        c = self.config
        self.history_ = train.binary
        x = self.history_
        if c.weighting == "idf":
            per_user = np.maximum(np.diff(x.indptr), 1)
            idf = np.log(x.shape[1] / per_user).astype(np.float32)
            x = sp.diags(np.maximum(idf, 1e-3)) @ x
        xt = x.T.tocsr()
        sq = np.asarray(x.multiply(x).sum(axis=0)).ravel().astype(np.float64)  # ‖x_i‖²
        n = x.shape[1]
        k = min(c.k, n - 1) if n > 1 else 1
        rows, cols, vals = [], [], []
        for s in range(0, n, c.block_size):
            e = min(n, s + c.block_size)
            co = (xt[s:e] @ x).toarray().astype(np.float32)  # block × n
            denom = np.power(sq[s:e, None], c.alpha) * np.power(sq[None, :], 1 - c.alpha) + c.shrink
            sim = co / np.maximum(denom, 1e-12).astype(np.float32)
            sim[np.arange(e - s), np.arange(s, e)] = 0.0
            idx, v = topk(sim, k)
            keep = v > 0
            rows.append(np.repeat(np.arange(s, e), k)[keep.ravel()])
            cols.append(idx.ravel()[keep.ravel()])
            vals.append(v.ravel()[keep.ravel()])
        # W[i, j] = sim(i, j) for i among target item j's k nearest neighbours, so that
        # x_u · W[:, j] sums the similarities of j's neighbours in the user's history
        self.sim_ = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(cols), np.concatenate(rows))), shape=(n, n), dtype=np.float32
        )

    def _score(self, users: np.ndarray) -> np.ndarray:
        return (self.history_[users] @ self.sim_).toarray()

    def _score_history(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        return (history.binary[users] @ self.sim_).toarray()

    def item_similarity(self) -> ItemSimilarity:
        """The kept neighbour similarities: entry (i, j) is how much item i supports item j."""
        self._check_fitted()
        return ItemSimilarity.from_weights(self.sim_)

    def explain(self, query: Query, items: np.ndarray) -> list[Explanation]:
        """Each history item j contributes its kept similarity ``W[j, i]``: the contributions sum to the score."""
        return weights_explanations(self, query, items, lambda h, i: self.sim_[h][:, i].toarray())

    def history(self, user: int) -> np.ndarray:
        """The user's training items (in item order: ItemKNN keeps no time order)."""
        return row_items(self.history_, user)

    def _state(self) -> dict[str, np.ndarray]:
        return {**pack_csr("sim", self.sim_), **pack_csr("hist", self.history_, binary=True)}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        n, m = self.n_items_, self.n_users_
        self.sim_ = unpack_csr(arrays, "sim", (n, n))
        self.history_ = unpack_csr(arrays, "hist", (m, n))
