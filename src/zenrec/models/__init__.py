"""Models behind one seam, :class:`~zenrec.models.base.Recommender`, and their registry."""

from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.models.explain import Contribution, Explanation
from zenrec.models.query import Query, Recommendations, Vectors
from zenrec.models.registry import MODELS, available_models, create_model, get_model_class, load_model
from zenrec.models.similarity import ItemSimilarity

__all__ = [
    "Contribution",
    "Explanation",
    "ItemSimilarity",
    "Query",
    "Recommendations",
    "Vectors",
    "MODELS",
    "ModelConfig",
    "Recommender",
    "TrainOptions",
    "available_models",
    "create_model",
    "get_model_class",
    "load_model",
]
