"""EASE: the closed-form shallow autoencoder of Steck (2019), with a fast symmetric inverse."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.linalg import lapack

from zenrec.data.interactions import Interactions
from zenrec.data.sparse import pack_csr, row_items, unpack_csr
from zenrec.errors import ConfigError
from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.models.estimate import FitEstimate, ease_estimate
from zenrec.models.explain import Explanation, weights_explanations
from zenrec.models.query import Query
from zenrec.models.similarity import ItemSimilarity

__all__ = ["EASE", "EASEConfig", "ease_memory_bytes", "regularised_gram_inverse", "user_row_weights"]

log = logging.getLogger(__name__)


class EASEConfig(ModelConfig):
    """Hyper-parameters of :class:`EASE`."""

    reg: float = Field(300.0, gt=0, description="L2 regularisation λ added to the Gram diagonal")
    dropout: float = Field(
        0.2, ge=0, lt=1,
        description="EDLAE-style emphasis: adds p/(1-p)·G_ii to item i's regularisation (0 = plain EASE)",
    )
    user_weighting: float = Field(
        0.5, ge=0, le=2,
        description="weight each user's row by (items of user)^-γ (mean 1) in the Gram matrix; "
        "γ≈0.5 damps heavy users (0 = plain EASE)",
    )
    max_items: int = Field(
        30_000, ge=1, description="refuse catalogues larger than this (memory grows as 8·n² bytes)"
    )


def ease_memory_bytes(n_items: int) -> int:
    """Peak memory of fitting EASE on ``n_items`` items: two float32 n×n matrices."""
    return 2 * 4 * n_items * n_items


def _mirror_lower(p: np.ndarray, block: int = 1024) -> None:
    """Copy the lower triangle of a square matrix onto its upper one, in place, by blocks."""
    n = p.shape[0]
    for s in range(0, n, block):
        e = min(n, s + block)
        d = p[s:e, s:e]
        p[s:e, s:e] = np.tril(d) + np.tril(d, -1).T
        if e < n:
            p[s:e, e:] = p[e:, s:e].T


def user_row_weights(x: sp.csr_matrix, gamma: float) -> np.ndarray:
    """Per-user row weights ``(items of u)^-gamma``, scaled to mean 1 (float32)."""
    w = np.power(np.maximum(np.diff(x.indptr), 1).astype(np.float64), -gamma)
    return (w / w.mean()).astype(np.float32)


def regularised_gram_inverse(x: sp.csr_matrix, reg: float, dropout: float = 0.0,
                             user_weighting: float = 0.0) -> np.ndarray:
    """``P = (XᵀWX + Λ)⁻¹`` in float32, both triangles filled (see :class:`EASE` for W and Λ).

    ``W`` weights user u's row by ``(items of u)^-user_weighting`` (mean 1);
    ``Λ = reg·I + dropout/(1-dropout)·diag(XᵀWX)``.  Raises :class:`ConfigError`
    when the matrix is not positive definite.
    """
    n = x.shape[1]
    if user_weighting:
        g = (x.T @ (sp.diags(user_row_weights(x, user_weighting)) @ x)).toarray().astype(np.float32)
    else:
        g = (x.T @ x).toarray().astype(np.float32)
    diag = np.diag(g).astype(np.float64)
    lam = reg + (dropout / (1 - dropout)) * diag
    g[np.diag_indices(n)] += lam.astype(np.float32)
    chol, info = lapack.spotrf(g, lower=1, overwrite_a=1, clean=0)
    if info != 0:
        raise ConfigError(f"EASE: XᵀX + λI is not positive definite (info={info}); raise 'reg'")
    p, info = lapack.spotri(chol, lower=1, overwrite_c=1)
    if info != 0:
        raise ConfigError(f"EASE: inverse failed (info={info}); raise 'reg'")
    _mirror_lower(p)
    return p


class EASE(Recommender):
    """``B = I − P·diag(1/diag(P))``, ``P = (XᵀWX + Λ)⁻¹``, diagonal of B zero.

    ``W`` optionally down-weights heavy users (``user_weighting``) and ``Λ``
    adds the EDLAE dropout emphasis (``dropout``) to the plain ``λI``.

    The inverse of the symmetric positive-definite ``XᵀX + Λ`` is computed in
    float32 by LAPACK's Cholesky factorisation and triangular inverse
    (``spotrf`` + ``spotri``): about n³ flops instead of a general inverse's
    2n³ in float64.  Scores are ``x_u · B``.
    """

    name = "ease"
    Config = EASEConfig
    test_config = {}  # one matrix solve: nothing to shrink
    supports_history = True

    def estimate_fit(self, n_users: int, n_items: int, nnz: int) -> FitEstimate | None:
        """Time and peak memory of the fit (:func:`~zenrec.models.estimate.ease_estimate`); None below 1,000
        items (under 10⁹ flops: about a second at most) and above ``max_items`` (the fit refuses)."""
        if n_items < 1000 or n_items > self.config.max_items:
            return None
        return ease_estimate(n_users, n_items, nnz)

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        c = self.config
        n = train.n_items
        if n > c.max_items:
            raise ConfigError(
                f"EASE on {n:,} items needs about {ease_memory_bytes(n) / 2**30:.1f} GiB and O(n³) time; "
                f"the 'max_items' parameter of EASE is {c.max_items:,}. Raise it if the machine can, "
                "or filter rare items (k-core) first."
            )
        x = train.binary
        self.history_ = x
        p = regularised_gram_inverse(x, c.reg, c.dropout, c.user_weighting)
        d = np.diag(p).copy()
        p /= -d[None, :]
        p[np.diag_indices(n)] = 0.0
        self.weights_ = np.ascontiguousarray(p, dtype=np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.history_[users] @ self.weights_, dtype=np.float32)

    def _score_history(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        return np.asarray(history.binary[users] @ self.weights_, dtype=np.float32)

    def item_similarity(self) -> ItemSimilarity:
        """EASE's own item-item weights B: entry (i, j) is how much item i supports item j."""
        self._check_fitted()
        return ItemSimilarity.from_weights(self.weights_)

    def explain(self, query: Query, items: np.ndarray) -> list[Explanation]:
        """Each history item j contributes its weight ``B[j, i]``: the contributions sum to the score."""
        return weights_explanations(self, query, items, lambda h, i: self.weights_[np.ix_(h, i)])

    def history(self, user: int) -> np.ndarray:
        """The user's training items (in item order: EASE keeps no time order)."""
        return row_items(self.history_, user)

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_, **pack_csr("hist", self.history_, binary=True)}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = arrays["weights"]
        self.history_ = unpack_csr(arrays, "hist", (self.n_users_, self.n_items_))
