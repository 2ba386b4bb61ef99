"""The HTTP service: :func:`create_app` builds a FastAPI app over a model and an event store.

Everything heavy is loaded in the app's ``lifespan``: the model bundle (a
model directory, or the promoted version of a registry root) as a
:class:`~zenrec.serve.live.LiveModel`, the event store with its
:class:`~zenrec.store.events.BatchWriter`, and the events stored since the
model was trained, replayed into the live overlay so that a restart keeps
real-time state.  Routes live in :mod:`zenrec.serve.routes`, one module per
resource; errors are JSON (:mod:`zenrec.serve.errors`).

    zenrec serve models/ease --port 8000          # or: uvicorn via create_app(...)
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zenrec import __version__
from zenrec.errors import ConfigError
from zenrec.serve.errors import ApiError, error_body, install_error_handlers
from zenrec.serve.live import LiveModel, is_registry, load_live_model

__all__ = ["create_app", "ServeState", "Metrics", "API_KEY_ENV"]

log = logging.getLogger(__name__)

#: environment variable read for the API key when none is passed
API_KEY_ENV = "ZENREC_API_KEY"
_REPLAY_PAGE = 5000


class Metrics:
    """Prometheus metrics of one app (its own registry, so several apps may live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("zenrec_requests_total", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("zenrec_request_seconds", "HTTP request latency by route", ["route", "method"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                 registry=r)
        self.events_stored = Counter("zenrec_events_stored_total", "events committed to the store", registry=r)
        self.events_duplicate = Counter("zenrec_events_duplicate_total",
                                        "events refused as duplicates of a stored event id", registry=r)
        self.events_replayed = Counter("zenrec_events_replayed_total",
                                       "stored events replayed into the live state at startup", registry=r)
        self.lists_served = Counter("zenrec_lists_served_total", "recommendation lists served by model version",
                                    ["model_version", "kind"], registry=r)
        self.model_info = Gauge("zenrec_model_info", "the served model version (value 1)",
                                ["model_version", "model"], registry=r)


@dataclass
class ServeState:
    """What the routes share: the live model, the store, its writer, limits and keys."""

    live: LiveModel
    store: Any
    writer: Any
    metrics: Metrics
    api_key: str | None = None
    require_key_for_reads: bool = False
    max_k: int = 1000
    started: float = field(default_factory=time.time)
    replayed: int = 0

    def check_key(self, given: str | None, write: bool) -> None:
        """Raise a 401 :class:`ApiError` unless ``given`` is the API key (when one is required)."""
        if self.api_key is None or not (write or self.require_key_for_reads):
            return
        if given is None or not hmac.compare_digest(given.encode(), self.api_key.encode()):
            what = "missing" if given is None else "wrong"
            raise ApiError(401, "unauthorized", f"{what} API key: send it in the X-API-Key header",
                           headers={"WWW-Authenticate": "ApiKey"})

    def check_k(self, k: int) -> int:
        """``k`` itself, or a 422 :class:`ApiError` when it is not in ``1 … max_k``."""
        if k <= 0 or k > self.max_k:
            raise ApiError(422, "invalid_k", f"k must be an integer from 1 to {self.max_k}; got {k}")
        return k


class BodyLimit:
    """ASGI middleware: a request body larger than ``max_bytes`` gets a 413 JSON error."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from fastapi.responses import JSONResponse
        from starlette.exceptions import HTTPException

        limit = self.max_bytes
        message = f"the request body is larger than {limit:,} bytes"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                await JSONResponse(error_body("bad_request", "invalid Content-Length header"), 400)(scope, receive, send)
                return
            if too_big:
                await JSONResponse(error_body("body_too_large", message), 413)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, message)
            return msg

        await self.app(scope, limited, send)


class RequestMetrics:
    """ASGI middleware: count and time every request by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def sending(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - t0)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"the {name!r} parameter must be a positive integer; got {value!r}")
    return value


def replay_events(state: ServeState) -> int:
    """Apply the events stored since the model was trained to the live overlay; returns how many were read."""
    live, store = state.live, state.store
    seq, n = 0, 0
    while True:
        page = store.events_since(seq, limit=_REPLAY_PAGE)
        if not page:
            break
        seq = page[-1].seq
        fresh = [e for e in page if e.created >= live.trained_at]
        live.apply_events(fresh)
        n += len(fresh)
        if len(page) < _REPLAY_PAGE:
            break
    state.metrics.events_replayed.inc(n)
    return n


def create_app(
    source: str | Path,
    store_url: str | None = None,
    api_key: str | None = None,
    require_key_for_reads: bool = False,
    max_k: int = 1000,
    max_body_bytes: int = 1_000_000,
    item_table: pd.DataFrame | None = None,
    retrieval: str = "auto",
) -> FastAPI:
    """A FastAPI app serving a model directory (``zenrec train``) or a registry root's promoted version.

    ``store_url`` defaults to a SQLite file beside the model
    (``sqlite:///MODEL_DIR/events.db``) or the registry's ``events.db``.
    ``api_key`` (or the ``ZENREC_API_KEY`` environment variable) guards
    ``POST /events`` and, with ``require_key_for_reads``, every read;
    without a key writes are open (log warning).  ``max_k`` caps list length,
    ``max_body_bytes`` the request body (413 above).  ``item_table`` (one row
    per item, in the model's item order) enables attribute filters.
    ``retrieval`` (auto, exact, faiss, hnsw, ivf) is the top-k backend of
    factor models (``auto``: exact up to 50,000 items, faiss HNSW above).
    """
    from zenrec._io import read_manifest
    from zenrec.models.base import MODEL_FORMAT

    source = Path(source)
    if not source.exists():
        raise ConfigError(f"{source}: no such model directory or registry")
    if not is_registry(source):
        read_manifest(source, "model", MODEL_FORMAT)  # a clear error now rather than at startup
    max_k = _positive_int("max_k", max_k)
    max_body_bytes = _positive_int("max_body_bytes", max_body_bytes)
    if retrieval not in ("auto", "exact", "faiss", "hnsw", "ivf"):
        raise ConfigError(f"the 'retrieval' parameter must be auto, exact, faiss, hnsw or ivf; got {retrieval!r}")
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    if key is not None and not key.strip():
        raise ConfigError("the API key must not be empty")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from zenrec.store.events import BatchWriter, EventStore

        live, default_url = load_live_model(source, item_table, retrieval)
        store = EventStore(store_url or default_url)
        writer = BatchWriter(store)
        state = ServeState(live, store, writer, metrics, key, require_key_for_reads, max_k)
        try:
            state.replayed = replay_events(state)
            metrics.model_info.labels(live.version, live.model.name).set(1)
            if key is None:
                log.warning("no API key set: POST /events is open to anyone who can reach the server")
            log.info("serving %s (%s) from %s; events in %s; %d events replayed",
                     live.version, live.model.name, source, store.url, state.replayed)
            app.state.zenrec = state
            yield
        finally:
            writer.close(timeout=30)
            store.close()

    app = FastAPI(
        title="zenrec",
        version=__version__,
        description=(
            "Top-N recommendations that react to each new event. Every list carries the model version and "
            "a fresh `list_id`; post events with that `list_id` to attribute them. Errors are "
            '`{"error": {"code", "message"}}`.'
        ),
        lifespan=lifespan,
    )
    install_error_handlers(app)
    from zenrec.serve.routes import events, health, items, recommendations

    for module in (recommendations, items, events, health):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # refuses a large body before it is read
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: counts every answer, 413s included
    return app
