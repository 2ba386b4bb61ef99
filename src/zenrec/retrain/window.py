"""The evaluation window: which events a candidate and the current version are judged on, and how.

:func:`select_window` chooses the rows of a :class:`~zenrec.retrain.log.TrainingLog`
the current version has not been trained on (:class:`WindowChoice`);
:func:`build_window` turns them into truth, masks and pre-window histories
(:class:`EvalWindow`); :func:`window_scorer` and :func:`evaluate_window` rank
and score one model on it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from zenrec.data.interactions import Interactions
from zenrec.errors import ConfigError
from zenrec.evaluate import metrics as M
from zenrec.evaluate.evaluator import evaluate
from zenrec.models.bundle import ModelBundle
from zenrec.retrain.log import TrainingLog, _text
from zenrec.store.registry import VersionInfo

__all__ = [
    "WindowChoice",
    "select_window",
    "EvalWindow",
    "build_window",
    "window_scorer",
    "parse_metric",
    "evaluate_window",
]

#: the cut-off of the metrics always reported beside the gate metric
_REPORT_K = 10


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


def _window_seconds(window: float | timedelta | None) -> float | None:
    """A window as positive seconds, or None."""
    if window is None:
        return None
    if isinstance(window, timedelta):
        window = window.total_seconds()
    if isinstance(window, bool) or not isinstance(window, numbers.Real) or not (0 < float(window) < math.inf):
        raise ConfigError(f"the 'window' parameter must be a positive duration in seconds; got {window!r}")
    return float(window)


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
