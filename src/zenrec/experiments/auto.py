"""``zenrec auto``: the best of the registered models for a protocol, tuned within a time budget and saved.

:func:`auto` splits the dataset by the protocol, tunes each candidate model
(:data:`AUTO_MODELS`, cheapest first) on the validation part with an equal
share of what is left of the budget, picks the winner on the validation
metric (never on test), refits it on every event as ``zenrec train`` would
and saves it (:func:`~zenrec.experiments.best.save_best`), with the command
that reproduces it.  The budget bounds the tuning: a model's study stops
starting trials when its share is spent, but a trial in progress finishes,
and the final refit comes on top.  EASE is left out of catalogues larger than
:data:`EASE_MAX_ITEMS` items (its dense item × item inverse would not fit a
laptop's memory).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zenrec.errors import ConfigError
from zenrec.experiments.best import save_best
from zenrec.experiments.leaderboard import ProgressFn
from zenrec.experiments.tune import TuneResult, tune
from zenrec.features.side import ItemFeatures

if TYPE_CHECKING:
    from zenrec.data.dataset import Dataset
    from zenrec.models.base import TrainOptions
    from zenrec.models.bundle import ModelBundle

__all__ = ["AUTO_MODELS", "EASE_MAX_ITEMS", "AutoResult", "auto", "auto_models"]

#: candidates per protocol, cheapest first (so a short budget still gets the strong cheap baselines)
AUTO_MODELS: dict[str, tuple[str, ...]] = {
    "general": ("pop", "itemknn", "ease", "als"),
    "temporal": ("pop", "itemknn", "ease", "als"),
    "sequential": ("pop", "transition", "itemknn", "sasrec"),
}
#: largest catalogue EASE is tried on (its n_items² inverse: 15,000 items ≈ 1.8 GB per float64 matrix)
EASE_MAX_ITEMS = 15_000


@dataclass
class AutoResult:
    """What :func:`auto` tuned, the winner's label and the saved bundle."""

    results: dict[str, TuneResult]
    best: str
    bundle: ModelBundle
    seconds: float
    skipped: dict[str, str]


def auto_models(protocol: str, n_items: int) -> tuple[list[str], dict[str, str]]:
    """The candidate models of ``protocol`` for a catalogue of ``n_items``, and those skipped with the reason."""
    if protocol not in AUTO_MODELS:
        raise ConfigError(f"the 'protocol' parameter must be one of {', '.join(AUTO_MODELS)}; got {protocol!r}")
    models, skipped = [], {}
    for name in AUTO_MODELS[protocol]:
        if name == "ease" and n_items > EASE_MAX_ITEMS:
            skipped[name] = f"{n_items:,} items > {EASE_MAX_ITEMS:,}: its item × item inverse is too large"
            continue
        models.append(name)
    return models, skipped


def auto(
    dataset: Dataset,
    path: str | Path,
    protocol: str = "general",
    budget: float = 600.0,
    metric: str = "ndcg@10",
    trials: int = 20,
    seed: int = 2020,
    models: Sequence[str] | None = None,
    options: TrainOptions | None = None,
    progress: ProgressFn | None = None,
    data_ref: str | Path | None = None,
    split_kwargs: dict[str, Any] | None = None,
) -> AutoResult:
    """Tune the protocol's candidates within ``budget`` seconds, save the best on validation at ``path``.

    ``models`` replaces the candidates; ``trials`` caps each model's trials;
    ``split_kwargs`` go to :func:`~zenrec.data.splits.split_dataset` (e.g.
    ``target_events``).  See the module docstring for how the budget is spent.
    """
    from zenrec.data.splits import split_dataset
    from zenrec.models.base import TrainOptions

    if not budget > 0:
        raise ConfigError(f"the 'budget' parameter must be a positive number of seconds; got {budget!r}")
    if models is None:
        names, skipped = auto_models(protocol, len(dataset.items))
    else:
        names, skipped = list(models), {}
    if not names:
        raise ConfigError("no candidate model to tune")
    options = options or TrainOptions(seed=seed)
    t0 = time.perf_counter()
    split = split_dataset(dataset, protocol, seed, **(split_kwargs or {}))  # type: ignore[arg-type]
    side = ItemFeatures.declared(dataset)  # the two-tower reads the product columns declared at ingest
    results: dict[str, TuneResult] = {}
    for i, name in enumerate(names):
        left = budget - (time.perf_counter() - t0)
        if left <= 0 and results:
            skipped[name] = "the budget was spent"
            continue
        share = max(left, 1.0) / (len(names) - i)
        results.update(tune(split, [name], n_trials=trials, metric=metric, seed=seed, timeout=share, options=options,
                            progress=progress, side=side))
    label, bundle = save_best(dataset, results, path, options, data_ref=data_ref)
    return AutoResult(results, label, bundle, time.perf_counter() - t0, skipped)
