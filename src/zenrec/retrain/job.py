"""Retraining from the event store, gated by an evaluation against the served version.

:func:`retrain` (``zenrec retrain REGISTRY --model ease``) runs four steps:

1. **Data** — a *training log* of raw rows (user, item, timestamp, weight,
   event type, store seq).  Mode ``full`` reads the base dataset (a
   ``zenrec ingest`` directory, optional) followed by every store event in
   ``seq`` order.  Mode ``incremental`` starts from the current version's own
   training log and reads only the store events with ``seq`` greater than its
   ``last_event_seq``, so a large store is not re-read.  For the same data
   both modes produce the same log, row for row.
2. **Window** — the events the current version has not been trained on:
   ``seq > last_event_seq`` (or, for versions without one, a timestamp after
   its ``trained_until`` or its creation time).  ``window=SECONDS`` picks the
   most recent events instead.
3. **Evaluation** — an *evaluation candidate* (same model and parameters) is
   fitted on the rows before the window.  It and the current version each
   rank every item they know for the window's users, from pre-window history
   only (models with ``supports_history`` read it through
   ``score(users, history=...)``, as the server does; the others use their
   stored state), with each user's pre-window items masked.  The truth is the
   user's window items not seen before.  A user or item a model does not know
   it simply cannot rank: unknown users get its popularity fallback, unknown
   items are misses — the same rule for both models.  Metrics come from
   :func:`zenrec.evaluate.evaluator.evaluate`.  Window events that answer
   lists the current version served (their ``list_id`` was one of its lists)
   favour it, since users acted on what it showed them; the report's notes
   count them.
4. **Gate** — the candidate passes when its metric is at least the current
   version's minus ``tolerance``.  Then the model is fitted once more on *all*
   rows (window included), registered and promoted.  Otherwise the
   evaluation candidate (the model that was judged) is registered for
   inspection and the current version keeps serving.

Without a current version the first version is trained on all rows,
registered and promoted without evaluation.  An empty window (no event the
current version has not seen) decides ``nothing_to_evaluate``: nothing is
trained, registered or promoted; pass ``window`` to compare on the most
recent events anyway.

Every version written here keeps its training log in its directory
(``training_log.npz``: plain arrays, no pickle) and records in
``registry.json`` its ``last_event_seq`` (the largest store seq it was
trained on: a server replays only later events) and ``trained_until`` (the
largest event timestamp).  Store event types are read through the event
vocabulary of the served version (else the base dataset's; see
:class:`~zenrec.data.events.EventTypes`): an alias counts as its type and
weighs as it did at ingest; a stored type the vocabulary does not know is
left out, and the report's notes count it.  Each new version carries the
vocabulary forward.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from zenrec.data.dataset import Dataset
from zenrec.data.events import EventTypes
from zenrec.errors import ConfigError
from zenrec.models.base import TrainOptions
from zenrec.models.bundle import ModelBundle, train_bundle
from zenrec.models.registry import create_model
from zenrec.retrain.log import (
    TRAINING_LOG_FILE,
    TrainingLog,
    _dataset_titles,
    _titles,
    gather_training_log,
    integer_ids_lost,
)
from zenrec.retrain.window import (
    _leak_notes,
    _window_seconds,
    build_window,
    evaluate_window,
    parse_metric,
    select_window,
)
from zenrec.store.registry import ModelRegistry

__all__ = ["retrain", "RetrainReport", "DECISIONS"]

#: every value :attr:`RetrainReport.decision` takes
DECISIONS = ("promoted", "not_promoted", "rejected", "nothing_to_evaluate")
#: float noise allowed in the gate on top of ``tolerance`` (means of the same numbers summed in another order)
_EPS = 1e-12


# ---------------------------------------------------------------- the report


@dataclass
class RetrainReport:
    """What :func:`retrain` did and why.

    ``decision`` is one of :data:`DECISIONS`; ``reason`` says why, with the
    numbers.  ``version`` is the version this run registered (None when it
    registered nothing) and ``registered`` what it is: ``"all data"`` (the
    model refitted on every row, window included) or ``"evaluation
    candidate"`` (the model judged, trained on the rows before the window).
    ``candidate`` and ``current`` hold the window metrics; ``scoring`` says
    whether each model read the pre-window history or used its stored state.
    """

    registry: str
    model: str
    params: dict[str, Any]
    mode: str
    decision: str
    reason: str
    promoted: bool
    version: str | None
    registered: str | None
    current_version: str | None
    served_version: str | None
    metric: str
    tolerance: float
    candidate: dict[str, float] = field(default_factory=dict)
    current: dict[str, float] = field(default_factory=dict)
    scoring: dict[str, str] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)
    events_read: int = 0
    training_events: int = 0
    last_event_seq: int | None = None
    trained_until: float | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


# ---------------------------------------------------------------- registering


class _VersionWriter:
    """Saves a bundle and its training log into the registry's staged directory (both land atomically)."""

    def __init__(self, bundle: ModelBundle, log: TrainingLog, metadata: dict[str, Any]) -> None:
        self.bundle, self.log, self.metadata = bundle, log, metadata

    def save(self, path: str | Path) -> Path:
        """Write the bundle to ``path``, then the training log inside it."""
        out = self.bundle.save(path, metadata=self.metadata)
        self.log.save(Path(path) / TRAINING_LOG_FILE)
        return out


def _register(reg: ModelRegistry, bundle: ModelBundle, log: TrainingLog, ds: Dataset, metrics: dict[str, float],
              note: str, summary: dict[str, Any]) -> str:
    """Add ``bundle`` with its training log; ``registry.json`` gets last_event_seq and trained_until."""
    extra = {
        "last_event_seq": log.last_event_seq,
        "trained_until": log.trained_until,
        "training_log": TRAINING_LOG_FILE,
        "training_events": len(log),
        "retrain": summary,
    }
    metadata = {"dataset": ds.name, "dataset_fingerprint": ds.fingerprint}
    return reg.add(_VersionWriter(bundle, log, metadata), metrics=metrics, note=note, extra=extra)


def _with_item_content(ds: Dataset, base: Dataset | None) -> Dataset:
    """``ds`` with the product columns the base dataset declared at ingest (and its cold items), so a retrained
    two-tower reads the same content; unchanged when the base declares none."""
    if base is None or not base.item_columns or base.item_table is None:
        return ds
    key = "__zenrec_item_id"
    ids = base.items.to_array()
    table = base.item_table.copy()
    table.insert(0, key, ids if ds.items.is_integer else ids.astype(str))
    return ds.with_item_table(table, key, base.item_columns)


def _open_registry(root: str | Path) -> ModelRegistry:
    """An existing registry root (never creates one: a typo must not start an empty registry)."""
    p = Path(root)
    if not p.exists():
        raise ConfigError(f"{p}: no such model registry (create the directory to start a new one)")
    if not p.is_dir():
        raise ConfigError(f"{p}: not a directory; expected a model registry root")
    if (p / "manifest.json").is_file():
        raise ConfigError(f"{p}: is a model directory, not a model registry root")
    return ModelRegistry(p)


def retrain(
    registry_root: str | Path,
    model: str | None = None,
    params: Mapping[str, Any] | None = None,
    base: str | Path | None = None,
    store_url: str | None = None,
    mode: str = "full",
    window: float | timedelta | None = None,
    metric: str = "ndcg@10",
    tolerance: float = 0.0,
    seed: int = 2020,
    promote: bool = True,
    reuse_params: bool = True,
) -> RetrainReport:
    """Train ``model`` on the registry's data, judge it against the served version, promote only if not worse.

    ``model`` defaults to the served version's model.  With ``reuse_params``
    (the default) a model of the served version's kind starts from the
    served version's parameters (e.g. those ``zenrec tune --save-best``
    chose) and ``params`` change only the ones they name; otherwise
    ``params`` are taken alone over the model's defaults.

    ``base`` is a dataset directory from ``zenrec ingest`` read before the
    store's events (mode ``full`` only); ``store_url`` defaults to the
    registry's ``events.db``.  ``window`` (seconds or a ``timedelta``)
    evaluates on the most recent events instead of those stored after the
    current version was trained.  The candidate passes when its ``metric``
    (``NAME@K``) is at least the current version's minus ``tolerance``
    (negative: it must win by that much).  ``promote=False`` registers a
    passing version without promoting it.  See the module docstring for the
    whole procedure; the returned report says what happened and why.
    """
    t0 = time.perf_counter()
    reg = _open_registry(registry_root)
    metric_name, metric_k = parse_metric(metric)
    metric = f"{metric_name}@{metric_k}"
    params = dict(params or {})
    if model is not None:
        create_model(model, **params)  # an unknown model or parameter fails before any data is read
    if mode not in ("full", "incremental"):
        raise ConfigError(f"the 'mode' parameter must be 'full' or 'incremental'; got {mode!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not math.isfinite(tolerance):
        raise ConfigError(f"the 'tolerance' parameter must be a finite number; got {tolerance!r}")
    seconds = _window_seconds(window)
    options = TrainOptions(seed=seed)

    cur = reg.current()
    info = reg.info(cur.version) if cur is not None else None
    cur_bundle = ModelBundle.load(info.path) if info is not None else None
    notes: list[str] = []
    if model is None:
        if cur_bundle is None:
            raise ConfigError("no version is served to take the model from; name the model to train")
        model = cur_bundle.model.name
    if reuse_params and cur_bundle is not None and info is not None and cur_bundle.model.name == model:
        served = {k: v for k, v in cur_bundle.model.config.model_dump(mode="json").items()}
        changed = sorted(k for k, v in params.items() if served.get(k) != v)
        params = {**served, **params}
        create_model(model, **params)
        notes.append(f"parameters of the served version {info.id}"
                     + (f", with {', '.join(changed)} changed" if changed else "")
                     + " (reuse_params=False / --default-params starts from the defaults)")
    dropped: dict[str, int] = {}
    log, n_read, base_ds = gather_training_log(reg, info, mode, base, store_url,
                                               cur_bundle.events if cur_bundle is not None else None, dropped)
    # the vocabulary declared at ingest travels from version to version
    events = cur_bundle.events if cur_bundle is not None else base_ds.events if base_ds is not None else EventTypes()
    if dropped:
        notes.append(f"left out {sum(dropped.values()):,} stored events of types the event vocabulary does not know ("
                     + ", ".join(f"{t!r} ×{n}" for t, n in sorted(dropped.items(), key=lambda kv: -kv[1])[:5])
                     + f"); accepted: {events.accepted()}")
    titles = _titles(*([(base_ds.items, _dataset_titles(base_ds))] if base_ds is not None else []),
                     *([(cur_bundle.items, cur_bundle.titles)] if cur_bundle is not None else []))
    # a version keeps the id types of the data it descends from (the served one, else the base dataset)
    origin = cur_bundle if cur_bundle is not None else base_ds
    integer_ids = (origin.users.is_integer, origin.items.is_integer) if origin is not None else (False, False)
    for kind in integer_ids_lost(log, integer_ids):
        notes.append(f"{kind} ids are no longer all integers (events posted other ids): the new version's {kind} "
                     "ids are text, so clients read them as JSON strings")

    report = RetrainReport(
        registry=str(reg.root), model=model, params=params, mode=mode, decision="", reason="", promoted=False,
        version=None, registered=None, current_version=cur.version if cur else None,
        served_version=cur.version if cur else None, metric=metric, tolerance=float(tolerance),
        events_read=n_read, notes=notes,
    )

    def finish() -> RetrainReport:
        report.seconds = time.perf_counter() - t0
        return report

    def summary() -> dict[str, Any]:
        return {"mode": mode, "params": params, "decision": report.decision, "reason": report.reason,
                "compared_with": report.current_version, "current_metrics": report.current,
                "window": {k: v for k, v in report.window.items() if k != "description"}}

    def register_all(metrics: dict[str, float], note: str) -> str:
        ds = _with_item_content(log.to_dataset(titles, name=f"retrain-{mode}", integer_ids=integer_ids,
                                               events=events), base_ds)
        bundle = train_bundle(ds, model, params, options)
        report.registered, report.training_events = "all data", len(log)
        report.last_event_seq, report.trained_until = log.last_event_seq, log.trained_until
        vid = _register(reg, bundle, log, ds, metrics, note, summary())
        report.version = vid
        return vid

    if info is None:
        report.decision = "promoted" if promote else "not_promoted"
        report.reason = "no current version: the first version is registered without evaluation" + (
            " and promoted" if promote else "; promotion disabled")
        vid = register_all({}, f"retrain {mode}: first version")
        if promote:
            reg.promote(vid, reason=f"retrain: {report.reason}")
            report.promoted, report.served_version = True, vid
        return finish()

    choice = select_window(log, info, cur_bundle.manifest if cur_bundle else None, seconds)
    report.window = {"kind": choice.kind, "description": choice.description, "start_seq": choice.start_seq,
                     "start_ts": choice.start_ts, "events": int(choice.mask.sum()), "users": 0,
                     "evaluated_users": 0}
    if seconds is not None:
        notes.extend(_leak_notes(log, choice, info))
    answered = int((choice.mask & (log.served_by == info.id)).sum())
    if answered:  # the feedback loop: users acted on what the current version showed them
        notes.append(f"{answered:,} of the window's {int(choice.mask.sum()):,} events answer lists the current "
                     f"version {info.id} served: the comparison favours it (see docs/guide/retraining.md)")
    if not choice.mask.any():
        report.decision = "nothing_to_evaluate"
        report.reason = (f"no event in the window ({choice.description}): nothing trained, {info.id} stays; "
                         "give a window of recent days to compare anyway")
        return finish()
    pre = log.subset(~choice.mask)
    if len(pre) == 0:
        raise ConfigError(f"no events before the evaluation window ({choice.description}) to train an evaluation "
                          "candidate on: give the base dataset the current version was trained on, or a window")
    assert cur_bundle is not None
    ew = build_window(log, choice.mask, extra_items=cur_bundle.items.all_ids)
    report.window["users"], report.window["evaluated_users"] = ew.n_window_users, len(ew.users)
    if len(ew.users) == 0:
        report.decision = "nothing_to_evaluate"
        report.reason = (f"the window's {ew.n_events} events hold no item a user had not had before: nothing "
                         f"trained, {info.id} stays")
        return finish()

    cand_ds = _with_item_content(pre.to_dataset(titles, name=f"retrain-{mode}-evaluation", integer_ids=integer_ids,
                                                events=events), base_ds)
    cand = train_bundle(cand_ds, model, params, options)
    report.candidate, report.scoring["candidate"] = evaluate_window(cand, ew, metric)
    report.current, report.scoring["current"] = evaluate_window(cur_bundle, ew, metric)
    c, v = report.candidate[metric], report.current[metric]
    on = f"on {len(ew.users)} users / {ew.n_events} window events"
    if c >= v - float(tolerance) - _EPS:
        verdict = f"candidate {metric} {c:.4f} >= current {info.id} {v:.4f} - tolerance {tolerance:g} {on}"
        report.decision = "promoted" if promote else "not_promoted"
        report.reason = verdict + ("" if promote else "; promotion disabled")
        vid = register_all(report.candidate, f"retrain {mode}: {verdict}")
        if promote:
            reg.promote(vid, reason=f"retrain: {verdict}")
            report.promoted, report.served_version = True, vid
            if cur is not None and cur.traffic:
                notes.append(f"the promotion ended the traffic split {cur.traffic}: {vid} now serves every user")
    else:
        report.decision = "rejected"
        report.reason = (f"candidate {metric} {c:.4f} < current {info.id} {v:.4f} - tolerance {tolerance:g} {on}; "
                         f"{info.id} stays")
        report.registered, report.training_events = "evaluation candidate", len(pre)
        report.last_event_seq, report.trained_until = pre.last_event_seq, pre.trained_until
        report.version = _register(reg, cand, pre, cand_ds, report.candidate,
                                   f"retrain {mode}: rejected, {report.reason}", summary())
    return finish()
