"""A leaderboard: several registered models fitted and evaluated on one split.

Every model is fitted on ``split.train`` (with ``split.valid`` for early
stopping), then evaluated by the same protocol on the validation and test
parts (:func:`~zenrec.evaluate.evaluator.evaluate_split`), so the rows
compare.  Fit and evaluation wall times are recorded beside the metrics, and
so are the targets each part counted (the masking rule of
:mod:`~zenrec.evaluate.evaluator` removes held-out items already in the
user's history; a split may restrict targets to some event types).

Every row is also compared with the best row (by the headline metric,
``ndcg@10`` by default) user by user, per metric: a paired Wilcoxon
signed-rank p-value and a seeded bootstrap interval of the mean difference
(:mod:`~zenrec.evaluate.significance`), shown as the ``p`` column of the
table and kept in the JSON.

>>> from zenrec.data import split_dataset
>>> from zenrec.datasets import load_ml100k
>>> board = compare(split_dataset(load_ml100k()), ["pop", ("ease", {"reg": 500.0})])  # doctest: +SKIP
>>> board.best("ndcg@10").label                                                      # doctest: +SKIP
'ease'
"""

from __future__ import annotations

import functools
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
from zenrec.evaluate.significance import TEST_NAME, paired_comparisons

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.measure import Measurement
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
    #: per part, the targets counted (``EvalResult.targets``: held_out, other_type, seen, kept, users_without_target)
    targets: dict[str, dict[str, int]] = field(default_factory=dict)
    #: per part and metric, this row against the part's reference (best) row:
    #: ``{"diff", "ci_low", "ci_high", "p", "n_users"}`` (see :attr:`Leaderboard.significance`)
    significance: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    #: a neural model's per-epoch training log (``train_history_``: epoch, loss, seconds, valid); empty otherwise
    history: list[dict[str, float]] = field(default_factory=list)

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

    def p_value(self, key: str, part: Part = "test") -> float:
        """The paired p-value of ``key`` against the part's best row (1.0 for that row); NaN when not computed."""
        return float(self.significance.get(part, {}).get(key, {}).get("p", math.nan))

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
            "targets": {p: dict(c) for p, c in self.targets.items()},
            "significance": {p: {k: dict(v) for k, v in m.items()} for p, m in self.significance.items()},
            "history": [dict(h) for h in self.history],
        }


@dataclass
class Leaderboard:
    """Rows of :class:`LeaderboardRow` obtained under one protocol and mode.

    ``mode`` is ``"full"`` (full ranking) or ``"sampled-N"`` (N sampled
    negatives per user); sampled numbers are higher than and not comparable
    with full-ranking ones, which every rendering says.
    ``fitted`` holds the fitted models when :func:`compare` was asked to keep
    them (never serialised).  ``target_events`` names the event types that
    were targets (None: all).  ``headline`` is the metric that picks the best
    row; ``significance`` describes, per part, how every row was compared
    with that best row (``reference``, ``metric``, ``test``, ``confidence``,
    ``resamples``, ``seed``, ``n_users``), the numbers being in each row's
    :attr:`LeaderboardRow.significance`.  ``per_user`` holds, per part, each
    row's per-user metric values over the same users (``users``), from which
    :meth:`compute_significance` works (never serialised).
    """

    rows: list[LeaderboardRow]
    ks: tuple[int, ...] = (10, 20)
    mode: str = "full"
    protocol: str = "general"
    fitted: dict[str, Recommender] = field(default_factory=dict, repr=False)
    target_events: tuple[str, ...] | None = None
    headline: str | None = None
    significance: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_user: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict, repr=False)
    users: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

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

    def relabel(self, labels: Sequence[str]) -> None:
        """Rename the rows, in order (and every place that names them: fitted models, per-user values, references)."""
        labels = list(labels)
        if len(labels) != len(self.rows) or len(set(labels)) != len(labels):
            raise ConfigError(f"relabel needs {len(self.rows)} distinct labels; got {labels}")
        old = {r.label: new for r, new in zip(self.rows, labels, strict=True)}
        for row, new in zip(self.rows, labels, strict=True):
            row.label = new
        self.fitted = {old.get(k, k): v for k, v in self.fitted.items()}
        self.per_user = {p: {old.get(k, k): v for k, v in per.items()} for p, per in self.per_user.items()}
        for info in self.significance.values():
            info["reference"] = old.get(info.get("reference"), info.get("reference"))

    def compute_significance(
        self, metric: str | None = None, resamples: int = 1000, seed: int = 0, confidence: float = 0.95
    ) -> None:
        """Compare every row with the best row of each part, user by user, for every per-user metric.

        The best row is the one with the best ``metric`` (default: :attr:`headline`).
        Per metric, a row gets the mean per-user difference (row − best), a
        percentile bootstrap interval of it (``resamples`` resamples of the
        users, seeded with ``seed``) and the two-sided Wilcoxon signed-rank
        p-value; zero differences are dropped (Wilcoxon's rule) and a row with
        no non-zero difference — the best row itself, or an identical model —
        gets p = 1 exactly.  Needs :attr:`per_user` (kept by :func:`compare`).
        """
        metric = metric or self.headline
        if metric is None:
            raise ConfigError("no headline metric to pick the best row by; pass 'metric'")
        if not self.per_user:
            raise ConfigError("this leaderboard has no per-user values (compare(..., significance=True) keeps them)")
        self.headline = metric
        for part, per in self.per_user.items():
            ref = self.best(metric, part)  # type: ignore[arg-type]
            base = per.get(ref.label)
            if base is None or metric not in base:
                raise ConfigError(f"no per-user values of {metric!r} for {ref.label!r} on the {part} part")
            for row in self.rows:
                found = paired_comparisons(per.get(row.label, {}), base, resamples, seed, confidence)
                row.significance[part] = {key: c.to_dict() for key, c in found.items()}
            self.significance[part] = {
                "reference": ref.label, "metric": metric, "test": TEST_NAME, "confidence": confidence,
                "resamples": int(resamples), "seed": int(seed), "n_users": int(len(base[metric])),
            }

    # ---------------------------------------------------------------- exports
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: protocol, mode, ks, targets, headline, significance and one dict per row."""
        return {
            "protocol": self.protocol,
            "mode": self.mode,
            "ks": list(self.ks),
            "target_events": list(self.target_events) if self.target_events is not None else None,
            "headline": self.headline,
            "significance": {p: dict(v) for p, v in self.significance.items()},
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
        """Inverse of :meth:`to_dict`; leaderboards written before targets and significance load too."""
        try:
            rows = [LeaderboardRow(**r) for r in data["rows"]]
            targets = data.get("target_events")
            return cls(rows, tuple(data["ks"]), data["mode"], data["protocol"],
                       target_events=tuple(targets) if targets is not None else None,
                       headline=data.get("headline"), significance=dict(data.get("significance") or {}))
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
        targets = f" · targets: {', '.join(self.target_events)}" if self.target_events else ""
        return f"{self.protocol} split · {part}{targets} · {how}"

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
        numbers are not mistaken for full-ranking ones.  When the rows were
        compared with the best one, a ``p`` column follows the headline metric
        (the paired p-value against the best row, ``ref`` on that row).
        Numbers are never cut: printed narrower than it needs (an 80-column
        terminal), the table hides its last columns first — times, then the
        metric columns from the right, never the headline metric and its
        ``p`` — and names them in the caption; long model labels wrap.
        """
        keys = list(metric_keys) if metric_keys is not None else self.default_metric_keys(part)
        cols = keys + (["fit_seconds", "eval_seconds"] if times else [])
        best: dict[str, float] = {}
        for key in cols:
            vals = [r.value(key, part) for r in self.rows]
            vals = [v for v in vals if not math.isnan(v)]
            if vals:
                best[key] = max(vals) if _higher_is_better(key) else min(vals)
        columns: dict[str, tuple[str, list[str]]] = {}
        for key in cols:
            cells = []
            for row in self.rows:
                v = row.value(key, part)
                if math.isnan(v):
                    cells.append("–")
                    continue
                text = _fmt(key, v)
                cells.append(f"[bold green]{text}[/bold green]" if key in best and v == best[key] else text)
            columns[key] = ({"fit_seconds": "fit s", "eval_seconds": "eval s"}.get(key, key), cells)
        order = list(cols)
        notes = [f"mode {self.mode}: sampled metrics overstate full-ranking quality"] if self.sampled else []
        info = self.significance.get(part, {})
        p_key = self.headline if self.headline in keys and info.get("metric") == self.headline else None
        if p_key is not None:
            ref = info.get("reference")
            columns["p"] = ("p", [("ref" if r.label == ref else _fmt_p(r.p_value(p_key, part))) for r in self.rows])
            order.insert(order.index(p_key) + 1, "p")
            notes.append(f"p: per-user {p_key} vs {ref} (best), paired Wilcoxon signed-rank test")
        droppable = [c for c in reversed(cols) if c != p_key]
        return _fitting_table()(self.title(part), self.labels, columns, order, droppable, notes)


def _fmt(key: str, v: float) -> str:
    if key in ("fit_seconds", "eval_seconds"):
        return f"{v:.2f}"
    if key.startswith(("avg_pop@", "novelty@")):
        return f"{v:.2f}"
    return f"{v:.4f}"


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "–"
    return "<.001" if p < 0.001 else f"{p:.3f}"


def _cell_width(text: str) -> int:
    from rich.text import Text

    return Text.from_markup(text).cell_len


@functools.cache
def _fitting_table() -> type[Table]:
    """The table class of :meth:`Leaderboard.to_rich_table` (built on first use, so rich loads lazily)."""
    from rich.table import Table

    class FittingTable(Table):
        """A leaderboard table that, printed narrower than it needs, hides its lowest-priority columns.

        Numeric columns never wrap, so a number is shown whole or not at all;
        the hidden columns are named in the caption.
        """

        def __init__(
            self,
            title: str,
            labels: list[str],
            columns: dict[str, tuple[str, list[str]]],
            order: list[str],
            droppable: list[str],
            notes: list[str],
        ) -> None:
            super().__init__(title=title, title_justify="left", caption_justify="left")
            self._spec = (title, labels, columns, order, droppable, notes)
            _fill(self, labels, columns, order, notes, [])

        def fitted(self, max_width: int) -> Table:
            """This table, or a copy without the columns that do not fit in ``max_width``."""
            title, labels, columns, order, droppable, notes = self._spec
            shown = list(order)
            for key in droppable:
                if _needed_width(labels, columns, shown) <= max_width:
                    break
                shown.remove(key)
            if shown == order:
                return self
            table = Table(title=title, title_justify="left", caption_justify="left")
            hidden = [columns[k][0] for k in order if k not in shown]
            _fill(table, labels, columns, shown, notes, hidden)
            return table

        def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
            table = self.fitted(options.max_width)
            if table is self:
                yield from super().__rich_console__(console, options)
            else:
                yield from table.__rich_console__(console, options)

        def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
            table = self.fitted(options.max_width)
            if table is self:
                return super().__rich_measure__(console, options)
            return table.__rich_measure__(console, options)

    return FittingTable


#: the narrowest the model column may get (longer labels wrap)
_LABEL_MIN = 12


def _needed_width(labels: list[str], columns: dict[str, tuple[str, list[str]]], shown: list[str]) -> int:
    """Characters a table needs with ``shown`` columns: cells and padding (2 each), labels at their
    narrowest, and one border per column plus one."""
    label = min(max([len("model"), *(len(x) for x in labels)]), _LABEL_MIN) + 2
    cells = sum(max(_cell_width(h), *(_cell_width(c) for c in cs)) + 2 for h, cs in (columns[k] for k in shown))
    return label + cells + len(shown) + 2


def _fill(
    table: Table,
    labels: list[str],
    columns: dict[str, tuple[str, list[str]]],
    shown: list[str],
    notes: list[str],
    hidden: list[str],
) -> None:
    table.add_column("model", style="bold", overflow="fold")
    for key in shown:
        table.add_column(columns[key][0], justify="right", no_wrap=True)
    for i, label in enumerate(labels):
        table.add_row(label, *(columns[key][1][i] for key in shown))
    lines = list(notes)
    if hidden:
        lines.append(f"hidden at this width: {', '.join(hidden)}")
    if lines:
        table.caption = "\n".join(lines)


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
    headline: str | None = None,
    significance: bool = True,
    resamples: int = 1000,
    side: Any = None,
) -> Leaderboard:
    """Fit each model on ``split.train`` and evaluate it on the validation and test parts.

    ``side`` (e.g. :meth:`ItemFeatures.declared(dataset) <zenrec.features.side.ItemFeatures.declared>`)
    goes to the models that read side information (``uses_side``: the two-tower); the others fit without it.

    ``models`` are registry names or ``(name, params)`` pairs; all are checked
    before anything is fitted.  ``options`` (seed, device, threads) apply to
    every fit.  ``sampled=N`` evaluates with N sampled negatives per user
    instead of full ranking, and the leaderboard says so.  ``progress`` is
    called as ``progress(label, stage, index, total)`` with stage ``"fit"``,
    ``"evaluate"`` and ``"done"``.  ``seed`` seeds the negative sampling of
    sampled mode.  With ``keep_models`` the fitted models are kept in
    :attr:`Leaderboard.fitted`.

    The targets are those of the split (:meth:`Split.targets
    <zenrec.data.splits.Split.targets>`: every held-out event, or those of
    its target event types), less the items already in the user's masked
    history (the masking rule; the counts are in :attr:`LeaderboardRow.targets`).
    ``headline`` (``NAME@K``; default ``ndcg@10``, or ``ndcg`` at the first
    cut-off) picks the best row.  With ``significance`` every row is compared
    with the best row of each part, per metric and user by user
    (:meth:`Leaderboard.compute_significance`, ``resamples`` bootstrap
    resamples seeded with ``seed``); the per-user values stay in
    :attr:`Leaderboard.per_user`.
    """
    from zenrec.models.base import TrainOptions
    from zenrec.models.registry import create_model

    if not isinstance(split, Split):
        raise ConfigError(f"the 'split' parameter must be a Split; got {type(split).__name__}")
    specs = normalize_specs(models)
    ks = _check_eval_args(ks, metrics, sampled)
    headline = _headline(headline, ks, tuple(metrics))
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples <= 0:
        raise ConfigError(f"the 'resamples' parameter must be a positive integer; got {resamples!r}")
    options = options or TrainOptions()
    keep = bool(significance and headline is not None)
    eval_kw = {"ks": ks, "metrics": tuple(metrics), "beyond": beyond, "sampled": sampled, "seed": seed,
               "per_user_metrics": keep}
    rows: list[LeaderboardRow] = []
    fitted: dict[str, Recommender] = {}
    per_user: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    users: dict[str, np.ndarray] = {}
    mode = "full" if sampled is None else f"sampled-{sampled}"
    total = len(specs)
    for i, (label, name, params) in enumerate(specs):
        if progress:
            progress(label, "fit", i, total)
        model = create_model(name, **params)
        t0 = time.perf_counter()
        model.fit(split.train, split.valid, options, side=side if model.uses_side else None)
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
                targets={p: dict(r.targets) for p, r in (("valid", valid), ("test", test)) if r is not None},
                history=[dict(h) for h in getattr(model, "train_history_", None) or []],
            )
        )
        for p, r in (("valid", valid), ("test", test)):
            if keep and r is not None and r.users is not None:
                if p in users and not np.array_equal(users[p], r.users):  # never expected: users depend on data only
                    raise ConfigError(f"{label} was evaluated on other {p} users than the rows before it")
                users[p] = r.users
                per_user.setdefault(p, {})[label] = r.per_user
        log.info("%s: fit %.2fs, eval %.2fs, test %s", label, fit_s, eval_s,
                 {k: round(v, 4) for k, v in test.metrics.items() if k.startswith("ndcg")})
        if keep_models:
            fitted[label] = model
        if progress:
            progress(label, "done", i, total)
    board = Leaderboard(rows, ks, mode, split.protocol, fitted, target_events=split.target_events,
                        headline=headline, per_user=per_user, users=users)
    if keep:
        board.compute_significance(headline, resamples=int(resamples), seed=seed)
    return board


def _headline(headline: str | None, ks: tuple[int, ...], metrics: tuple[str, ...]) -> str | None:
    """The metric that picks the best row: the given one (checked), else ``ndcg@10`` or its nearest kin."""
    if headline is not None:
        name, sep, k = str(headline).partition("@")
        if not sep or name not in metrics or not k.isdigit() or int(k) not in ks:
            raise ConfigError(f"the 'headline' parameter must be NAME@K with NAME one of the metrics "
                              f"({', '.join(metrics)}) and K one of the ks {list(ks)}; got {headline!r}")
        return headline
    if not metrics:
        return None
    name = "ndcg" if "ndcg" in metrics else metrics[0]
    return f"{name}@{10 if 10 in ks else ks[0]}"
