"""Tuning carried forward: the best tuned model saved as ``zenrec train`` would write it, and its parameters
read back by ``train`` and ``retrain``.

* :func:`best_result` — the winner of a tuning run, chosen on the validation
  metric it was tuned on (never on test);
* :func:`save_best` — that model refitted on every event of the dataset (what
  ``zenrec train`` does) and saved with the tuning outcome and the command
  that reproduces it in its manifest (``tuning``);
* :func:`train_command` — that command;
* :func:`params_from` — ``(model, params)`` from a ``zenrec tune --json``
  file, a model directory or a ``{"model": ..., "params": {...}}`` file
  (``zenrec train --params-from``).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zenrec.errors import ConfigError

if TYPE_CHECKING:
    from zenrec.data.dataset import Dataset
    from zenrec.experiments.tune import TuneResult
    from zenrec.models.base import TrainOptions
    from zenrec.models.bundle import ModelBundle

__all__ = ["best_result", "save_best", "train_command", "params_from", "changed_params"]


def best_result(results: Mapping[str, TuneResult]) -> tuple[str, TuneResult]:
    """``(label, result)`` with the highest validation value (ties: the first listed)."""
    done = [(label, r) for label, r in results.items() if math.isfinite(r.best_value)]
    if not done:
        raise ConfigError("no tuning result to choose from")
    return max(done, key=lambda lr: lr[1].best_value)


def changed_params(model: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that differ from the model's defaults (what a command must spell out)."""
    from zenrec.models.registry import get_model_class

    defaults = get_model_class(model)().config.model_dump(mode="json")
    return {k: v for k, v in params.items() if k not in defaults or defaults[k] != v}


def train_command(data: str | Path, model: str, params: Mapping[str, Any], output: str | Path,
                  seed: int = 2020) -> str:
    """The ``zenrec train`` command line that fits ``model`` with ``params`` on ``data``.

    Values are written as JSON, which ``--param`` reads back exactly (floats keep every digit).
    """
    parts = ["zenrec", "train", str(data), "--model", model]
    for k, v in changed_params(model, params).items():
        parts += ["--param", f"{k}={json.dumps(v)}"]
    if seed != 2020:
        parts += ["--seed", str(seed)]
    parts += ["-o", str(output)]
    return " ".join(shlex.quote(p) for p in parts)


def save_best(dataset: Dataset, results: Mapping[str, TuneResult], path: str | Path,
              options: TrainOptions | None = None, data_ref: str | Path | None = None) -> tuple[str, ModelBundle]:
    """Refit the best tuned model on every event of ``dataset`` (as ``zenrec train`` does) and save it at ``path``.

    The manifest's ``tuning`` records the label, model, parameters, the
    validation metric and value it won with, every model's value, and
    ``command``: the ``zenrec train`` line that reproduces the model
    (``data_ref`` names the dataset directory in it).  Returns ``(label, bundle)``.
    """
    from zenrec.models.base import TrainOptions
    from zenrec.models.bundle import train_bundle

    label, r = best_result(results)
    options = options or TrainOptions()
    bundle = train_bundle(dataset, r.model, r.best_params, options)
    command = train_command(data_ref or dataset.name, r.model, r.best_params, path, options.seed)
    tuning = {
        "label": label, "model": r.model, "params": r.best_params, "metric": r.metric,
        "valid_value": r.best_value, "default_value": r.default_value, "trials": r.n_trials,
        "candidates": {lb: res.best_value for lb, res in results.items()}, "command": command,
    }
    bundle.save(path, metadata={"dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint,
                                "tuning": tuning})
    return label, bundle


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON file ({exc})") from None


def params_from(path: str | Path, model: str | None = None) -> tuple[str, dict[str, Any]]:
    """``(model, params)`` read from a tuning outcome or a saved model.

    ``path`` is a ``zenrec tune --json`` file (the result of ``model``, or
    without it the best on validation), a model directory or its
    ``manifest.json`` (its model and parameters), or a JSON object
    ``{"model": NAME, "params": {...}}``.  A ``model`` that the file does
    not hold fails, naming what it holds.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    data = _read_json(p)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: expected a JSON object (a `zenrec tune --json` file or a model manifest)")
    if isinstance(data.get("tuning"), Mapping) and data["tuning"] and "model" not in data:
        tuning = data["tuning"]
        try:
            values = {label: float(r["best_value"]) for label, r in tuning.items()}
            if model is None:
                label = max(values, key=lambda lb: values[lb] if math.isfinite(values[lb]) else -math.inf)
            else:
                matches = [lb for lb, r in tuning.items() if lb == model or r["model"] == model]
                if not matches:
                    raise ConfigError(f"{p}: holds no tuning of {model!r}; it holds {', '.join(tuning)}")
                label = max(matches, key=lambda lb: values[lb])
            r = tuning[label]
            return str(r["model"]), dict(r["best_params"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{p}: not a `zenrec tune --json` file ({type(exc).__name__}: {exc})") from None
    if isinstance(data.get("model"), str) and isinstance(data.get("params"), Mapping):
        name = data["model"]
        if model is not None and model != name:
            raise ConfigError(f"{p}: holds parameters of {name!r}, not {model!r}")
        return name, dict(data["params"])
    raise ConfigError(f"{p}: expected a `zenrec tune --json` file, a model directory or manifest, or "
                      '{"model": NAME, "params": {...}}')
