"""``GET /model``: the served versions, the registry's versions and traffic split, and the leaderboard the server
was started with (``zenrec serve … --leaderboard board.json``); the web page's model view reads it."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from zenrec.serve.routes.common import Id, error_responses, json_response, state_of

# read_access is added by create_app when reads need the API key
router = APIRouter(tags=["model"], responses=error_responses(401, 503))

#: user ids the page offers to pick from
SAMPLE_USERS = 20


class ServedVersionOut(BaseModel):
    """A loaded model version."""

    version: str
    model: str
    n_items: int
    share: float | None = Field(None, description="its share of users under a traffic split")


class RegistryVersionOut(BaseModel):
    """A version registered in the model registry."""

    version: str
    model: str | None = None
    created: float = Field(description="epoch seconds")
    metrics: dict[str, float]
    note: str


class ModelOut(BaseModel):
    """What the server answers with, and how it was chosen."""

    model_version: str = Field(description="the promoted (default) version")
    model: str
    served: list[ServedVersionOut] = Field(description="the loaded versions, the default first")
    traffic: dict[str, float] | None = Field(None, description="version → share of users, when split")
    registry: list[RegistryVersionOut] | None = Field(None, description="every registered version, oldest first "
                                                      "(serving a registry)")
    sample_users: list[Id] = Field(description="a few user ids the model was trained on")
    leaderboard: dict[str, Any] | None = Field(None, description="the leaderboard the server was started with "
                                               "(`Leaderboard.to_dict`; non-finite numbers as null)")


@router.get("/model", response_model=ModelOut)
def model_info(request: Request) -> Any:
    """The served model versions, the registry's versions and traffic split, and the leaderboard, if any."""
    state = state_of(request)
    view = state.view
    live = view.live
    traffic = dict(view.traffic) if view.traffic else None
    registry = None
    if state.watcher is not None:
        registry = [{"version": v.id, "model": v.model, "created": float(v.created),
                     "metrics": {k: float(x) for k, x in v.metrics.items() if _finite(x)}, "note": v.note}
                    for v in state.watcher.registry.versions()]
    users = live.bundle.users.all_ids[:SAMPLE_USERS]
    return json_response({
        "model_version": live.version,
        "model": live.model.name,
        "served": [{"version": v, "model": view.models[v].model.name, "n_items": view.models[v].n_items,
                    "share": None if traffic is None else float(traffic.get(v, 0.0))} for v in view.versions()],
        "traffic": traffic,
        "registry": registry,
        "sample_users": [u.item() if hasattr(u, "item") else u for u in users],
        "leaderboard": _clean(getattr(request.app.state, "leaderboard", None)),
    })


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities (a leaderboard's missing p-values) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def read_leaderboard(source: Any) -> dict[str, Any]:
    """A leaderboard for ``/model``: a ``Leaderboard.to_dict`` mapping, or the path of a JSON file written by
    ``zenrec compare --json`` (or ``zenrec tune --json``, whose ``leaderboard`` it reads); checked now."""
    import json
    from collections.abc import Mapping
    from pathlib import Path

    from zenrec.errors import ConfigError
    from zenrec.experiments.leaderboard import Leaderboard

    data = source
    if not isinstance(source, Mapping):
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such leaderboard file") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"{path}: not a leaderboard JSON file ({exc})") from None
    if isinstance(data, Mapping) and "rows" not in data and isinstance(data.get("leaderboard"), Mapping):
        data = data["leaderboard"]  # zenrec tune --json
    if not isinstance(data, Mapping):
        raise ConfigError(f"the leaderboard must be a JSON object; got {type(data).__name__}")
    return _clean(Leaderboard.from_dict(data).to_dict())
