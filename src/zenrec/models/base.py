"""The one seam every model plugs into: :class:`Recommender`.

A model subclasses :class:`Recommender`, declares a typed ``Config`` and
writes three things on contiguous integer ids:

* ``_fit(train, valid, options)`` — learn from a users × items matrix / sequences;
* ``_score(users)`` — a dense ``len(users) × n_items`` float32 score block;
* ``_state()`` / ``_set_state(arrays)`` — the learned arrays to save and restore.

The public methods here do the rest once for every model: parameter
validation, fitted checks, unknown-user policy, one :class:`~zenrec.models.query.Query`
in and one :class:`~zenrec.models.query.Recommendations` out (through the one
filtered top-k, :func:`zenrec.retrieval.filtered_topk`), and safe save/load
(JSON manifest + ``.npz``, never pickle).

**Capabilities.**  What else a model can do it declares by overriding a
method whose default says "not supported"; callers (serving, explanations)
ask, never probe attributes:

* :meth:`Recommender.vectors` — user/item vectors (+ item bias) whose dot
  product is the score: ANN retrieval, similar items by cosine;
* :meth:`Recommender.item_embeddings` — item vectors for similarity only;
* :meth:`Recommender.item_similarity` — how items relate (vectors, or the
  model's own item-item weights);
* :meth:`Recommender.history` — the items the model stores for a user,
  oldest first where it keeps order;
* ``supports_history`` + ``_score_history`` — scores from a new history;
* :meth:`Recommender.explain` — contributions behind a score.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zenrec import __version__
from zenrec._io import atomic_dir, load_arrays, read_manifest, save_arrays, write_json
from zenrec.data.interactions import Interactions
from zenrec.errors import ArtifactError, ConfigError, DataError, NotFittedError, UnknownIdError
from zenrec.models.query import Query, Recommendations, Vectors
from zenrec.models.similarity import ItemSimilarity
from zenrec.retrieval.score import filtered_topk

if TYPE_CHECKING:
    from zenrec.models.estimate import FitEstimate
    from zenrec.models.explain import Explanation
    from zenrec.train.progress import Callback

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
    """How to train, as opposed to what to learn: not saved with the model.

    ``validation`` is what a model that early-stops (``early_stops``: the
    PyTorch models) does when ``fit`` gets no validation part: True holds one
    out of the training data (each user's last event for sequence models, a
    random 10% of each user's events otherwise; see
    :func:`zenrec.train.holdout.hold_out`), a float sets that share, False
    trains every epoch of the config on everything.  ``progress`` shows
    training on stderr (a bar on a terminal, plain lines otherwise);
    ``callback`` gets a :class:`~zenrec.train.progress.TrainEvent` after every
    step and epoch, and the estimate before a large closed-form fit.
    """

    seed: int = 2020
    device: str | None = None  # None: CUDA when available, else CPU
    threads: int | None = None
    progress: bool = False
    verbose: bool = False
    validation: bool | float = True
    callback: Callback | None = None

    def __post_init__(self) -> None:
        from zenrec.train.holdout import check_validation

        self.validation = check_validation(self.validation)


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
    #: True for models trained with PyTorch (they need the ``torch`` package)
    uses_torch: ClassVar[bool] = False
    #: True for models that stop on a validation metric: given no validation part they hold one out
    #: (``TrainOptions.validation``)
    early_stops: ClassVar[bool] = False
    #: hyper-parameters small enough for the conformance suite to fit the model in seconds
    test_config: ClassVar[dict[str, Any]] = {}
    #: parameters removed from ``Config``, with the value the model now always behaves as: a saved model that
    #: used exactly that value still loads; another value is refused (the model would not be the same)
    retired: ClassVar[dict[str, Any]] = {}

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
        #: how training went (epochs, best epoch, validation), saved in the manifest; None: nothing to tell
        self.training_: dict[str, Any] | None = None

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

        A model that early-stops (``early_stops``) and gets no ``valid`` holds
        a validation slice out of ``train`` (``options.validation``) and still
        scores from every event of ``train``.  Before a large closed-form fit
        (EASE, ItemKNN) its estimated time and peak memory go to the
        ``zenrec.train`` logger and ``options.callback``.

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
        options = options or TrainOptions()
        self._announce_estimate(train, options)
        t0 = time.perf_counter()
        self._fit(train, valid, options)
        self.fit_seconds_ = time.perf_counter() - t0
        log.info("fitted %r in %.2fs", self, self.fit_seconds_)
        return self

    @abstractmethod
    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        """Learn the model's state from integer-coded interactions."""

    def estimate_fit(self, n_users: int, n_items: int, nnz: int) -> FitEstimate | None:
        """Expected time and peak memory of fitting on ``nnz`` user-item pairs, for a model whose fit is one
        long step with no progress of its own; None (the default): no estimate."""
        return None

    def _announce_estimate(self, train: Interactions, options: TrainOptions) -> None:
        """Before a large fit (:func:`zenrec.models.estimate.worth_telling`), say what it will cost: an INFO
        line on the ``zenrec.train`` logger and an ``"estimate"`` event to ``options.callback``."""
        from zenrec.models.estimate import worth_telling
        from zenrec.train.progress import TrainEvent

        est = self.estimate_fit(train.n_users, train.n_items, int(train.binary.nnz))
        if est is None or not worth_telling(est):
            return
        line = est.line()
        logging.getLogger("zenrec.train").info("%s", line)
        if options.callback is not None:
            options.callback(TrainEvent("estimate", self.name, message=line))

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

    def score_queries(self, queries: list[Query]) -> tuple[np.ndarray, list[str | None]]:
        """One score row per (index-level) query, and which of them a fallback answered.

        A query with a ``history`` is scored from it (``user`` picks the id
        embedding of a known user) by models that ``supports_history``; the
        others score a known user from training and answer an unknown one with
        popular items (``fallback="popular"``).
        """
        n_users = int(self.n_users_)
        for q in queries:
            if q.user is not None and not _is_index(q.user):
                raise ConfigError(f"{type(self).__name__} speaks user indices; got user {q.user!r} (a raw id: ask "
                                  "a ModelBundle, which maps raw ids to indices)")
        users = np.asarray([-1 if q.user is None else q.user for q in queries], dtype=np.int64)
        known = (users >= 0) & (users < n_users)
        hist = [_indices(q.history, "history") for q in queries]
        from_hist = np.asarray([len(h) > 0 for h in hist]) & self.supports_history
        for h in hist:
            if len(h) and (h.min() < 0 or h.max() >= self.n_items_):
                raise UnknownIdError(f"history item index {int(h[(h < 0) | (h >= self.n_items_)][0])} is outside "
                                     f"[0, {self.n_items_})")
        out = np.empty((len(queries), int(self.n_items_)), dtype=np.float32)
        fallback: list[str | None] = [None] * len(queries)
        plain = np.flatnonzero(~from_hist)
        if len(plain):
            if self.config.on_unknown_user == "raise" and not known[plain].all():
                raise UnknownIdError(f"user {queries[plain[~known[plain]][0]].user!r} was not seen in training "
                                     "(on_unknown_user='raise')")
            out[plain] = self.score(users[plain])
            for r in plain[~known[plain]]:
                fallback[r] = "popular"
        rows = np.flatnonzero(from_hist)
        if len(rows):
            # each history becomes one row of a new matrix: a known user keeps its row (its id embedding),
            # the others get rows past the trained users (no id embedding)
            row_ids = np.where(known[rows], users[rows], n_users + np.arange(len(rows)))
            items = np.concatenate([hist[r] for r in rows])
            owner = np.repeat(row_ids, [len(hist[r]) for r in rows])
            order = np.concatenate([np.arange(len(hist[r])) for r in rows])
            h = Interactions(owner, items, int(row_ids.max()) + 1, int(self.n_items_), timestamp=order)
            out[rows] = self.score(row_ids, history=h)
        return out, fallback

    def recommend(self, query: Query) -> Recommendations:
        """The top ``query.k`` items for one query (item indices), best first.

        Items in ``query.exclude`` (and, with ``exclude_seen``, the query's
        history) never appear; ``query.filter`` (a boolean mask over items or a
        list of item indices) limits the candidates.  Items whose score is not
        finite are never recommended, so a list may be shorter than ``k``.
        """
        return self.recommend_batch([query])[0]

    def recommend_batch(self, queries: list[Query], batch_size: int | None = None) -> list[Recommendations]:
        """:meth:`recommend` for many queries, scored in blocks (the same items and scores as one by one)."""
        self._check_fitted()
        queries = list(queries)
        for q in queries:
            if not isinstance(q, Query):
                raise ConfigError(f"{type(self).__name__}.recommend expects a Query; got {type(q).__name__}")
        n = int(self.n_items_)
        bs = batch_size or max(1, min(2048, (1 << 24) // max(n, 1)))
        out: list[Recommendations] = []
        for s in range(0, len(queries), bs):
            block_q = queries[s : s + bs]
            scores, fallback = self.score_queries(block_q)
            exclude = [self._exclusions(q) for q in block_q]
            allowed = self._allowed(block_q)
            kmax = max(q.k for q in block_q)
            ids, vals = filtered_topk(scores, kmax, exclude=exclude, allowed=allowed)
            out += [Recommendations.from_top(ids[r, : q.k], vals[r, : q.k], user=q.user, fallback=fallback[r])
                    for r, q in enumerate(block_q)]
        return out

    def _exclusions(self, q: Query) -> np.ndarray:
        parts = [_indices(q.exclude, "exclude")]
        if q.exclude_seen and q.history is not None:
            parts.append(_indices(q.history, "history"))
        ex = np.concatenate(parts)
        return ex[(ex >= 0) & (ex < self.n_items_)]

    def _allowed(self, queries: list[Query]) -> np.ndarray | None:
        masks = [self.filter_mask(q.filter) for q in queries]
        if all(m is None for m in masks):
            return None
        if len(masks) == 1:
            return masks[0]
        return np.stack([np.ones(int(self.n_items_), dtype=bool) if m is None else m for m in masks])

    def filter_mask(self, rule: Any) -> np.ndarray | None:
        """A query's ``filter`` as a boolean mask over items: a mask as it is, a list of item indices as an allow-list."""
        if rule is None:
            return None
        a = np.asarray(rule)
        if a.dtype == np.bool_:
            if a.shape != (self.n_items_,):
                raise ConfigError(f"the 'filter' mask must hold one flag per item ({self.n_items_}); got shape {a.shape}")
            return a
        if a.dtype.kind not in "iu" or a.ndim != 1:
            raise ConfigError("the 'filter' at a model must be a boolean mask over items or a list of item indices; "
                              f"got {type(rule).__name__}")
        if len(a) and (a.min() < 0 or a.max() >= self.n_items_):
            raise UnknownIdError(f"filter item index {int(a[(a < 0) | (a >= self.n_items_)][0])} is outside "
                                 f"[0, {self.n_items_})")
        mask = np.zeros(int(self.n_items_), dtype=bool)
        mask[a] = True
        return mask

    # ------------------------------------------------------------ capabilities
    def vectors(self) -> Vectors | None:
        """User and item vectors whose dot product (+ item bias) is :meth:`score` for known users.

        None (the default): the model's scores are not such a product, so
        serving scores it exactly instead of through an ANN index.
        """
        return None

    def item_embeddings(self) -> np.ndarray | None:
        """``n_items × d`` item vectors (similar items by cosine), else None.

        The default is the item side of :meth:`vectors`; sequence models,
        whose scores are not a fixed user vector's products, return their
        output item embeddings.
        """
        v = self.vectors()
        return None if v is None else v.items

    def item_similarity(self) -> ItemSimilarity | None:
        """How this model relates items to items (similar items, reasons), or None when it has no view.

        The default is the cosine of :meth:`item_embeddings`; item-item models
        (EASE, ItemKNN) return their own weights.  Callers build it once.
        """
        emb = self.item_embeddings()
        return None if emb is None else ItemSimilarity.from_vectors(emb)

    def history(self, user: int) -> np.ndarray | None:
        """Item indices the model stores for known ``user``, oldest first where it keeps order; None: none stored.

        A caller that appends new events to a user's history starts from this
        (or, when None, from the training items it keeps itself).
        """
        return None

    def explain(self, query: Query, items: np.ndarray) -> list[Explanation] | None:
        """Why the model scores ``items`` (indices) as it does for an index-level ``query``: one
        :class:`~zenrec.models.explain.Explanation` per item, computed from the model's own scoring (history
        items, factors or parts, see :data:`~zenrec.models.explain.METHODS`); None (the default): not supported.

        A query with a ``history`` is explained as the model scores it (from that history); a known user
        without one, from the model's stored state.  Callers above the model
        (:meth:`~zenrec.models.bundle.ModelBundle.explain`) pass the history and reconcile the scores.
        """
        return None

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
                    **({"training": self.training_} if self.training_ else {}),
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
        """Rebuild a model of this class from its directory and manifest: ``(model, extra arrays)``.

        Every check of :mod:`zenrec.models.artifact` runs: the manifest's
        fields, the arrays' size (before loading), dtypes, finiteness and index
        bounds, and a few queries on the loaded model.
        """
        from zenrec.models.artifact import check_answers, check_arrays, check_manifest, check_sizes

        raw, n_users, n_items = check_manifest(path, manifest)
        try:
            params = dict(raw)
            for key, value in cls.retired.items():
                if key in params and params[key] == value:
                    del params[key]
            config = cls.Config(**params)
        except ValidationError as exc:
            raise ArtifactError(f"{path}/manifest.json: incompatible manifest ({_config_error(cls.__name__, exc)}); "
                                "retrain the model with this version") from None
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ArtifactError(f"{path}/manifest.json: corrupted or incompatible manifest ({exc})") from None
        arrays = load_arrays(path / "arrays.npz", check=lambda headers: check_sizes(path, headers, n_users, n_items))
        missing = set(manifest.get("arrays", [])) - set(arrays)
        if missing:
            raise ArtifactError(f"{path}/arrays.npz: missing arrays {sorted(missing)}")
        model = cls(config)
        model.n_users_, model.n_items_ = n_users, n_items
        model.fit_seconds_ = manifest.get("fit_seconds")
        model.training_ = manifest["training"] if isinstance(manifest.get("training"), dict) else None
        state = {k[6:]: v for k, v in arrays.items() if k.startswith("model.")}
        check_arrays(path, {k: v for k, v in arrays.items() if not k.startswith("extra.")},
                     {f"model.{k}": b for k, b in model._index_bounds(state).items()},
                     {f"model.{k}" for k in model._may_hold_nan(state)})
        try:
            model.popularity_ = arrays["base.popularity"]
            model._set_state(state)
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            raise ArtifactError(f"{path}/arrays.npz: does not match the manifest ({exc})") from None
        if model.popularity_.shape != (n_items,):
            raise ArtifactError(f"{path}: arrays do not match n_items={n_items} in the manifest")
        check_answers(path, model)
        return model, {k[6:]: v for k, v in arrays.items() if k.startswith("extra.")}

    def _index_bounds(self, state: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
        """State arrays (by their ``_state`` name) that hold indices, with the ``[low, high]`` they must lie in.

        Checked when a model file is loaded, before ``_set_state`` (``state``
        is what the file holds); the default (none) suits models whose indices
        live in CSR matrices, which :func:`zenrec.data.sparse.unpack_csr` checks.
        """
        return {}

    def _may_hold_nan(self, state: dict[str, np.ndarray]) -> set[str]:
        """State arrays that may hold NaN (missing feature values); every other float array must be finite."""
        return set()


def _is_index(user: Any) -> bool:
    return isinstance(user, (int, np.integer)) and not isinstance(user, (bool, np.bool_))


def _indices(values: Any, what: str) -> np.ndarray:
    """A query's item list at the model as an int64 index array (empty for None); raw ids are refused."""
    if values is None:
        return np.empty(0, dtype=np.int64)
    a = np.asarray(values).reshape(-1)
    if len(a) and a.dtype.kind not in "iu":
        raise ConfigError(f"the query's {what!r} at a model must hold item indices; got values such as "
                          f"{a[0].item()!r} (a raw id: ask a ModelBundle, which maps raw ids to indices)")
    return a.astype(np.int64)
