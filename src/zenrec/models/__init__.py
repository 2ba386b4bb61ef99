"""Models behind one seam, :class:`~zenrec.models.base.Recommender`, and their registry."""

from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.models.registry import MODELS, available_models, create_model, get_model_class, load_model

__all__ = [
    "MODELS",
    "ModelConfig",
    "Recommender",
    "TrainOptions",
    "available_models",
    "create_model",
    "get_model_class",
    "load_model",
]
