"""ALS: implicit-feedback matrix factorisation (Hu, Koren & Volinsky), through ``implicit``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from zenrec.data.interactions import Interactions
from zenrec.data.sparse import padded_row_blocks
from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.models.explain import Explanation, explain_scores, factor_explanations, item_explanations
from zenrec.models.query import Query, Vectors

__all__ = ["ALS", "ALSConfig"]


class ALSConfig(ModelConfig):
    """Hyper-parameters of :class:`ALS`."""

    factors: int = Field(64, ge=1, description="embedding size")
    regularization: float = Field(20.0, ge=0, description="L2 penalty on the factors")
    alpha: float = Field(
        2.0, gt=0, description="confidence of an observed pair = alpha·weight (1 for unobserved ones), as in implicit"
    )
    iterations: int = Field(15, ge=1, description="ALS sweeps")
    use_weights: bool = Field(False, description="use event weights as confidences (else 0/1)")


class ALS(Recommender):
    """Weighted matrix factorisation solved by alternating least squares.

    Fitting is delegated to ``implicit``'s CPU solver (conjugate gradient);
    scores are ``u·v``.  A user with new events is *folded in*: its vector
    is re-solved exactly against the fixed item factors (one d×d system),
    so an event changes the next recommendation without retraining.
    """

    name = "als"
    Config = ALSConfig
    test_config = {"factors": 8, "iterations": 5}
    supports_history = True

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        c = self.config
        x = train.csr if c.use_weights else train.binary
        with threadpool_limits(1, "blas"):  # implicit runs its own threads
            model = AlternatingLeastSquares(
                factors=c.factors,
                regularization=c.regularization,
                alpha=c.alpha,
                iterations=c.iterations,
                random_state=options.seed,
                num_threads=options.threads or 0,
            )
            model.fit(x, show_progress=options.progress)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T

    def fold_in(self, rows: sp.csr_matrix) -> np.ndarray:
        """User vectors solved from interaction rows (users × items) against the fixed item factors.

        ``u = (VᵀV + Vᵀ(C−I)V + λI)⁻¹ VᵀCp`` with confidence ``C = alpha·weight``
        on observed items (1 elsewhere) and preference ``p = 1`` on them: the
        same user step as training.  A row without events gets a zero vector.
        """
        c = self.config
        v = self.item_factors_.astype(np.float64)
        gram = v.T @ v + c.regularization * np.eye(v.shape[1])
        out = np.zeros((rows.shape[0], v.shape[1]), dtype=np.float32)
        for r, idx, val, mask in padded_row_blocks(rows):
            conf = c.alpha * (val if c.use_weights else mask.astype(np.float64))  # 0 on padding
            vi = v[idx]  # B × L × d
            a = gram[None] + np.einsum("bld,ble->bde", vi * np.where(mask, conf - 1.0, 0.0)[..., None], vi)
            out[r] = np.linalg.solve(a, np.einsum("bld,bl->bd", vi, conf)[..., None])[..., 0]
        return out

    def _score_history(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        rows = (history.csr if self.config.use_weights else history.binary)[users]
        return self.fold_in(rows) @ self.item_factors_.T

    def explain(self, query: Query, items: np.ndarray) -> list[Explanation]:
        """Per-history-item terms of the user's solve.

        With a ``history`` the score is ``y_i · x_u`` with
        ``x_u = A⁻¹ Σ_j c_uj y_j`` and ``A = YᵀY + Σ_j (c_uj − 1) y_j y_jᵀ + λI``
        (:meth:`fold_in`), so history item j contributes exactly
        ``c_uj · y_iᵀ A⁻¹ y_j``.  A known user without one is split by latent
        factors of its trained vector (the model keeps no training items; a
        :class:`~zenrec.models.bundle.ModelBundle` passes them).
        """
        items, scores, popular = explain_scores(self, query, items)
        if popular is not None:
            return popular
        if query.history is None or not len(query.history):
            return factor_explanations(self.user_factors_[int(query.user)], self.item_factors_, None, items, scores)
        c = self.config
        h = np.asarray(query.history, dtype=np.int64).reshape(-1)
        inter = Interactions(np.zeros(len(h), dtype=np.int64), h, 1, int(self.n_items_), timestamp=np.arange(len(h)))
        row = (inter.csr if c.use_weights else inter.binary)[0]
        hist = row.indices.astype(np.int64)
        conf = c.alpha * (row.data.astype(np.float64) if c.use_weights else np.ones(len(hist)))
        v = self.item_factors_.astype(np.float64)
        vh = v[hist]
        a = v.T @ v + c.regularization * np.eye(v.shape[1]) + (vh * (conf - 1.0)[:, None]).T @ vh
        solved = np.linalg.solve(a, v[items].T)  # d × items: A⁻¹ y_i (A is symmetric)
        weights = conf[:, None] * (vh @ solved)  # history × items
        return item_explanations("als-solve", items, hist, weights, scores)

    def vectors(self) -> Vectors:
        """Scores are ``user_factors · item_factors``."""
        self._check_fitted()
        return Vectors(self.user_factors_, self.item_factors_)

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
