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

Several processes or machines tune together through a shared optuna storage
(``tune(..., storage="postgresql+psycopg://...")``): each model's study is
one database study whose ``n_trials`` the processes split between them
(:mod:`zenrec.experiments.studies` holds how).  Every trial records its
validation value, fit seconds and worker in its user attributes, so any
process, or :func:`collect` afterwards, rebuilds the same results from the
study; the leaderboard refits the best parameters, so the same trials give the
same leaderboard as one process would.
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
from zenrec.experiments.studies import (
    StudyTerms,
    TrialPool,
    default_study_name,
    open_storage,
    split_fingerprint,
)

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from zenrec.models.base import TrainOptions

__all__ = [
    "SEARCH_SPACES",
    "SearchSpace",
    "TuneResult",
    "collect",
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
    state, seconds, ``fit_seconds``, ``worker`` (``HOST:PID`` of the process
    that ran it) and one ``params_*`` column per tuned parameter; it holds the
    finished trials only.  ``seconds`` spans the first trial's start to the
    last one's end.
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
    #: the shared study the trials are in (None: an in-memory study of this process)
    study: str | None = None

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
            "study": self.study,
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


def _trials_frame(trials: Sequence[optuna.trial.FrozenTrial]) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for t in trials:
        row: dict[str, Any] = {
            "number": t.number,
            "value": t.value if t.value is not None else math.nan,
            "state": t.state.name,
            "seconds": t.duration.total_seconds() if t.duration is not None else math.nan,
            "fit_seconds": t.user_attrs.get("fit_seconds", math.nan),
            "worker": t.user_attrs.get("worker"),
        }
        row.update({f"params_{k}": v for k, v in t.params.items()})
        rows.append(row)
    columns = ["number", "value", "state", "seconds", "fit_seconds", "worker"]
    return pd.DataFrame.from_records(rows, columns=columns if not rows else None)


def _objective(
    split: Split,
    name: str,
    fixed: dict[str, Any],
    metric: str,
    seed: int,
    options: TrainOptions,
    sampled: int | None,
    side: Any,
) -> Callable[[optuna.Trial], float]:
    """``trial → validation value``; the trial's user attributes get ``fit_seconds``, ``eval_seconds`` and
    ``valid`` (the metric and its value), so that any process can rebuild the results from the study."""
    from zenrec.models.registry import create_model

    mname, k = parse_metric(metric)
    space = get_search_space(name)

    def objective(trial: optuna.Trial) -> float:
        params = {**space(_FixedTrial(trial, fixed) if fixed else trial), **fixed}
        model = create_model(name, **params)
        t0 = time.perf_counter()
        model.fit(split.train, split.valid, options, side=side if model.uses_side else None)
        t1 = time.perf_counter()
        res = evaluate_split(
            model, split, "valid", ks=(k,), metrics=(mname,), beyond=False, sampled=sampled, seed=seed
        )
        value = float(res.metrics[metric])
        trial.set_user_attr("fit_seconds", t1 - t0)
        trial.set_user_attr("eval_seconds", time.perf_counter() - t1)
        trial.set_user_attr("valid", {metric: value})
        return value

    return objective


def _result(label: str, name: str, fixed: dict[str, Any], metric: str, pool: TrialPool) -> TuneResult:
    """The outcome of a study from its finished trials (the same in every process that reads it)."""
    from optuna.trial import TrialState

    trials = pool.finished()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        if not trials:
            raise ZenrecError(f"tuning {label}: study {pool.name!r} has no finished trial yet")
        raise ZenrecError(f"tuning {label}: every one of {len(trials)} trials failed; see the log")
    best = max(done, key=lambda t: (t.value, -t.number))  # ties: the earlier trial
    first = trials[0]
    default_value = first.value if first.number == 0 and first.state == TrialState.COMPLETE else math.nan
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    seconds = (max(ends) - min(starts)).total_seconds() if starts and ends else math.nan
    return TuneResult(
        model=name,
        metric=metric,
        best_params={**_defaults(name, fixed), **best.params, **fixed},
        best_value=float(best.value),  # type: ignore[arg-type]
        default_value=float(default_value),  # type: ignore[arg-type]
        n_trials=len(trials),
        seconds=seconds,
        trials=_trials_frame(trials),
        best_trial=best.number,
        study=pool.name if pool.shared else None,
    )


def _trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number`` of a shared study: different per trial, the same in every process."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(number)]).generate_state(1)[0])


def _prepare(
    split: Split,
    model_names: Sequence[ModelSpec],
    metric: str,
    sampled: int | None,
    storage: str | optuna.storages.BaseStorage | None,
    study_name: str | None,
) -> tuple[list[tuple[str, str, dict[str, Any]]], Any, str | None, str | None]:
    """Checked specs, the opened storage, the study-name prefix and the split's fingerprint (shared studies)."""
    if not isinstance(split, Split):
        raise ConfigError(f"the 'split' parameter must be a Split; got {type(split).__name__}")
    if split.valid is None or len(split.valid) == 0:
        raise ConfigError("tuning needs a split with a validation part (the test part is never tuned on)")
    mname, k = parse_metric(metric)
    _check_eval_args((k,), (mname,), sampled)
    specs = normalize_specs(model_names)
    for _, name, _ in specs:
        get_search_space(name)  # fail before any trial
    if storage is None:
        if study_name is not None:
            raise ConfigError("the 'study_name' parameter names a study in a shared storage; give 'storage' too")
        return specs, None, None, None
    if isinstance(storage, str):
        storage = open_storage(storage)
    if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
        raise ConfigError(f"the 'study_name' parameter must be a non-empty string; got {study_name!r}")
    return specs, storage, study_name or default_study_name(split), split_fingerprint(split)


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
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
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

    ``storage`` (an SQLAlchemy URL such as ``sqlite:///tune.db`` or
    ``postgresql+psycopg://user@host/db``, or an optuna storage from
    :func:`~zenrec.experiments.studies.open_storage`) shares each model's study
    with every other process tuning it: ``n_trials`` is then the study's
    total, which the processes split between them (see
    :mod:`zenrec.experiments.studies`), and ``timeout`` applies to this
    process.  Each model's study is ``STUDY_NAME:LABEL``; ``study_name``
    defaults to :func:`~zenrec.experiments.studies.default_study_name`.  After
    its last trial a process waits for the others' running trials, then
    returns the results of every finished trial of the study, whoever ran it:
    the same results in every process, and the same as one process running
    those trials.
    """
    import optuna

    from zenrec.models.base import TrainOptions

    if not isinstance(n_trials, (int, np.integer)) or isinstance(n_trials, bool) or n_trials <= 0:
        raise ConfigError(f"the 'n_trials' parameter must be a positive integer; got {n_trials!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"the 'timeout' parameter must be a positive number of seconds; got {timeout!r}")
    specs, backend, prefix, fingerprint = _prepare(split, model_names, metric, sampled, storage, study_name)
    options = options or TrainOptions(seed=seed)
    pools: list[tuple[str, str, dict[str, Any], TrialPool]] = []
    with _quiet_optuna():
        for label, name, fixed in specs:
            terms = StudyTerms(name, fixed, metric, sampled, options.seed, fingerprint or "", int(n_trials))
            defaults = {k: v for k, v in _defaults(name, fixed).items() if k not in fixed}
            if backend is None:
                pool = TrialPool.open(None, f"zenrec-{label}", terms, defaults, optuna.samplers.TPESampler(seed=seed))
                per_trial = None
            else:
                pool = TrialPool.open(backend, f"{prefix}:{label}", terms, defaults,
                                      optuna.samplers.TPESampler(seed=seed, constant_liar=True))

                def per_trial(number: int) -> optuna.samplers.BaseSampler:
                    # one seeded sampler per trial number: processes never draw the same parameters in lockstep,
                    # and the constant liar keeps them away from the others' running trials
                    return optuna.samplers.TPESampler(seed=_trial_seed(seed, number), constant_liar=True)

            def on_trial(trial: optuna.Trial, label: str = label) -> None:
                if progress:
                    progress(label, "trial", trial.number, int(n_trials))

            # a trial whose parameters make the model fail (e.g. a singular EASE) is
            # recorded as FAIL and still counts against the budget
            pool.run(_objective(split, name, fixed, metric, seed, options, sampled, side), timeout,
                     (ZenrecError, FloatingPointError), per_trial, on_trial)
            pools.append((label, name, fixed, pool))
        results: dict[str, TuneResult] = {}
        for label, name, fixed, pool in pools:
            pool.wait_for_running()
            results[label] = r = _result(label, name, fixed, metric, pool)
            log.info("tuned %s: %s %.4f (defaults %.4f) with %s", label, metric, r.best_value,
                     r.default_value, r.best_params)
    return results


def collect(
    split: Split,
    model_names: Sequence[ModelSpec],
    storage: str | optuna.storages.BaseStorage,
    study_name: str | None = None,
    metric: str = "ndcg@10",
    seed: int = 2020,
    options: TrainOptions | None = None,
    sampled: int | None = None,
) -> dict[str, TuneResult]:
    """The results of shared studies from their finished trials, running none: label → :class:`TuneResult`.

    The arguments name the studies and their terms as in :func:`tune`
    (``storage`` is required); a study that is missing or was tuned under other
    terms raises :class:`ConfigError`.  Trials still running or waiting are
    left out (the log says how many).
    """
    from zenrec.models.base import TrainOptions

    if storage is None:
        raise ConfigError("collecting needs the 'storage' that holds the studies")
    specs, backend, prefix, fingerprint = _prepare(split, model_names, metric, sampled, storage, study_name)
    options = options or TrainOptions(seed=seed)
    results: dict[str, TuneResult] = {}
    with _quiet_optuna():
        for label, name, fixed in specs:
            terms = StudyTerms(name, fixed, metric, sampled, options.seed, fingerprint or "", 0)
            pool = TrialPool.load(backend, f"{prefix}:{label}", terms)
            counts = pool.counts()
            pending = counts.get("RUNNING", 0) + counts.get("WAITING", 0)
            if pending:
                log.warning("%s: %d trial(s) still running or waiting are not in the results", pool.name, pending)
            results[label] = _result(label, name, fixed, metric, pool)
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
