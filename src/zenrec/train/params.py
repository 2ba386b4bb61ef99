"""Typed hyper-parameters shared by every model trained with the shared loop.

Each is written once here (type, constraint, meaning); a model's config
only chooses its default, e.g. ``lr: LearningRate = 1e-3``.  ``weight_decay``
(:data:`OptimizerWeightDecay`) is always the optimiser's; a penalty a model
adds to its loss is :data:`EmbeddingL2` (``embedding_l2``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

__all__ = ["Optimizer", "LearningRate", "OptimizerWeightDecay", "EmbeddingL2", "BatchSize", "Epochs", "Patience"]

Optimizer = Annotated[Literal["adam", "adamw", "sgd"], Field(description="optimiser (SGD with momentum 0.9)")]
LearningRate = Annotated[float, Field(gt=0, description="learning rate")]
OptimizerWeightDecay = Annotated[
    float, Field(ge=0, description="weight decay applied by the optimiser (coupled in adam and sgd, decoupled in adamw)")
]
EmbeddingL2 = Annotated[
    float, Field(ge=0, description="L2 penalty on the embeddings used in each batch, added to the loss "
                 "(not the optimiser's weight decay)")
]
BatchSize = Annotated[int, Field(ge=1, description="training examples (pairs or sequences) per step")]
Epochs = Annotated[int, Field(ge=1, description="maximum epochs")]
Patience = Annotated[
    int, Field(ge=1, description="epochs without a gain in validation NDCG@10 before training stops")
]
