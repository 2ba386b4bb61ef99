"""The explicit model registry: one line per model, imported lazily."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

from zenrec._io import read_manifest
from zenrec.errors import ArtifactError, UnknownModelError
from zenrec.models.base import MODEL_FORMAT, Recommender

__all__ = ["MODELS", "available_models", "get_model_class", "create_model", "load_model"]

#: name → (module, class).  Adding a model = one module + one line here.
MODELS: dict[str, tuple[str, str]] = {
    "pop": ("zenrec.models.popularity", "Popularity"),
    "itemknn": ("zenrec.models.itemknn", "ItemKNN"),
    "ease": ("zenrec.models.ease", "EASE"),
    "als": ("zenrec.models.als", "ALS"),
    "lmf": ("zenrec.models.lmf", "LogisticMF"),
    "transition": ("zenrec.models.transition", "Transition"),
    "gru4rec": ("zenrec.models.gru4rec", "GRU4Rec"),
    "sasrec": ("zenrec.models.sasrec", "SASRec"),
    "bert4rec": ("zenrec.models.bert4rec", "BERT4Rec"),
    "multitask": ("zenrec.models.multitask", "MultiTask"),
    "twotower": ("zenrec.models.twotower", "TwoTower"),
}


def available_models() -> list[str]:
    """Registered model names."""
    return list(MODELS)


def get_model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``."""
    try:
        module, cls = MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; available models: {', '.join(MODELS)}"
        ) from None
    return getattr(import_module(module), cls)


def create_model(name: str, **params: Any) -> Recommender:
    """Instantiate a registered model with hyper-parameters."""
    return get_model_class(name)(**params)


def load_model(path: str | Path) -> tuple[Recommender, dict[str, Any], dict[str, np.ndarray]]:
    """Load any saved model, its class found by the name in its manifest: ``(model, manifest, extra arrays)``."""
    path = Path(path)
    manifest = read_manifest(path, "model", MODEL_FORMAT)
    name = manifest.get("model")
    if not isinstance(name, str):
        raise ArtifactError(f"{path}/manifest.json: corrupted or incompatible manifest (no model name)")
    try:
        cls = get_model_class(name)
    except UnknownModelError as exc:
        raise ArtifactError(f"{path}/manifest.json: corrupted or incompatible manifest ({exc})") from None
    model, extra = cls._from_artifact(path, manifest)
    return model, manifest, extra
