"""Hyper-parameter tuning with optuna: the same trial budget for every model.

A fair comparison tunes every model equally: each gets ``n_trials`` trials
(and the same ``timeout``, if any) of a seeded TPE sampler, whose objective
is one validation metric (:func:`~zenrec.evaluate.evaluator.evaluate_split`
with ``part="valid"``; the test part is never looked at).  The first trial of
every study is the model's default parameters, so tuning can only match or
beat the defaults on validation.

A model's search space is a function ``trial → params``.  It is looked up
first as a ``search_space`` static method on the model class (so a new model
brings its own), then in :data:`SEARCH_SPACES`; :func:`register_search_space`
adds one at run time.  Spaces include each default value, so the enqueued
default trial lies inside them.

Refitting the best parameters and testing them is the caller's choice:
:func:`tuned_leaderboard` does it and returns a
:class:`~zenrec.experiments.leaderboard.Leaderboard`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from zenrec.data.splits import Split
from zenrec.errors import ConfigError, ZenrecError
from zenrec.evaluate.evaluator import evaluate_split
from zenrec.evaluate.metrics import ACCURACY_METRICS
from zenrec.experiments.leaderboard import (
    Leaderboard,
    ModelSpec,
    ProgressFn,
    _check_eval_args,
    compare,
    normalize_specs,
)

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from zenrec.models.base import TrainOptions

__all__ = [
    "SEARCH_SPACES",
    "SearchSpace",
    "TuneResult",
    "get_search_space",
    "parse_metric",
    "register_search_space",
    "tune",
    "tuned_leaderboard",
]

log = logging.getLogger(__name__)

SearchSpace = Callable[["optuna.Trial"], dict[str, Any]]


def _pop_space(trial: optuna.Trial) -> dict[str, Any]:
    return {}


def _itemknn_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "k": trial.suggest_int("k", 10, 1000, log=True),
        "shrink": trial.suggest_float("shrink", 0.0, 100.0),
        "alpha": trial.suggest_float("alpha", 0.0, 1.0),
    }


def _ease_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "reg": trial.suggest_float("reg", 10.0, 5000.0, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "user_weighting": trial.suggest_float("user_weighting", 0.0, 1.0),
    }


def _als_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "factors": trial.suggest_int("factors", 16, 256, log=True),
        "regularization": trial.suggest_float("regularization", 1e-3, 100.0, log=True),
        "alpha": trial.suggest_float("alpha", 0.1, 50.0, log=True),
        "iterations": trial.suggest_int("iterations", 5, 30),
    }


def _lmf_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "factors": trial.suggest_int("factors", 16, 256, log=True),
        "lr": trial.suggest_float("lr", 1e-4, 5e-2, log=True),
        "negatives": trial.suggest_int("negatives", 1, 16, log=True),
        "embedding_l2": trial.suggest_float("embedding_l2", 1e-8, 1e-2, log=True),
    }


def _transition_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "window": trial.suggest_int("window", 1, 10),
        "decay": trial.suggest_float("decay", 0.1, 1.0),
    }


def _sequential_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "weight_decay": trial.suggest_float("weight_decay", 0.0, 1e-3),
    }


def _sasrec_space(trial: optuna.Trial) -> dict[str, Any]:
    return {**_sequential_space(trial), "blocks": trial.suggest_int("blocks", 1, 3)}


def _bert4rec_space(trial: optuna.Trial) -> dict[str, Any]:
    return {**_sasrec_space(trial), "mask_prob": trial.suggest_float("mask_prob", 0.1, 0.6)}


def _twotower_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "id_dropout": trial.suggest_float("id_dropout", 0.0, 0.6),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "history_dropout": trial.suggest_float("history_dropout", 0.0, 0.5),
    }


def _multitask_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "embedding_l2": trial.suggest_float("embedding_l2", 1e-8, 1e-3, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "click_loss_weight": trial.suggest_float("click_loss_weight", 0.1, 2.0),
    }


#: model name → ``trial → params``; a model class's own ``search_space`` wins.
SEARCH_SPACES: dict[str, SearchSpace] = {
    "pop": _pop_space,
    "itemknn": _itemknn_space,
    "ease": _ease_space,
    "als": _als_space,
    "lmf": _lmf_space,
    "transition": _transition_space,
    "gru4rec": _sequential_space,
    "sasrec": _sasrec_space,
    "bert4rec": _bert4rec_space,
    "twotower": _twotower_space,
    "multitask": _multitask_space,
}


def register_search_space(name: str, space: SearchSpace) -> None:
    """Add or replace the search space of a registered model."""
    from zenrec.models.registry import get_model_class

    get_model_class(name)
    if not callable(space):
        raise ConfigError(f"a search space must be a callable trial → params; got {type(space).__name__}")
    SEARCH_SPACES[name] = space


def get_search_space(name: str) -> SearchSpace:
    """The search space of model ``name`` (its class's ``search_space``, else :data:`SEARCH_SPACES`)."""
    from zenrec.models.registry import get_model_class

    cls = get_model_class(name)
    own = getattr(cls, "search_space", None)
    if callable(own):
        return own
    try:
        return SEARCH_SPACES[name]
    except KeyError:
        raise ConfigError(
            f"model {name!r} has no search space to tune; give its class a `search_space(trial)` "
            "static method or call zenrec.experiments.tune.register_search_space"
        ) from None


def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` → ``("ndcg", 10)``, checked against the accuracy metrics."""
    name, sep, k = str(metric).partition("@")
    if not sep or name not in ACCURACY_METRICS or not k.isdigit() or int(k) <= 0:
        raise ConfigError(
            f"the 'metric' parameter must look like NAME@K with NAME one of "
            f"{', '.join(ACCURACY_METRICS)} and K a positive integer; got {metric!r}"
        )
    return name, int(k)


@dataclass
class TuneResult:
    """The outcome of tuning one model on the validation part.

    ``best_params`` are the complete parameters to refit with (fixed ones
    included); ``default_value`` is the validation value of the default
    parameters (trial 0); ``trials`` has one row per trial: number, value,
    state, seconds and one ``params_*`` column per tuned parameter.
    """

    model: str
    metric: str
    best_params: dict[str, Any]
    best_value: float
    default_value: float
    n_trials: int
    seconds: float
    trials: pd.DataFrame = field(repr=False)
    best_trial: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the trials as a list of records)."""
        trials = self.trials.copy()
        return {
            "model": self.model,
            "metric": self.metric,
            "best_params": self.best_params,
            "best_value": self.best_value,
            "default_value": self.default_value,
            "best_trial": self.best_trial,
            "n_trials": self.n_trials,
            "seconds": self.seconds,
            "trials": trials.astype(object).where(trials.notna(), None).to_dict(orient="records"),
        }


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """optuna logs at WARNING inside this block; the caller's verbosity is restored after."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


class _FixedTrial:
    """A trial seen through fixed parameters: ``suggest_*`` of a fixed name returns
    its value without adding it to the search, everything else is the real trial's."""

    def __init__(self, trial: optuna.Trial, fixed: Mapping[str, Any]) -> None:
        self._trial = trial
        self._fixed = fixed

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._trial, attr)
        if not attr.startswith("suggest_"):
            return target

        def suggest(name: str, *args: Any, **kwargs: Any) -> Any:
            if name in self._fixed:
                return self._fixed[name]
            return target(name, *args, **kwargs)

        return suggest


def _defaults(name: str, fixed: Mapping[str, Any]) -> dict[str, Any]:
    from zenrec.models.registry import get_model_class

    params = get_model_class(name)(**fixed).config.model_dump()
    params.pop("on_unknown_user", None)
    return params


def _trials_frame(study: optuna.Study) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for t in study.trials:
        row: dict[str, Any] = {
            "number": t.number,
            "value": t.value if t.value is not None else math.nan,
            "state": t.state.name,
            "seconds": t.duration.total_seconds() if t.duration is not None else math.nan,
        }
        row.update({f"params_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame.from_records(rows, columns=["number", "value", "state", "seconds"] if not rows else None)


def _tune_one(
    split: Split,
    name: str,
    fixed: dict[str, Any],
    n_trials: int,
    metric: str,
    seed: int,
    timeout: float | None,
    options: TrainOptions,
    sampled: int | None,
    progress: ProgressFn | None,
    label: str,
    side: Any = None,
) -> TuneResult:
    import optuna

    from zenrec.models.registry import create_model

    mname, k = parse_metric(metric)
    space = get_search_space(name)

    def objective(trial: optuna.Trial) -> float:
        params = {**space(_FixedTrial(trial, fixed) if fixed else trial), **fixed}
        model = create_model(name, **params)
        model.fit(split.train, split.valid, options, side=side if model.uses_side else None)
        res = evaluate_split(
            model, split, "valid", ks=(k,), metrics=(mname,), beyond=False, sampled=sampled, seed=seed
        )
        value = res.metrics[metric]
        if progress:
            progress(label, "trial", trial.number, n_trials)
        return value

    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name=f"zenrec-{label}")
    defaults = {k: v for k, v in _defaults(name, fixed).items() if k not in fixed}
    study.enqueue_trial(defaults)
    t0 = time.perf_counter()
    # a trial whose parameters make the model fail (e.g. a singular EASE) is
    # recorded as FAIL and still counts against the budget
    study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(ZenrecError, FloatingPointError))
    seconds = time.perf_counter() - t0
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ZenrecError(f"tuning {label}: every one of {len(study.trials)} trials failed; see the log")
    best = max(done, key=lambda t: (t.value, -t.number))  # ties: the earlier trial
    first = study.trials[0]
    default_value = first.value if first.state == optuna.trial.TrialState.COMPLETE else math.nan
    best_params = {**_defaults(name, fixed), **best.params, **fixed}
    return TuneResult(
        model=name,
        metric=metric,
        best_params=best_params,
        best_value=float(best.value),
        default_value=float(default_value),
        n_trials=len(study.trials),
        seconds=seconds,
        trials=_trials_frame(study),
        best_trial=best.number,
    )


def tune(
    split: Split,
    model_names: Sequence[ModelSpec],
    n_trials: int = 20,
    metric: str = "ndcg@10",
    seed: int = 2020,
    timeout: float | None = None,
    options: TrainOptions | None = None,
    sampled: int | None = None,
    progress: ProgressFn | None = None,
    side: Any = None,
) -> dict[str, TuneResult]:
    """Tune each model on ``split.valid`` with the same budget: label → :class:`TuneResult`.

    ``side`` goes to the models that read side information, as in :func:`compare`.

    ``model_names`` are registry names or ``(name, fixed_params)`` pairs; fixed
    parameters are not tuned (e.g. ``("lmf", {"epochs": 20})``).  Each model
    gets ``n_trials`` trials of a TPE sampler seeded with ``seed`` (and at
    most ``timeout`` seconds, per model); trial 0 is the default
    parameters.  ``metric`` (``NAME@K``) is maximised on validation with
    training items masked; the targets are the split's (only its target
    event types, when it has some: ``split_dataset(..., target_events=...)``),
    less the items already in the user's training history.  ``options`` (seed, device, threads) apply to every
    fit.  ``progress(label, "trial", trial_number, n_trials)`` is called after
    each trial.
    """
    from zenrec.models.base import TrainOptions

    if not isinstance(split, Split):
        raise ConfigError(f"the 'split' parameter must be a Split; got {type(split).__name__}")
    if split.valid is None or len(split.valid) == 0:
        raise ConfigError("tuning needs a split with a validation part (the test part is never tuned on)")
    if not isinstance(n_trials, (int, np.integer)) or isinstance(n_trials, bool) or n_trials <= 0:
        raise ConfigError(f"the 'n_trials' parameter must be a positive integer; got {n_trials!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"the 'timeout' parameter must be a positive number of seconds; got {timeout!r}")
    mname, k = parse_metric(metric)
    _check_eval_args((k,), (mname,), sampled)
    specs = normalize_specs(model_names)
    for _, name, _ in specs:
        get_search_space(name)  # fail before any trial
    options = options or TrainOptions(seed=seed)
    results: dict[str, TuneResult] = {}
    with _quiet_optuna():
        for label, name, fixed in specs:
            results[label] = _tune_one(
                split, name, fixed, int(n_trials), metric, seed, timeout, options, sampled, progress, label, side
            )
            r = results[label]
            log.info("tuned %s: %s %.4f (defaults %.4f) with %s", label, metric, r.best_value,
                     r.default_value, r.best_params)
    return results


def tuned_leaderboard(
    split: Split,
    results: Mapping[str, TuneResult],
    ks: Sequence[int] = (10, 20),
    options: TrainOptions | None = None,
    sampled: int | None = None,
    progress: ProgressFn | None = None,
    **compare_kwargs: Any,
) -> Leaderboard:
    """Refit every model with its best parameters and evaluate it (valid and test) by :func:`compare`.

    Rows keep the labels of ``results``.
    """
    if not results:
        raise ConfigError("the 'results' parameter holds no tuning result")
    specs = [(r.model, dict(r.best_params)) for r in results.values()]
    board = compare(split, specs, ks=ks, options=options, sampled=sampled, progress=progress, **compare_kwargs)
    board.relabel(list(results))  # rows, fitted models, per-user values and the significance reference
    return board
