"""Online metrics per model version, and the A/B comparison of two versions with a confidence interval.

Inputs are two frames from the store: the served lists
(:func:`zenrec.store.served.served_frame`) and the events
(:meth:`zenrec.store.events.EventStore.frame`).  An event answers a list
when it carries that list's ``list_id``; it is attributed to the version
that served the list.

Per version (and, optionally, per time bucket):

* ``lists``: lists served; ``users``: distinct users they went to;
* ``click_through``: share of lists with at least one attributed event of a
  click type (default click, cart, purchase);
* ``conversion``: share of lists with at least one attributed purchase;
* ``coverage``: distinct items recommended / catalogue size;
* ``latency_p50_ms`` / ``latency_p99_ms``: time to build the list in the server.

The A/B comparison reports ``treatment − control`` for click-through and
conversion with a 95 % interval from a bootstrap over *users* (a user's lists
are not independent; under a traffic split users, not lists, are assigned to
versions), using Poisson(1) resampling weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zenrec.data.events import EventTypes
from zenrec.errors import ConfigError

__all__ = ["VersionStats", "Comparison", "OnlineReport", "online_report", "compare_versions"]

CLICK_TYPES = ("click", "cart", "purchase")
CONVERSION_TYPES = ("purchase",)


@dataclass(frozen=True)
class VersionStats:
    """Online metrics of one version over one time window."""

    model_version: str
    window_start: float | None
    lists: int
    users: int
    events_attributed: int
    click_through: float
    conversion: float
    coverage: float
    latency_p50_ms: float
    latency_p99_ms: float


@dataclass(frozen=True)
class Comparison:
    """``treatment − control`` of a rate, its bootstrap 95 % interval, and whether the interval excludes 0."""

    metric: str
    control: str
    treatment: str
    control_value: float
    treatment_value: float
    difference: float
    ci_low: float
    ci_high: float
    significant: bool


@dataclass
class OnlineReport:
    """Per-version rows and, with two or more versions, comparisons against the control."""

    rows: list[VersionStats]
    comparisons: list[Comparison] = field(default_factory=list)
    unmatched_events: int = 0  # events with a list id of a list not in the window's logged lists

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"rows": [asdict(r) for r in self.rows], "comparisons": [asdict(c) for c in self.comparisons],
                "unmatched_events": self.unmatched_events}


def _list_flags(lists: pd.DataFrame, events: pd.DataFrame, click_types: Sequence[str],
                conversion_types: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """``lists`` with boolean columns clicked and converted, and the number of unmatched attributed events."""
    ev = events[events["list_id"].notna()]
    known = ev["list_id"].isin(lists["list_id"])
    ev = ev[known]
    clicked = set(ev.loc[ev["event"].isin(list(click_types)), "list_id"])
    converted = set(ev.loc[ev["event"].isin(list(conversion_types)), "list_id"])
    out = lists.copy()
    out["clicked"] = out["list_id"].isin(clicked)
    out["converted"] = out["list_id"].isin(converted)
    out["n_events"] = out["list_id"].map(ev.groupby("list_id").size()).fillna(0).astype(np.int64)
    return out, int((~known).sum())


def _stats(version: str, start: float | None, g: pd.DataFrame) -> VersionStats:
    items = {i for row in g["items"] for i in row}
    catalogue = int(g["catalogue"].max()) if len(g) else 0
    lat = g["latency_ms"].to_numpy(dtype=float)
    return VersionStats(
        model_version=version, window_start=start, lists=len(g), users=int(g["user"].dropna().nunique()),
        events_attributed=int(g["n_events"].sum()),
        click_through=float(g["clicked"].mean()) if len(g) else math.nan,
        conversion=float(g["converted"].mean()) if len(g) else math.nan,
        coverage=len(items) / catalogue if catalogue else math.nan,
        latency_p50_ms=float(np.percentile(lat, 50)) if len(lat) else math.nan,
        latency_p99_ms=float(np.percentile(lat, 99)) if len(lat) else math.nan,
    )


def _per_user(g: pd.DataFrame, flag: str) -> tuple[np.ndarray, np.ndarray]:
    """Per user (anonymous lists: one unit each): lists served and lists with ``flag``."""
    unit = g["user"].where(g["user"].notna(), "\0list:" + g["list_id"].astype(str))
    agg = g.groupby(unit, sort=False)[flag].agg(["size", "sum"])
    return agg["size"].to_numpy(np.float64), agg["sum"].to_numpy(np.float64)


def _bootstrap_rates(n: np.ndarray, k: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` bootstrap replicates of sum(k)/sum(n), resampling units with Poisson(1) weights."""
    out = np.empty(draws)
    step = max(1, 2_000_000 // max(len(n), 1))
    for s in range(0, draws, step):
        w = rng.poisson(1.0, size=(min(step, draws - s), len(n)))
        tot = w @ n
        out[s : s + len(w)] = np.divide(w @ k, tot, out=np.full(len(w), np.nan), where=tot > 0)
    return out


def compare_versions(flags: pd.DataFrame, control: str, treatment: str, metric: str = "click_through",
                     draws: int = 2000, seed: int = 0, level: float = 0.95) -> Comparison:
    """``treatment − control`` of a list rate (click_through or conversion) with a user-bootstrap interval."""
    flag = {"click_through": "clicked", "conversion": "converted"}.get(metric)
    if flag is None:
        raise ConfigError(f"metric must be click_through or conversion; got {metric!r}")
    rng = np.random.default_rng(seed)
    a = flags[flags["model_version"] == control]
    b = flags[flags["model_version"] == treatment]
    if not len(a) or not len(b):
        raise ConfigError(f"no served lists for {control if not len(a) else treatment!r} in this window")
    na, ka = _per_user(a, flag)
    nb, kb = _per_user(b, flag)
    va, vb = ka.sum() / na.sum(), kb.sum() / nb.sum()
    diff = _bootstrap_rates(nb, kb, draws, rng) - _bootstrap_rates(na, ka, draws, rng)
    diff = diff[np.isfinite(diff)]
    lo, hi = np.quantile(diff, [(1 - level) / 2, 1 - (1 - level) / 2]) if len(diff) else (math.nan, math.nan)
    return Comparison(metric, control, treatment, float(va), float(vb), float(vb - va), float(lo), float(hi),
                      bool(lo > 0 or hi < 0))


def online_report(lists: pd.DataFrame, events: pd.DataFrame, bucket_seconds: float | None = None,
                  control: str | None = None, click_types: Sequence[str] = CLICK_TYPES,
                  conversion_types: Sequence[str] = CONVERSION_TYPES, draws: int = 2000,
                  seed: int = 0, events_types: EventTypes | None = None) -> OnlineReport:
    """Online metrics per version (and per ``bucket_seconds`` window of serving time), plus A/B comparisons.

    Event types are matched after reading them through ``events_types``
    (the model's vocabulary declared at ingest; default: the canonical
    types and their default aliases), so a log's ``buy`` is a ``purchase``.

    With two or more versions each is compared with ``control`` (default:
    the version that served first in the window) on click-through and
    conversion, over the whole window.
    """
    if bucket_seconds is not None and not (bucket_seconds > 0):
        raise ConfigError(f"bucket_seconds must be a positive number of seconds; got {bucket_seconds!r}")
    if len(events):
        vocab = events_types or EventTypes()
        names = {t: vocab.canonical(t) or str(t).strip().lower() for t in events["event"].dropna().unique()}
        events = events.assign(event=events["event"].map(names))
    flags, unmatched = _list_flags(lists, events, click_types, conversion_types)
    rows: list[VersionStats] = []
    order = list(dict.fromkeys(flags.sort_values("created")["model_version"]))
    for version in order:
        g = flags[flags["model_version"] == version]
        if bucket_seconds is None:
            rows.append(_stats(version, None, g))
            continue
        starts = np.floor(g["created"].to_numpy() / bucket_seconds) * bucket_seconds
        for start in np.unique(starts):
            rows.append(_stats(version, float(start), g[starts == start]))
    comparisons = []
    if len(order) >= 2:
        base = control if control is not None else order[0]
        if base not in order:
            raise ConfigError(f"control version {base!r} served no list in this window (versions: {order})")
        for other in order:
            if other != base:
                for metric in ("click_through", "conversion"):
                    comparisons.append(compare_versions(flags, base, other, metric, draws, seed))
    return OnlineReport(rows, comparisons, unmatched)
