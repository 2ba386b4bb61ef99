"""Typed hyper-parameters shared by every model trained with the shared loop.

Each is written once here (type, constraint, meaning); a model's config
only chooses its default, e.g. ``lr: LearningRate = 1e-3``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

__all__ = ["Optimizer", "LearningRate", "OptimizerWeightDecay", "BatchSize", "Epochs", "Patience"]

Optimizer = Annotated[Literal["adam", "adamw", "sgd"], Field(description="optimiser (SGD with momentum 0.9)")]
LearningRate = Annotated[float, Field(gt=0, description="learning rate")]
OptimizerWeightDecay = Annotated[float, Field(ge=0, description="L2 penalty applied by the optimiser")]
BatchSize = Annotated[int, Field(ge=1, description="training examples (pairs or sequences) per step")]
Epochs = Annotated[int, Field(ge=1, description="maximum epochs")]
Patience = Annotated[
    int, Field(ge=1, description="epochs without a gain in validation NDCG@10 before training stops")
]
