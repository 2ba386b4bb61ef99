"""The one seam every model plugs into: :class:`Recommender`.

A model subclasses :class:`Recommender`, declares a typed ``Config`` and
writes three things on contiguous integer ids:

* ``_fit(train, valid, options)`` — learn from a users × items matrix / sequences;
* ``_score(users)`` — a dense ``len(users) × n_items`` float32 score block;
* ``_state()`` / ``_set_state(arrays)`` — the learned arrays to save and restore.

The public methods here do the rest once for every model: parameter
validation, fitted checks, unknown-user policy, top-k with seen-item masking,
and safe save/load (JSON manifest + ``.npz``, never pickle).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zenrec import __version__
from zenrec._io import atomic_dir, load_arrays, read_manifest, save_arrays, write_json
from zenrec.data.interactions import Interactions
from zenrec.errors import ArtifactError, ConfigError, DataError, NotFittedError, UnknownIdError
from zenrec.retrieval.topk import mask_rows, topk

__all__ = ["ModelConfig", "Recommender", "TrainOptions", "MODEL_FORMAT"]

log = logging.getLogger(__name__)

#: Version of the on-disk model layout; a newer one is refused on load.
MODEL_FORMAT = 1


class ModelConfig(BaseModel):
    """Base of every model's hyper-parameters: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    on_unknown_user: Literal["popular", "raise"] = Field(
        "popular", description="users unseen in training get popular items, or raise"
    )


@dataclass
class TrainOptions:
    """How to train, as opposed to what to learn: not saved with the model."""

    seed: int = 2020
    device: str | None = None  # None: CUDA when available, else CPU
    threads: int | None = None
    progress: bool = False
    verbose: bool = False


def _config_error(cls_name: str, exc: ValidationError) -> ConfigError:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            parts.append(f"{cls_name} has no parameter {loc!r}")
        else:
            parts.append(f"the {loc!r} parameter of {cls_name} {err['msg'].lower()}; got {err.get('input')!r}")
    return ConfigError("; ".join(parts))


class Recommender(ABC):
    """Template-method base of every zenrec model (see the module docstring)."""

    #: registry name, e.g. ``"ease"``
    name: ClassVar[str]
    #: typed hyper-parameters
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    #: True when ``_score_history`` can score users from a raw item history
    supports_history: ClassVar[bool] = False
    #: True for next-item models that read the order of a history
    sequential: ClassVar[bool] = False
    #: True for models that read side information passed to ``fit(side=...)``
    uses_side: ClassVar[bool] = False

    def __init__(self, config: ModelConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise ConfigError(f"pass either a config or keyword parameters to {type(self).__name__}, not both")
        if config is not None and not isinstance(config, self.Config):
            raise ConfigError(f"{type(self).__name__} expects a {self.Config.__name__}; got {type(config).__name__}")
        try:
            self.config = config if config is not None else self.Config(**params)
        except ValidationError as exc:
            raise _config_error(type(self).__name__, exc) from None
        self.n_users_: int | None = None
        self.n_items_: int | None = None
        self.popularity_: np.ndarray | None = None
        self.fit_seconds_: float | None = None

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items() if k != "on_unknown_user")
        return f"{type(self).__name__}({params})"

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        options: TrainOptions | None = None,
        side: Any = None,
    ) -> Recommender:
        """Learn from ``train`` (``valid`` for early stopping where the model uses it).

        ``side`` carries side information (item/user features, text) for the
        models that declare ``uses_side``; it is kept as ``self.side_``.
        """
        if side is not None and not self.uses_side:
            raise ConfigError(f"{type(self).__name__} uses no side information; drop side=")
        self.side_ = side
        if not isinstance(train, Interactions):
            raise DataError(f"{type(self).__name__}.fit expects Interactions; got {type(train).__name__}")
        if len(train) == 0:
            raise DataError("cannot fit on zero interactions")
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        counts = train.item_counts().astype(np.float32)
        self.popularity_ = counts / max(float(counts.max()), 1.0)
        t0 = time.perf_counter()
        self._fit(train, valid, options or TrainOptions())
        self.fit_seconds_ = time.perf_counter() - t0
        log.info("fitted %r in %.2fs", self, self.fit_seconds_)
        return self

    @abstractmethod
    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        """Learn the model's state from integer-coded interactions."""

    @property
    def is_fitted(self) -> bool:
        return self.n_items_ is not None

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit() or load a saved model")

    # ----------------------------------------------------------------- scoring
    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray:
        """Scores of known users (0 ≤ u < n_users) over all items."""

    def _score_history(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        """Scores of ``users`` from the rows of ``history`` instead of the training data.

        Models that read a user's items at scoring time (EASE, ItemKNN,
        sequence models) override this and set ``supports_history``.
        """
        raise ConfigError(f"{type(self).__name__} cannot score from a new history")

    def item_embeddings(self) -> np.ndarray | None:
        """``n_items × d`` item vectors of models that have them (for similar items and ANN retrieval), else None.

        Factor and neural models return the vectors their scores are dot
        products with; item-item and count models return None.
        """
        return None

    def score(self, users: np.ndarray | list[int], history: Interactions | None = None) -> np.ndarray:
        """``len(users) × n_items`` float32 scores; higher is better.

        Users outside ``[0, n_users)`` (e.g. ``-1`` from a vocabulary lookup with
        ``missing='mask'``) follow ``config.on_unknown_user``.  With ``history``
        (same item ids; user rows may be new), models that
        ``supports_history`` score each user from those events instead of the
        training ones — e.g. training plus validation events at test time in
        the sequential protocol, or events that arrived after training.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        if history is not None:
            if not self.supports_history:
                raise ConfigError(f"{type(self).__name__} cannot score from a new history")
            if history.n_items != self.n_items_:
                raise ConfigError(f"history has {history.n_items} items; the model knows {self.n_items_}")
            known = (users >= 0) & (users < history.n_users)
            score_known = lambda u: self._score_history(u, history)  # noqa: E731
        else:
            known = (users >= 0) & (users < self.n_users_)
            score_known = self._score
        if known.all():
            return np.asarray(score_known(users), dtype=np.float32)
        if self.config.on_unknown_user == "raise":
            bad = users[~known][0]
            raise UnknownIdError(f"user index {bad} was not seen in training (on_unknown_user='raise')")
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        if known.any():
            out[known] = score_known(users[known])
        out[~known] = self.popularity_
        return out

    def recommend(
        self,
        users: np.ndarray | list[int],
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
        batch_size: int = 2048,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores per user, best first.

        ``exclude`` is a users × items matrix of items never to return (usually
        the training matrix); its rows are indexed by the same user ids.  When
        fewer than ``k`` items remain for a user, the list is padded with item
        ``-1`` and score ``-inf``.
        """
        if not isinstance(k, (int, np.integer)) or k <= 0:
            raise ConfigError(f"the 'k' parameter must be a positive integer; got {k!r}")
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        items = np.empty((len(users), min(k, self.n_items_ or k)), dtype=np.int64)
        scores = np.empty(items.shape, dtype=np.float32)
        for s in range(0, len(users), batch_size):
            u = users[s : s + batch_size]
            block = self.score(u)
            if exclude is not None:
                mask_rows(block, exclude, u)
            items[s : s + len(u)], scores[s : s + len(u)] = topk(block, k)
        items[np.isneginf(scores)] = -1  # fewer than k items were allowed
        return items, scores

    # ------------------------------------------------------------ persistence
    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """The learned arrays."""

    @abstractmethod
    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from the arrays returned by ``_state``."""

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None,
             extra: dict[str, np.ndarray] | None = None) -> Path:
        """Write ``manifest.json`` + ``arrays.npz`` to a directory, atomically.

        ``extra`` arrays (e.g. vocabularies) are stored beside the model's own.
        """
        self._check_fitted()
        path = Path(path)
        arrays = {f"model.{k}": v for k, v in self._state().items()}
        arrays["base.popularity"] = self.popularity_
        for k, v in (extra or {}).items():
            arrays[f"extra.{k}"] = v
        with atomic_dir(path) as tmp:
            save_arrays(tmp / "arrays.npz", arrays)
            write_json(
                tmp / "manifest.json",
                {
                    "kind": "model",
                    "format_version": MODEL_FORMAT,
                    "zenrec_version": __version__,
                    "model": self.name,
                    "params": self.config.model_dump(mode="json"),
                    "n_users": self.n_users_,
                    "n_items": self.n_items_,
                    "fit_seconds": self.fit_seconds_,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "arrays": sorted(arrays),
                    **(metadata or {}),
                },
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model of this class saved by :meth:`save`.

        To load a model whose class you do not know, use
        :func:`zenrec.models.load_model`, which finds it in the registry.
        """
        path = Path(path)
        manifest = read_manifest(path, "model", MODEL_FORMAT)
        if cls is Recommender or manifest.get("model") != getattr(cls, "name", None):
            what = "Recommender itself" if cls is Recommender else f"a {cls.__name__}"
            raise ArtifactError(f"{path}: holds a {manifest.get('model')!r} model, not {what}; "
                                "use zenrec.models.load_model for any registered model")
        model, _ = cls._from_artifact(path, manifest)
        return model

    @classmethod
    def _from_artifact(cls, path: Path, manifest: dict[str, Any]) -> tuple[Recommender, dict[str, np.ndarray]]:
        """Rebuild a model of this class from its directory and manifest: ``(model, extra arrays)``."""
        try:
            config = cls.Config(**manifest["params"])
            n_users, n_items = int(manifest["n_users"]), int(manifest["n_items"])
        except (KeyError, TypeError, ValueError, ValidationError, ConfigError) as exc:
            raise ArtifactError(f"{path}/manifest.json: corrupted or incompatible manifest ({exc})") from None
        arrays = load_arrays(path / "arrays.npz")
        missing = set(manifest.get("arrays", [])) - set(arrays)
        if missing:
            raise ArtifactError(f"{path}/arrays.npz: missing arrays {sorted(missing)}")
        model = cls(config)
        model.n_users_, model.n_items_ = n_users, n_items
        model.fit_seconds_ = manifest.get("fit_seconds")
        try:
            model.popularity_ = arrays["base.popularity"]
            model._set_state({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        except (KeyError, ValueError) as exc:
            raise ArtifactError(f"{path}/arrays.npz: does not match the manifest ({exc})") from None
        if len(model.popularity_) != n_items:
            raise ArtifactError(f"{path}: arrays do not match n_items={n_items} in the manifest")
        return model, {k[6:]: v for k, v in arrays.items() if k.startswith("extra.")}
