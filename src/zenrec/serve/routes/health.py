"""``GET /healthz`` and ``GET /metrics`` (Prometheus text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zenrec.serve.routes.common import error_responses, state_of

router = APIRouter(tags=["health"])
#: ``/metrics`` alone: create_app adds read_access to it when reads need the API key, so that its OpenAPI
#: security matches what the server enforces
metrics_router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(request: Request) -> dict[str, Any]:
    """Liveness and what is served: model version and name, catalogue size, live-state counts."""
    state = state_of(request)
    view = state.view
    live = view.live
    # not None when the promoted version could not be loaded and an older one serves
    problem = view.problem or (state.watcher.last_error if state.watcher is not None else None)
    follower = state.follower
    if problem is None and follower is not None and follower.last_error is not None:
        problem = f"following the event store: {follower.last_error}"
    return {
        "status": "degraded" if problem else "ok",
        "model_version": live.version,
        "versions": view.versions(),
        "traffic": dict(view.traffic) if view.traffic else None,
        "model": live.model.name,
        "retrieval": live.retrieval,
        "n_users": int(live.model.n_users_),
        "n_items": live.n_items,
        "users_with_new_events": live.users_with_events(),
        "events_applied": live.events_applied,
        "events_replayed": state.replayed,
        "score_cache": {"users": len(live.score_cache), "bytes": live.score_cache.bytes,
                        "hit_rate": round(live.score_cache.hit_rate(), 4)},
        "store": state.store.dialect,
        "sync": follower.status() if follower is not None else {"mode": "off"},
        "problem": problem,
    }


@metrics_router.get("/metrics", response_class=Response,
                    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **error_responses(401)})
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests and latency per route, events stored, lists served, model version."""
    state = state_of(request)
    for v, live in state.view.models.items():
        state.metrics.score_cache.labels(v, "hit").set(live.score_cache.hits)
        state.metrics.score_cache.labels(v, "miss").set(live.score_cache.misses)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
