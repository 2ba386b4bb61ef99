"""``zenrec registry …``: list, add and promote model versions, and split traffic between them.

A server started on the registry root (``zenrec serve REGISTRY``) picks up a
promotion or a traffic split within a second, without dropping a request.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from zenrec.cli.common import commands, out
from zenrec.errors import ConfigError

registry_app = typer.Typer(help="Model versions: list, add, promote, split traffic.", no_args_is_help=True)


_command = commands(registry_app)


def _open(root: Path, create: bool = False) -> Any:
    from zenrec.store.registry import ModelRegistry

    if not create and not (root / "versions").is_dir():
        raise ConfigError(f"{root}: not a model registry (no versions/ directory); `zenrec registry add` creates one")
    return ModelRegistry(root)


def _time(ts: float | None) -> str:
    return "–" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@_command(name="list")
def list_versions(
    root: Annotated[Path, typer.Argument(help="registry root")],
) -> None:
    """The versions, oldest first, with the promoted one and any traffic split marked."""

    reg = _open(root)
    cur = reg.current()
    t = Table(title=f"model registry {root}", show_edge=False)
    for col in ("version", "model", "created (UTC)", "serving", "metrics", "note"):
        t.add_column(col)
    for v in reg.versions():
        serving = ""
        if cur is not None and v.id == cur.version:
            serving = "promoted"
        if cur is not None and cur.traffic and v.id in cur.traffic:
            serving = f"{serving} {100 * cur.traffic[v.id]:.0f}% of users".strip()
        metrics = ", ".join(f"{k} {val:.4f}" for k, val in sorted(v.metrics.items()))
        t.add_row(v.id, v.model or "?", _time(v.created), serving, metrics, v.note)
    out.print(t)
    if cur is not None:
        out.print(f"promoted {cur.version} at {_time(cur.promoted_at)}: {cur.reason or '(no reason given)'}")


@_command
def add(
    root: Annotated[Path, typer.Argument(help="registry root (created when missing)")],
    model_dir: Annotated[Path, typer.Argument(help="model directory from `zenrec train`")],
    note: Annotated[str, typer.Option(help="a note kept with the version")] = "",
    promote: Annotated[bool, typer.Option("--promote", help="also promote it")] = False,
) -> None:
    """Copy a trained model directory into the registry as a new version."""

    reg = _open(root, create=True)
    vid = reg.add(model_dir, note=note)
    out.print(f"added {model_dir} as {vid}")
    if promote:
        reg.promote(vid, note or "promoted on add")
        out.print(f"promoted {vid}")


@_command
def promote(
    root: Annotated[Path, typer.Argument(help="registry root")],
    version: Annotated[str, typer.Argument(help="version id, e.g. v0002")],
    reason: Annotated[str, typer.Option(help="why (kept in CURRENT.json)")] = "",
) -> None:
    """Serve VERSION from now on (atomic; clears any traffic split)."""

    cur = _open(root).promote(version, reason)
    out.print(f"promoted {cur.version} (previous: {cur.previous or 'none'})")


@_command
def split(
    root: Annotated[Path, typer.Argument(help="registry root")],
    weights: Annotated[list[str] | None, typer.Argument(help="VERSION=WEIGHT pairs summing to 1, e.g. "
                                                          "v0001=0.5 v0002=0.5; none removes the split")] = None,
) -> None:
    """Split users between versions by a stable hash of the user id (an A/B test)."""

    parsed: dict[str, float] = {}
    for w in weights or []:
        version, sep, value = w.partition("=")
        try:
            if not sep:
                raise ValueError
            parsed[version.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"expected VERSION=WEIGHT (e.g. v0002=0.5); got {w!r}") from None
    cur = _open(root).set_traffic(parsed or None)
    if cur.traffic:
        out.print("traffic: " + ", ".join(f"{v} {100 * w:.0f}%" for v, w in sorted(cur.traffic.items())))
    else:
        out.print(f"no split: every user gets {cur.version}")
