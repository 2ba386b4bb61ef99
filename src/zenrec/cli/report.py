"""``zenrec report …``: reports over what a running service recorded (``zenrec report online``)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from zenrec.cli.common import commands, out
from zenrec.errors import ConfigError

report_app = typer.Typer(help="Reports over what the service recorded.", no_args_is_help=True)


_command = commands(report_app)


def _when(text: str | None, what: str) -> float | None:
    """Epoch seconds from a number or an ISO-8601 time (naive: UTC)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--{what}: expected epoch seconds or an ISO-8601 time like 2026-11-28T10:00; "
                          f"got {text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def _store_url(source: Path | None, store: str | None) -> str:
    from zenrec.serve.live import default_store_url

    if store is not None:
        return store
    if source is None:
        raise ConfigError("give a registry or model directory, or --store URL")
    if not source.exists():
        raise ConfigError(f"{source}: no such model directory or registry")
    return default_store_url(source)


def _event_types(source: Path | None):
    """The event vocabulary of SOURCE's model (a registry's current version), so `buy` counts as `purchase`."""
    from zenrec._io import read_manifest
    from zenrec.data.events import EventTypes
    from zenrec.models.base import MODEL_FORMAT
    from zenrec.store.registry import ModelRegistry

    if source is None:
        return EventTypes()
    path = source
    if not (source / "manifest.json").is_file():
        if not (source / "CURRENT.json").is_file():  # not a registry with a promoted version
            return EventTypes()
        cur = ModelRegistry(source).current()
        if cur is None:
            return EventTypes()
        path = ModelRegistry(source).info(cur.version).path
    return EventTypes.from_dict(read_manifest(path, "model", MODEL_FORMAT).get("events"), f"{path}/manifest.json")


def _fmt(x: float, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.2f}%" if pct else f"{x:.2f}"


@_command
def online(
    source: Annotated[Path | None, typer.Argument(help="model registry root or model directory (its event store)")] = None,
    store: Annotated[str | None, typer.Option("--store", help="event store URL instead of SOURCE's")] = None,
    since: Annotated[str | None, typer.Option(help="start: epoch seconds or ISO time (UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="end (exclusive): epoch seconds or ISO time (UTC)")] = None,
    hours: Annotated[float | None, typer.Option(help="the last H hours (instead of --since)")] = None,
    bucket: Annotated[float | None, typer.Option(help="one row per version per BUCKET seconds of serving time")] = None,
    control: Annotated[str | None, typer.Option(help="the A/B control version (default: the first to serve)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the report as JSON")] = None,
) -> None:
    """Click-through, conversion, coverage and latency per model version, and the A/B comparison.

      zenrec report online models/registry --hours 24
    """
    import time

    from zenrec._io import atomic_file
    from zenrec.evaluate.online import online_report
    from zenrec.store.events import EventStore
    from zenrec.store.served import served_frame

    start, end = _when(since, "since"), _when(until, "until")
    if hours is not None:
        if since is not None or not hours > 0:
            raise ConfigError("--hours takes a positive number and replaces --since")
        start = time.time() - hours * 3600
    st = EventStore(_store_url(source, store))
    try:
        lists = served_frame(st, start, end)
        events = st.frame()
    finally:
        st.close()
    if not len(lists):
        raise ConfigError(f"no served lists logged in {st.url} for this window; serve some traffic first")
    rep = online_report(lists, events, bucket_seconds=bucket, control=control, events_types=_event_types(source))
    t = Table(title=f"online metrics: {len(lists):,} lists", show_edge=False)
    cols = ["version", "lists", "users", "events", "click-through", "conversion", "coverage", "p50 ms", "p99 ms"]
    if bucket is not None:
        cols.insert(1, "window (UTC)")
    for c in cols:
        t.add_column(c, justify="left" if c.startswith(("version", "window")) else "right")
    for r in rep.rows:
        cells = [r.model_version, f"{r.lists:,}", f"{r.users:,}", f"{r.events_attributed:,}",
                 _fmt(r.click_through, True), _fmt(r.conversion, True), _fmt(r.coverage, True),
                 _fmt(r.latency_p50_ms), _fmt(r.latency_p99_ms)]
        if bucket is not None:
            cells.insert(1, datetime.fromtimestamp(r.window_start or 0, timezone.utc).strftime("%Y-%m-%d %H:%M"))
        t.add_row(*cells)
    out.print(t)
    for c in rep.comparisons:
        verdict = "significant" if c.significant else "not significant"
        out.print(f"{c.metric}: {c.treatment} − {c.control} = {100 * c.difference:+.2f} points "
                  f"(95% CI {100 * c.ci_low:+.2f} … {100 * c.ci_high:+.2f}, user bootstrap; {verdict})")
    if rep.unmatched_events:
        out.print(f"{rep.unmatched_events:,} events carry a list id of a list not logged in this window")
    if json_out is not None:
        with atomic_file(json_out) as tmp:
            Path(tmp).write_text(json.dumps(rep.to_dict(), indent=2) + "\n")
