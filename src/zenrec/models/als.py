"""ALS: implicit-feedback matrix factorisation (Hu, Koren & Volinsky), through ``implicit``."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from zenrec.data.interactions import Interactions
from zenrec.models.base import ModelConfig, Recommender, TrainOptions

__all__ = ["ALS", "ALSConfig"]


class ALSConfig(ModelConfig):
    """Hyper-parameters of :class:`ALS`."""

    factors: int = Field(64, ge=1, description="embedding size")
    regularization: float = Field(20.0, ge=0, description="L2 penalty on the factors")
    alpha: float = Field(2.0, gt=0, description="confidence = 1 + alpha·weight")
    iterations: int = Field(15, ge=1, description="ALS sweeps")
    use_weights: bool = Field(False, description="use event weights as confidences (else 0/1)")


class ALS(Recommender):
    """Weighted matrix factorisation solved by alternating least squares.

    Fitting is delegated to ``implicit``'s CPU solver (conjugate gradient);
    scores are ``u·v``.
    """

    name = "als"
    Config = ALSConfig

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

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
