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
   :func:`zenrec.evaluate.evaluator.evaluate`.
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
largest event timestamp).  Store event types weigh as in ``zenrec ingest``
(:data:`~zenrec.data.schema.DEFAULT_EVENT_WEIGHTS`); a type not listed there
weighs 1.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from zenrec.data.dataset import Dataset
from zenrec.data.interactions import Interactions
from zenrec.data.schema import DEFAULT_EVENT_WEIGHTS
from zenrec.data.vocab import Vocabulary
from zenrec.errors import ArtifactError, ConfigError, DataError
from zenrec.evaluate import metrics as M
from zenrec.evaluate.evaluator import evaluate
from zenrec.models.base import TrainOptions
from zenrec.models.registry import create_model
from zenrec.pipeline import ModelBundle, train_bundle
from zenrec.store.events import EventStore
from zenrec.store.registry import ModelRegistry, VersionInfo

__all__ = [
    "retrain",
    "RetrainReport",
    "TrainingLog",
    "EvalWindow",
    "WindowChoice",
    "read_store_events",
    "gather_training_log",
    "select_window",
    "build_window",
    "window_scorer",
    "evaluate_window",
    "parse_metric",
    "TRAINING_LOG_FILE",
    "DECISIONS",
]

#: the training log inside a version directory written by :func:`retrain`
TRAINING_LOG_FILE = "training_log.npz"
#: every value :attr:`RetrainReport.decision` takes
DECISIONS = ("promoted", "not_promoted", "rejected", "nothing_to_evaluate")
#: store events read per query
_PAGE = 50_000
#: float noise allowed in the gate on top of ``tolerance`` (means of the same numbers summed in another order)
_EPS = 1e-12
#: the cut-off of the metrics always reported beside the gate metric
_REPORT_K = 10


# ---------------------------------------------------------------- the training log


def _text(values: Any) -> np.ndarray:
    """Ids as a unicode array (never object dtype, which would need pickle)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    return np.asarray([str(v) for v in arr.tolist()], dtype=str) if len(arr) else np.empty(0, dtype="<U1")


@dataclass(frozen=True)
class TrainingLog:
    """The raw rows a version is trained on, in order: base rows first, then store events by ``seq``.

    Ids are text (a base dataset's integer ids become their decimal form).
    ``weight`` is the strength the model trains on; ``seq`` is the store seq,
    0 for rows of the base dataset.
    """

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    weight: np.ndarray
    event: np.ndarray
    seq: np.ndarray

    _COLUMNS = ("user", "item", "timestamp", "weight", "event", "seq")

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def empty(cls) -> TrainingLog:
        """A log without rows."""
        return cls(_text([]), _text([]), np.empty(0), np.empty(0, np.float32), _text([]), np.empty(0, np.int64))

    @classmethod
    def from_dataset(cls, ds: Dataset) -> TrainingLog:
        """Rows of a dataset from ``zenrec ingest`` (its cleaned weights; seq 0)."""
        inter = ds.interactions
        names = np.asarray(list(inter.event_names) or [""], dtype=str)
        codes = np.clip(inter.event.astype(np.int64), 0, len(names) - 1)
        return cls(
            _text(ds.users.ids(inter.user)), _text(ds.items.ids(inter.item)),
            inter.timestamp.astype(np.float64), inter.weight.astype(np.float32), names[codes],
            np.zeros(len(inter), dtype=np.int64),
        )

    @classmethod
    def from_records(cls, records: Sequence[Any]) -> TrainingLog:
        """Rows of store events (:class:`~zenrec.store.events.EventRecord`), in the order given."""
        if not records:
            return cls.empty()
        types = [r.type for r in records]
        return cls(
            _text([r.user for r in records]), _text([r.item for r in records]),
            np.asarray([r.timestamp for r in records], dtype=np.float64),
            np.asarray([DEFAULT_EVENT_WEIGHTS.get(t.lower(), 1.0) for t in types], dtype=np.float32),
            _text(types), np.asarray([r.seq for r in records], dtype=np.int64),
        )

    def concat(self, other: TrainingLog) -> TrainingLog:
        """This log's rows followed by ``other``'s."""
        return TrainingLog(*(np.concatenate([getattr(self, c), getattr(other, c)]) for c in self._COLUMNS))

    def subset(self, mask: np.ndarray) -> TrainingLog:
        """The rows where ``mask`` holds, in order."""
        return TrainingLog(*(getattr(self, c)[mask] for c in self._COLUMNS))

    def equals(self, other: TrainingLog) -> bool:
        """Same rows in the same order."""
        return all(np.array_equal(getattr(self, c), getattr(other, c)) for c in self._COLUMNS)

    @property
    def last_event_seq(self) -> int:
        """The largest store seq in the log (0 when it holds no store event)."""
        return int(self.seq.max()) if len(self) else 0

    @property
    def trained_until(self) -> float | None:
        """The largest event timestamp, None for an empty log."""
        return float(self.timestamp.max()) if len(self) else None

    def save(self, path: str | Path) -> None:
        """Write the log as a compressed ``.npz`` of plain arrays (no pickle)."""
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **{c: getattr(self, c) for c in self._COLUMNS})

    @classmethod
    def load(cls, path: str | Path) -> TrainingLog:
        """Read a log written by :meth:`save` (never unpickling anything)."""
        import zipfile

        try:
            with np.load(path, allow_pickle=False) as z:
                cols = [z[c] for c in cls._COLUMNS]
        except FileNotFoundError:
            raise ArtifactError(f"{path}: missing") from None
        except (ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise ArtifactError(f"{path}: corrupted training log ({exc})") from None
        if len({len(c) for c in cols}) != 1:
            raise ArtifactError(f"{path}: corrupted training log (columns of different lengths)")
        return cls(*cols)

    def to_dataset(self, titles: Mapping[str, str] | None = None, name: str = "retrain") -> Dataset:
        """Code the rows into a :class:`Dataset` (ids in first-seen order), with item titles when given."""
        if len(self) == 0:
            raise DataError("no events to train on")
        users, u = Vocabulary.from_values(self.user, "user")
        items, i = Vocabulary.from_values(self.item, "item")
        names, codes = np.unique(self.event, return_inverse=True)
        if len(names) > np.iinfo(np.int8).max:  # more types than the event code holds: drop the codes
            names, codes = np.empty(0, dtype=str), np.zeros(len(self), dtype=np.int64)
        inter = Interactions(
            u, i, len(users), len(items), np.floor(self.timestamp).astype(np.int64), self.weight,
            codes.astype(np.int8), tuple(str(n) for n in names),
        )
        table = None
        if titles:
            table = pd.DataFrame({"title": pd.Series([titles.get(x, "") for x in items.all_ids], dtype="string")})
        return Dataset(inter, users, items, table, name=name)


def read_store_events(store: EventStore, after_seq: int = 0, page: int = _PAGE) -> TrainingLog:
    """Every event stored after ``after_seq``, in ``seq`` order, read page by page (``seq`` ascending)."""
    parts = []
    seq = int(after_seq)
    while True:
        records = store.events_since(seq, limit=page)
        if not records:
            break
        parts.append(TrainingLog.from_records(records))
        seq = records[-1].seq
        if len(records) < page:
            break
    out = TrainingLog.empty()
    for p in parts:
        out = out.concat(p)
    return out


def _titles(*sources: tuple[Vocabulary, np.ndarray | None]) -> dict[str, str]:
    """Raw item id (text) → title from (vocabulary, titles) pairs; the first source wins."""
    out: dict[str, str] = {}
    for vocab, titles in reversed(sources):
        if titles is not None:
            out.update(zip(_text(vocab.all_ids).tolist(), np.asarray(titles, dtype=str).tolist(), strict=True))
    return out


# ---------------------------------------------------------------- the evaluation window


@dataclass(frozen=True)
class WindowChoice:
    """Which log rows form the evaluation window, and how they were chosen."""

    mask: np.ndarray
    kind: str  # since_last_event_seq, since_trained_until, since_created or recent
    description: str
    start_seq: int | None = None
    start_ts: float | None = None


def _iso(ts: float) -> str:
    """Epoch seconds as an ISO-8601 UTC time."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _created(info: VersionInfo, manifest: Mapping[str, Any] | None) -> float:
    """When a version's model was written: its manifest's ``created_at``, else its registration time."""
    raw = (manifest or {}).get("created_at")
    try:
        return datetime.fromisoformat(str(raw)).timestamp()
    except (TypeError, ValueError):
        return info.created


def select_window(log: TrainingLog, info: VersionInfo, manifest: Mapping[str, Any] | None = None,
                  window: float | None = None) -> WindowChoice:
    """The evaluation window for the current version ``info``.

    By default the rows it was not trained on: ``seq > last_event_seq``; when
    that is unknown, ``timestamp > trained_until`` (or after the model's
    creation time).  ``window`` (seconds) picks the rows of the last
    ``window`` seconds before the newest event instead.
    """
    if window is not None:
        end = float(log.timestamp.max()) if len(log) else 0.0
        start = end - window
        return WindowChoice(log.timestamp > start, "recent",
                            f"the last {window / 86400:g} days of events, after {_iso(start)}", None, start)
    if info.last_event_seq is not None:
        s = info.last_event_seq
        return WindowChoice(log.seq > s, "since_last_event_seq",
                            f"events stored after seq {s}, the last one {info.id} was trained on", s, None)
    if info.trained_until is not None:
        t = info.trained_until
        return WindowChoice(log.timestamp > t, "since_trained_until",
                            f"events after {_iso(t)}, the last one {info.id} was trained on", None, t)
    t = _created(info, manifest)
    return WindowChoice(log.timestamp > t, "since_created", f"events after {_iso(t)}, when {info.id} was written",
                        None, t)


@dataclass(frozen=True)
class EvalWindow:
    """Who is evaluated on what: rows of users, columns of raw item ids every model is ranked over."""

    users: np.ndarray  # raw ids of the evaluated users (row r)
    items: np.ndarray  # raw ids of the ranked items (column j): every item of the data or of a model
    truth: sp.csr_matrix  # users × items: window items the user had not had before
    seen: sp.csr_matrix  # users × items: the user's pre-window items (masked)
    hist_user: np.ndarray  # pre-window events of the evaluated users, oldest first: their row
    hist_item: np.ndarray  # ... and raw item id
    n_events: int  # events in the window
    n_window_users: int  # distinct users with events in the window


def _pairs(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """A 0/1 matrix of the (row, col) pairs (repeats merged)."""
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def build_window(log: TrainingLog, in_window: np.ndarray, extra_items: Sequence[Any] | np.ndarray = ()) -> EvalWindow:
    """Truth, masks and pre-window histories of the window's users.

    ``extra_items`` are raw ids of items a model knows beyond the log (e.g.
    the current version's catalogue): they are ranked too, so that no model
    gets a shorter list to rank than it really has.
    """
    pre, win = log.subset(~in_window), log.subset(in_window)
    items = pd.Index(pd.unique(np.concatenate([log.item, _text(extra_items)])))
    users = pd.Index(pd.unique(win.user))
    shape = (len(users), len(items))
    pu = users.get_indexer(pre.user)
    known = pu >= 0
    seen = _pairs(pu[known], items.get_indexer(pre.item[known]), shape)
    new = _pairs(users.get_indexer(win.user), items.get_indexer(win.item), shape)
    truth = (new - new.multiply(seen)).tocsr()
    truth.eliminate_zeros()
    keep = np.flatnonzero(np.diff(truth.indptr) > 0)
    row_of = np.full(len(users), -1, dtype=np.int64)
    row_of[keep] = np.arange(len(keep))
    hist = np.flatnonzero(known)
    hist = hist[row_of[pu[hist]] >= 0]
    hist = hist[np.lexsort((pre.seq[hist], pre.timestamp[hist]))]  # oldest first; stable among ties
    return EvalWindow(
        _text(users.to_numpy()[keep]), _text(items.to_numpy()), truth[keep], seen[keep],
        row_of[pu[hist]], pre.item[hist], int(in_window.sum()), len(users),
    )


def window_scorer(bundle: ModelBundle, ew: EvalWindow) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """A ``rows → scores over ew.items`` function for one model, and how it scores ("history" or "stored state").

    Models with ``supports_history`` score each user from its pre-window
    events the model knows, as the server does (``score(users,
    history=...)``; a user unknown to the model is a new row past its
    trained users).  Other models use their stored state.  Either way a user
    without anything the model can read gets the model's popularity
    fallback, and items the model does not know score ``-inf`` (never ranked).
    """
    m = bundle.model
    n_items = int(m.n_items_)
    col = bundle.items.index(ew.items, missing="mask")
    ranked = np.flatnonzero(col >= 0)
    model_cols = col[ranked]
    pop = np.asarray(m.popularity_, dtype=np.float32)
    u_model = bundle.users.index(ew.users, missing="mask")
    if m.supports_history:
        hi = bundle.items.index(ew.hist_item, missing="mask")
        ok = hi >= 0
        has = np.bincount(ew.hist_user[ok], minlength=len(ew.users)) > 0
        unknown = u_model < 0
        rows = u_model.copy()
        rows[unknown] = int(m.n_users_) + np.arange(int(unknown.sum()))
        hist = Interactions(rows[ew.hist_user[ok]], hi[ok], int(m.n_users_) + int(unknown.sum()), n_items,
                            timestamp=np.arange(int(ok.sum()), dtype=np.int64))

        def model_scores(local: np.ndarray) -> np.ndarray:
            out = np.tile(pop, (len(local), 1))
            h = has[local]
            if h.any():
                out[h] = m.score(rows[local[h]], history=hist)
            return out

        how = "history"
    else:

        def model_scores(local: np.ndarray) -> np.ndarray:
            out = np.tile(pop, (len(local), 1))
            u = u_model[local]
            k = u >= 0
            if k.any():
                out[k] = m.score(u[k])
            return out

        how = "stored state"

    def score(local: np.ndarray) -> np.ndarray:
        local = np.asarray(local, dtype=np.int64)
        block = np.full((len(local), len(ew.items)), -np.inf, dtype=np.float32)
        block[:, ranked] = model_scores(local)[:, model_cols]
        return block

    return score, how


def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` → ``("ndcg", 10)``; unknown names and bad cut-offs raise :class:`ConfigError`."""
    name, _, k = str(metric).strip().lower().partition("@")
    if name not in M.ACCURACY_METRICS or not k.isdigit() or int(k) <= 0:
        raise ConfigError(f"unknown metric {metric!r}: expected NAME@K with NAME one of "
                          f"{', '.join(M.ACCURACY_METRICS)} and K a positive integer, e.g. ndcg@10")
    return name, int(k)


def evaluate_window(bundle: ModelBundle, ew: EvalWindow, metric: str = "ndcg@10") -> tuple[dict[str, float], str]:
    """The model's ``metric`` plus ndcg, recall and hit at 10 on the window, and how it scored users."""
    name, k = parse_metric(metric)
    score, how = window_scorer(bundle, ew)
    names = list(dict.fromkeys([name, "ndcg", "recall", "hit"]))
    res = evaluate(score, ew.truth, [ew.seen], ks=sorted({k, _REPORT_K}), metrics=names, beyond=False)
    keys = dict.fromkeys([f"{name}@{k}", *(f"{n}@{_REPORT_K}" for n in ("ndcg", "recall", "hit"))])
    return {key: res.metrics[key] for key in keys}, how


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


def _training_log_of(info: VersionInfo) -> TrainingLog:
    """The training log kept in a version written by :func:`retrain` (ConfigError for other versions)."""
    f = info.path / str(info.extra.get("training_log") or TRAINING_LOG_FILE)
    if not f.is_file() or info.last_event_seq is None:
        raise ConfigError(
            f"the current version {info.id} has no training log and last_event_seq (it was not written by "
            "`zenrec retrain`); run --mode full once"
        )
    return TrainingLog.load(f)


def _window_seconds(window: float | timedelta | None) -> float | None:
    """A window as positive seconds, or None."""
    if window is None:
        return None
    if isinstance(window, timedelta):
        window = window.total_seconds()
    if isinstance(window, bool) or not isinstance(window, numbers.Real) or not (0 < float(window) < math.inf):
        raise ConfigError(f"the 'window' parameter must be a positive duration in seconds; got {window!r}")
    return float(window)


def gather_training_log(reg: ModelRegistry, info: VersionInfo | None, mode: str, base: str | Path | None,
                        store_url: str | None) -> tuple[TrainingLog, int, Dataset | None]:
    """The training log of a run, how many store events it read, and the base dataset (full mode).

    ``full``: the base dataset's rows, then every stored event.  ``incremental``:
    the current version ``info``'s training log, then only the events stored
    after its ``last_event_seq``.
    """
    if mode == "incremental":
        if info is None:
            raise ConfigError("incremental mode starts from the current version, and none is promoted; "
                              "run --mode full first")
        if base is not None:
            raise ConfigError("a base dataset is read only in full mode; incremental mode starts from the "
                              "current version's training log")
    base_ds = Dataset.load(base) if base is not None else None
    log = TrainingLog.from_dataset(base_ds) if base_ds is not None else TrainingLog.empty()
    after = 0
    if info is not None and mode == "incremental":
        log = _training_log_of(info)
        after = int(info.last_event_seq or 0)
    store = EventStore(store_url or reg.events_url())
    try:
        new = read_store_events(store, after)
    finally:
        store.close()
    log = log.concat(new)
    if len(log) == 0:
        raise DataError(f"nothing to train on: the event store {store.url} holds no events"
                        + (" and no base dataset was given" if base is None else ""))
    return log, len(new), base_ds


def retrain(
    registry_root: str | Path,
    model: str,
    params: Mapping[str, Any] | None = None,
    base: str | Path | None = None,
    store_url: str | None = None,
    mode: str = "full",
    window: float | timedelta | None = None,
    metric: str = "ndcg@10",
    tolerance: float = 0.0,
    seed: int = 2020,
    promote: bool = True,
) -> RetrainReport:
    """Train ``model`` on the registry's data, judge it against the served version, promote only if not worse.

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
    log, n_read, base_ds = gather_training_log(reg, info, mode, base, store_url)
    titles = _titles(*([(base_ds.items, _dataset_titles(base_ds))] if base_ds is not None else []),
                     *([(cur_bundle.items, cur_bundle.titles)] if cur_bundle is not None else []))

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
        ds = log.to_dataset(titles, name=f"retrain-{mode}")
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

    cand_ds = pre.to_dataset(titles, name=f"retrain-{mode}-evaluation")
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


def _dataset_titles(ds: Dataset) -> np.ndarray | None:
    """Item titles of a dataset's item table, in item order, when it has them."""
    t = ds.item_table
    if t is None or "title" not in t.columns:
        return None
    return t["title"].astype("string").fillna("").to_numpy(dtype=str)


def _leak_notes(log: TrainingLog, choice: WindowChoice, info: VersionInfo) -> list[str]:
    """Warn when a recent-events window overlaps what the current version was trained on (in its favour)."""
    if info.last_event_seq is not None:
        n = int(((log.seq <= info.last_event_seq) & choice.mask).sum())
        if n:
            return [f"{n} of the window's {int(choice.mask.sum())} events are at or below {info.id}'s last_event_seq "
                    f"{info.last_event_seq} (base rows included): it was probably trained on them, which favours it"]
        return []
    if info.trained_until is not None and choice.start_ts is not None and info.trained_until > choice.start_ts:
        return [f"{info.id} was trained on events until {_iso(info.trained_until)}, inside the window, "
                "which favours it"]
    return []
