"""A leaderboard: several registered models fitted and evaluated on one split.

Every model is fitted on ``split.train`` (with ``split.valid`` for early
stopping), then evaluated by the same protocol on the validation and test
parts (:func:`~zenrec.evaluate.evaluator.evaluate_split`), so the rows
compare.  Fit and evaluation wall times are recorded beside the metrics.

>>> from zenrec.data import split_dataset
>>> from zenrec.datasets import load_ml100k
>>> board = compare(split_dataset(load_ml100k()), ["pop", ("ease", {"reg": 500.0})])  # doctest: +SKIP
>>> board.best("ndcg@10").label                                                      # doctest: +SKIP
'ease'
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import numpy as np

from zenrec.data.splits import Split
from zenrec.errors import ConfigError
from zenrec.evaluate.evaluator import DEFAULT_METRICS, evaluate_split

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from zenrec.models.base import Recommender, TrainOptions

__all__ = ["ModelSpec", "ProgressFn", "LeaderboardRow", "Leaderboard", "compare", "normalize_specs"]

log = logging.getLogger(__name__)

#: A model to compare: a registry name, or ``(name, hyper-parameters)``.
ModelSpec = Union[str, tuple[str, Mapping[str, Any]]]

#: ``progress(label, stage, index, total)``; ``stage`` is ``"fit"``,
#: ``"evaluate"`` or ``"done"`` for :func:`compare` (``index`` counts models
#: from 0) and ``"trial"`` for tuning (``index`` counts trials).
ProgressFn = Callable[[str, str, int, int], None]

Part = Literal["valid", "test"]

#: metrics (by name before ``@``) for which a lower value is the better one
_LOWER_IS_BETTER = {"avg_pop", "fit_seconds", "eval_seconds"}


def _higher_is_better(key: str) -> bool:
    return key.split("@", 1)[0] not in _LOWER_IS_BETTER


@dataclass
class LeaderboardRow:
    """One model's results: full hyper-parameters, wall times, metrics per part."""

    label: str
    model: str
    params: dict[str, Any]
    fit_seconds: float
    eval_seconds: float
    valid: dict[str, float]
    test: dict[str, float]
    n_valid_users: int = 0
    n_test_users: int = 0

    def metrics(self, part: Part = "test") -> dict[str, float]:
        """The metrics of one part (``"valid"`` or ``"test"``)."""
        if part not in ("valid", "test"):
            raise ConfigError(f"the 'part' parameter must be 'valid' or 'test'; got {part!r}")
        return self.valid if part == "valid" else self.test

    def value(self, key: str, part: Part = "test") -> float:
        """A metric (``"ndcg@10"``) or ``"fit_seconds"`` / ``"eval_seconds"``; NaN when absent."""
        if key in ("fit_seconds", "eval_seconds"):
            return float(getattr(self, key))
        return float(self.metrics(part).get(key, math.nan))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "label": self.label,
            "model": self.model,
            "params": dict(self.params),
            "fit_seconds": self.fit_seconds,
            "eval_seconds": self.eval_seconds,
            "n_valid_users": self.n_valid_users,
            "n_test_users": self.n_test_users,
            "valid": dict(self.valid),
            "test": dict(self.test),
        }


@dataclass
class Leaderboard:
    """Rows of :class:`LeaderboardRow` obtained under one protocol and mode.

    ``mode`` is ``"full"`` (full ranking) or ``"sampled-N"`` (N sampled
    negatives per user); sampled numbers are higher than and not comparable
    with full-ranking ones, which every rendering says.
    ``fitted`` holds the fitted models when :func:`compare` was asked to keep
    them (never serialised).
    """

    rows: list[LeaderboardRow]
    ks: tuple[int, ...] = (10, 20)
    mode: str = "full"
    protocol: str = "general"
    fitted: dict[str, Recommender] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, label: str) -> LeaderboardRow:
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(f"no row labelled {label!r}; rows: {', '.join(r.label for r in self.rows)}")

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.rows]

    @property
    def sampled(self) -> bool:
        """True when the numbers come from sampled (not full) ranking."""
        return self.mode != "full"

    def metric_keys(self, part: Part = "test") -> list[str]:
        """Every metric key present in some row, in first-seen order."""
        keys: dict[str, None] = {}
        for row in self.rows:
            keys.update(dict.fromkeys(row.metrics(part)))
        return list(keys)

    def best(self, metric: str = "ndcg@10", part: Part = "test") -> LeaderboardRow:
        """The row with the best value of ``metric`` (lowest for ``avg_pop`` and times)."""
        if not self.rows:
            raise ConfigError("the leaderboard is empty")
        known = set(self.metric_keys(part)) | {"fit_seconds", "eval_seconds"}
        if metric not in known:
            raise ConfigError(
                f"unknown metric {metric!r} for the {part} part; available: {', '.join(sorted(known))}"
            )
        vals = [(row.value(metric, part), i) for i, row in enumerate(self.rows)]
        vals = [(v, i) for v, i in vals if not math.isnan(v)]
        sign = 1.0 if _higher_is_better(metric) else -1.0
        # ties: the first row wins
        _, i = max(vals, key=lambda vi: (sign * vi[0], -vi[1]))
        return self.rows[i]

    # ---------------------------------------------------------------- exports
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: protocol, mode, ks and one dict per row."""
        return {
            "protocol": self.protocol,
            "mode": self.mode,
            "ks": list(self.ks),
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """The :meth:`to_dict` form as JSON text; written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_text(text + "\n")
            os.replace(tmp, path)  # never a half-written file
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Leaderboard:
        """Inverse of :meth:`to_dict`."""
        try:
            rows = [LeaderboardRow(**r) for r in data["rows"]]
            return cls(rows, tuple(data["ks"]), data["mode"], data["protocol"])
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a leaderboard dict ({exc})") from None

    def to_frame(self, part: Literal["valid", "test", "both"] = "test") -> pd.DataFrame:
        """One row per model, indexed by label: model, params (JSON), times, metrics.

        With ``part="both"`` metric columns are prefixed ``valid/`` and ``test/``.
        """
        import pandas as pd

        if part not in ("valid", "test", "both"):
            raise ConfigError(f"the 'part' parameter must be 'valid', 'test' or 'both'; got {part!r}")
        records = []
        for row in self.rows:
            rec: dict[str, Any] = {
                "label": row.label,
                "model": row.model,
                "params": json.dumps(row.params, sort_keys=True),
                "fit_seconds": row.fit_seconds,
                "eval_seconds": row.eval_seconds,
            }
            if part == "both":
                rec.update({f"valid/{k}": v for k, v in row.valid.items()})
                rec.update({f"test/{k}": v for k, v in row.test.items()})
            else:
                rec.update(row.metrics(part))
            records.append(rec)
        frame = pd.DataFrame.from_records(records)
        if frame.empty:
            return pd.DataFrame(columns=["model", "params", "fit_seconds", "eval_seconds"])
        frame = frame.set_index("label")
        frame.attrs.update({"mode": self.mode, "protocol": self.protocol})
        return frame

    def title(self, part: Part = "test") -> str:
        """A one-line title naming the protocol, part and ranking mode."""
        if self.sampled:
            n = self.mode.split("-", 1)[-1]
            how = f"SAMPLED ranking ({n} negatives per user) — not comparable with full ranking"
        else:
            how = "full ranking, seen items masked"
        return f"{self.protocol} split · {part} · {how}"

    def default_metric_keys(self, part: Part = "test") -> list[str]:
        """The columns a terminal table shows by default."""
        present = set(self.metric_keys(part))
        keys = [f"{m}@{k}" for k in self.ks for m in ("recall", "ndcg")]
        keys += [f"{m}@{self.ks[0]}" for m in ("mrr", "hit")]
        keys += [f"{m}@{self.ks[-1]}" for m in ("coverage", "avg_pop")]
        return [k for k in keys if k in present]

    def to_rich_table(
        self, metric_keys: Sequence[str] | None = None, part: Part = "test", times: bool = True
    ) -> Table:
        """A :class:`rich.table.Table`, best value per column in bold green.

        Sampled mode is named in the title (and the caption) so that its
        numbers are not mistaken for full-ranking ones.
        """
        from rich.table import Table

        keys = list(metric_keys) if metric_keys is not None else self.default_metric_keys(part)
        cols = keys + (["fit_seconds", "eval_seconds"] if times else [])
        table = Table(title=self.title(part), title_justify="left")
        if self.sampled:
            table.caption = f"mode {self.mode}: sampled metrics overstate full-ranking quality"
        table.add_column("model", style="bold")
        for key in cols:
            header = {"fit_seconds": "fit s", "eval_seconds": "eval s"}.get(key, key)
            table.add_column(header, justify="right")
        best: dict[str, float] = {}
        for key in cols:
            vals = [r.value(key, part) for r in self.rows]
            vals = [v for v in vals if not math.isnan(v)]
            if vals:
                best[key] = max(vals) if _higher_is_better(key) else min(vals)
        for row in self.rows:
            cells = [row.label]
            for key in cols:
                v = row.value(key, part)
                if math.isnan(v):
                    cells.append("–")
                    continue
                text = _fmt(key, v)
                cells.append(f"[bold green]{text}[/bold green]" if key in best and v == best[key] else text)
            table.add_row(*cells)
        return table


def _fmt(key: str, v: float) -> str:
    if key in ("fit_seconds", "eval_seconds"):
        return f"{v:.2f}"
    if key.startswith(("avg_pop@", "novelty@")):
        return f"{v:.2f}"
    return f"{v:.4f}"


def _short(params: Mapping[str, Any]) -> str:
    def f(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={f(v)}" for k, v in params.items())


def normalize_specs(models: Sequence[ModelSpec]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, name, params)`` per spec, every model and parameter checked first.

    Labels are the model names; a name given more than once is labelled with
    its parameters (then numbered if still ambiguous).
    """
    from zenrec.models.registry import get_model_class

    if isinstance(models, str) or (
        isinstance(models, tuple) and len(models) == 2 and isinstance(models[0], str)
        and isinstance(models[1], Mapping)
    ):
        models = [models]  # a single spec
    specs: list[tuple[str, dict[str, Any]]] = []
    for spec in models:
        if isinstance(spec, str):
            name, params = spec, {}
        elif isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(
            spec[1], Mapping
        ):
            name, params = spec[0], dict(spec[1])
        else:
            raise ConfigError(f"a model must be a registered name or a (name, params) pair; got {spec!r}")
        get_model_class(name)(**params)  # unknown model or bad parameter: fail before any fitting
        specs.append((name, params))
    if not specs:
        raise ConfigError("the 'models' parameter must name at least one model")
    names = [n for n, _ in specs]
    labels = [n if names.count(n) == 1 or not p else f"{n}({_short(p)})" for n, p in specs]
    seen: dict[str, int] = {}
    out = []
    for label, (name, params) in zip(labels, specs, strict=True):
        if labels.count(label) > 1:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label}#{seen[label]}"
        out.append((label, name, params))
    return out


def _check_eval_args(ks: Sequence[int], metrics: Sequence[str], sampled: int | None) -> tuple[int, ...]:
    """Validate evaluation arguments before anything is fitted; the sorted ks."""
    from zenrec.evaluate.metrics import ACCURACY_METRICS

    ks_in = [ks] if isinstance(ks, (int, np.integer)) else list(ks)
    if not ks_in or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k > 0 for k in ks_in):
        raise ConfigError(f"the 'ks' parameter must hold positive integers; got {ks_in}")
    unknown = [m for m in metrics if m not in ACCURACY_METRICS]
    if unknown or isinstance(metrics, str):
        raise ConfigError(
            f"the 'metrics' parameter must list metric names from {', '.join(ACCURACY_METRICS)}; got {metrics!r}"
        )
    if sampled is not None and (
        isinstance(sampled, bool) or not isinstance(sampled, (int, np.integer)) or sampled <= 0
    ):
        raise ConfigError(f"the 'sampled' parameter must be a positive number of negatives; got {sampled!r}")
    return tuple(sorted({int(k) for k in ks_in}))


def compare(
    split: Split,
    models: Sequence[ModelSpec],
    ks: Sequence[int] = (10, 20),
    options: TrainOptions | None = None,
    sampled: int | None = None,
    progress: ProgressFn | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    beyond: bool = True,
    seed: int = 0,
    keep_models: bool = False,
) -> Leaderboard:
    """Fit each model on ``split.train`` and evaluate it on the validation and test parts.

    ``models`` are registry names or ``(name, params)`` pairs; all are checked
    before anything is fitted.  ``options`` (seed, device, threads) apply to
    every fit.  ``sampled=N`` evaluates with N sampled negatives per user
    instead of full ranking, and the leaderboard says so.  ``progress`` is
    called as ``progress(label, stage, index, total)`` with stage ``"fit"``,
    ``"evaluate"`` and ``"done"``.  ``seed`` seeds the negative sampling of
    sampled mode.  With ``keep_models`` the fitted models are kept in
    :attr:`Leaderboard.fitted`.
    """
    from zenrec.models.base import TrainOptions
    from zenrec.models.registry import create_model

    if not isinstance(split, Split):
        raise ConfigError(f"the 'split' parameter must be a Split; got {type(split).__name__}")
    specs = normalize_specs(models)
    ks = _check_eval_args(ks, metrics, sampled)
    options = options or TrainOptions()
    eval_kw = {"ks": ks, "metrics": tuple(metrics), "beyond": beyond, "sampled": sampled, "seed": seed}
    rows: list[LeaderboardRow] = []
    fitted: dict[str, Recommender] = {}
    mode = "full" if sampled is None else f"sampled-{sampled}"
    total = len(specs)
    for i, (label, name, params) in enumerate(specs):
        if progress:
            progress(label, "fit", i, total)
        model = create_model(name, **params)
        t0 = time.perf_counter()
        model.fit(split.train, split.valid, options)
        fit_s = time.perf_counter() - t0
        if progress:
            progress(label, "evaluate", i, total)
        t0 = time.perf_counter()
        valid = evaluate_split(model, split, "valid", **eval_kw) if split.valid is not None else None
        test = evaluate_split(model, split, "test", **eval_kw)
        eval_s = time.perf_counter() - t0
        mode = test.mode
        rows.append(
            LeaderboardRow(
                label=label,
                model=name,
                params=model.config.model_dump(mode="json"),
                fit_seconds=fit_s,
                eval_seconds=eval_s,
                valid=dict(valid.metrics) if valid is not None else {},
                test=dict(test.metrics),
                n_valid_users=valid.n_users if valid is not None else 0,
                n_test_users=test.n_users,
            )
        )
        log.info("%s: fit %.2fs, eval %.2fs, test %s", label, fit_s, eval_s,
                 {k: round(v, 4) for k, v in test.metrics.items() if k.startswith("ndcg")})
        if keep_models:
            fitted[label] = model
        if progress:
            progress(label, "done", i, total)
    return Leaderboard(rows, ks, mode, split.protocol, fitted)
