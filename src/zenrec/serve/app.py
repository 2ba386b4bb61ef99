"""The HTTP service: :func:`create_app` builds a FastAPI app over a model and an event store.

Everything heavy is loaded in the app's ``lifespan``: the model bundle (a
model directory, or the promoted version of a registry root) as a
:class:`~zenrec.serve.live.LiveModel`, the event store with its
:class:`~zenrec.store.events.BatchWriter`, and the events stored since the
model was trained, replayed into the live overlay so that a restart keeps
real-time state.  A :class:`~zenrec.serve.follower.StoreFollower` then keeps
reading the store's tail, so events and erasures that other servers on the
same store take reach this one too.  Routes live in :mod:`zenrec.serve.routes`, one module per
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
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zenrec import __version__
from zenrec.errors import ConfigError, ZenrecError
from zenrec.models.bundle import ModelBundle
from zenrec.retrieval.base import check_k
from zenrec.retrieval.saved import INDEX_DIR
from zenrec.serve.errors import ApiError, error_body, install_error_handlers
from zenrec.serve.fastpath import ROUTE_KEY, UserListFastPath
from zenrec.serve.follower import DEFAULT_SYNC_SECONDS, StoreFollower
from zenrec.serve.heap import freeze_heap
from zenrec.serve.live import ListLog, LiveModel, default_store_url, is_registry, manifest_version
from zenrec.serve.versions import RegistryWatcher, ServingView, start_view
from zenrec.store.events import check_durability
from zenrec.store.registry import ModelRegistry
from zenrec.store.served import (
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_ROWS,
    ServedList,
    ServedLog,
    check_served_bounds,
)

__all__ = ["create_app", "ServeState", "Metrics", "API_KEY_ENV"]

log = logging.getLogger(__name__)

#: environment variable read for the API key when none is passed
API_KEY_ENV = "ZENREC_API_KEY"
_REPLAY_PAGE = 5000
#: whether the request being answered carries the server's API key (set by :class:`KeyedRequests`)
_KEYED: ContextVar[bool] = ContextVar("zenrec_keyed", default=False)


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
        self.events_followed = Counter("zenrec_events_followed_total", "events stored through another server "
                                       "(or writer) and applied from the store's tail", registry=r)
        self.erasures_followed = Counter("zenrec_erasures_followed_total", "erasures recorded in the store "
                                         "(by any server or `zenrec forget`) and applied by this server",
                                         registry=r)
        self.events_attributed = Counter("zenrec_events_attributed_total",
                                         "events carrying a served list id, by the version that served the list "
                                         "and event type", ["model_version", "type"], registry=r)
        self.lists_served = Counter("zenrec_lists_served_total", "recommendation lists served by model version",
                                    ["model_version", "kind"], registry=r)
        self.list_latency = Histogram("zenrec_list_seconds", "time to build a recommendation list, by model version",
                                      ["model_version"], registry=r,
                                      buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1))
        self.coverage = Gauge("zenrec_catalogue_coverage", "share of the catalogue recommended since the version "
                              "was loaded", ["model_version"], registry=r)
        self.score_cache = Gauge("zenrec_score_cache_lookups", "score-row cache lookups since the version was "
                                 "loaded, by model version and result (hit or miss)", ["model_version", "result"],
                                 registry=r)
        self.model_info = Gauge("zenrec_model_info", "the served model version (value 1)",
                                ["model_version", "model"], registry=r)


@dataclass
class ServeState:
    """What the routes share: the served versions (a :class:`ServingView`), the store, its writer, limits and keys.

    Read :attr:`view` once per request: a hot swap replaces it with one assignment.
    """

    view: ServingView
    store: Any
    writer: Any
    metrics: Metrics
    api_key: str | None = None
    require_key_for_reads: bool = False
    max_k: int = 1000
    #: seconds an event's timestamp may lie after the server's clock (None: no limit)
    max_event_ahead: float | None = 86_400.0
    #: seconds an event's timestamp may lie before the server's clock (None: back to 1970)
    max_event_age: float | None = None
    started: float = field(default_factory=time.time)
    replayed: int = 0
    lists: ListLog = field(default_factory=ListLog)
    watcher: RegistryWatcher | None = None
    served_log: ServedLog | None = None
    #: log anonymous session lists too (they answer no known user; off saves a row per anonymous read)
    log_sessions: bool = True
    #: log the lists of reads that came without the API key too (off: only reads with the key are logged)
    log_anonymous_reads: bool = True
    #: the model directory or registry root served (``DELETE /users/{id}`` erases under it)
    source: Path | None = None
    #: reads the events and erasures other servers put in the store (None: ``sync_seconds=0``)
    follower: StoreFollower | None = None

    def served(self, out: Any, live: LiveModel, kind: str, started: float) -> dict[str, Any]:
        """Count, time and log one served list (``out``: :class:`~zenrec.models.query.Recommendations`); returns
        its JSON body."""
        seconds = time.perf_counter() - started
        v = out.model_version
        self.metrics.lists_served.labels(v, "fallback" if out.fallback else "model").inc()
        self.metrics.list_latency.labels(v).observe(seconds)
        self.metrics.coverage.labels(v).set(live.coverage())
        body = out.to_dict()
        if self.served_log is not None and (self.log_sessions or kind != "session") and (
            self.log_anonymous_reads or _KEYED.get()
        ):
            user = None if out.user is None else str(out.user)
            self.served_log.log(ServedList(out.list_id, user, v, kind, [r["item"] for r in body["items"]], live.n_items,
                                           seconds * 1000.0, out.fallback))
        return body

    @property
    def live(self) -> LiveModel:
        """The promoted (default) version's model."""
        return self.view.live

    def check_key(self, given: str | None, write: bool) -> None:
        """Raise a 401 :class:`ApiError` unless ``given`` is the API key (when one is required)."""
        if self.api_key is None or not (write or self.require_key_for_reads):
            return
        if not key_matches(given, self.api_key):
            what = "missing" if given is None else "wrong"
            raise ApiError(401, "unauthorized", f"{what} API key: send it in the X-API-Key header",
                           headers={"WWW-Authenticate": "ApiKey"})

    def check_k(self, k: int) -> int:
        """``k`` itself (:func:`~zenrec.retrieval.base.check_k`), or a 422 :class:`ApiError` when it is not in
        ``1 … max_k``."""
        try:
            good = check_k(k) <= self.max_k
        except ConfigError:
            good = False
        if not good:
            raise ApiError(422, "invalid_k", f"k must be an integer from 1 to {self.max_k}; got {k!r}")
        return int(k)


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


def key_matches(given: str | bytes | None, key: str) -> bool:
    """Whether ``given`` (a header value, as text or raw bytes) is the API ``key``, compared in constant time."""
    if given is None:
        return False
    return hmac.compare_digest(given if isinstance(given, bytes) else given.encode(), key.encode())


class KeyedRequests:
    """ASGI middleware: notes in :data:`_KEYED` whether a request carries the server's API key (installed only
    when anonymous reads are left out of the served-list log)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers") or () if k == b"x-api-key"), None)
        token = _KEYED.set(key_matches(given, self.key))
        try:
            await self.app(scope, receive, send)
        finally:
            _KEYED.reset(token)


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
            route = scope.get(ROUTE_KEY) or getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - t0)


def replay_events(live: LiveModel, store: Any, since_seq: int | None = None) -> int:
    """Apply the stored events the model was not trained on to its live overlay; returns how many.

    With ``since_seq`` (the last store seq the version was trained on, from
    the registry) every later event is replayed; without it, the events
    stored after the model was written.  ``live.replayed_through`` ends at
    the last seq read.
    """
    with live.replay_lock:  # the store follower moves replayed_through too
        seq, n = max(int(since_seq or 0), live.replayed_through), 0
        while True:
            page = store.events_since(seq, limit=_REPLAY_PAGE)
            if not page:
                break
            seq = page[-1].seq
            fresh = page if since_seq is not None else [e for e in page if e.created >= live.trained_at]
            n += live.apply_events(fresh)
            if len(page) < _REPLAY_PAGE:
                break
        live.replayed_through = seq
    return n


def create_app(
    source: str | Path,
    store_url: str | None = None,
    api_key: str | None = None,
    require_key_for_reads: bool = False,
    max_k: int = 1000,
    max_body_bytes: int = 1_000_000,
    max_event_ahead: float | None = 86_400.0,
    max_event_age: float | None = None,
    item_table: pd.DataFrame | None = None,
    retrieval: str = "auto",
    poll_seconds: float = 0.5,
    log_lists: bool = True,
    log_sessions: bool = True,
    log_anonymous_reads: bool = True,
    served_max_rows: int | None = DEFAULT_MAX_ROWS,
    served_max_age_s: float | None = DEFAULT_MAX_AGE_S,
    served_prune_s: float = 60.0,
    score_cache_mb: float = 64.0,
    durability: str = "fsync",
    leaderboard: str | Path | dict[str, Any] | None = None,
    sync_seconds: float = DEFAULT_SYNC_SECONDS,
    sync_notify: bool = True,
) -> FastAPI:
    """A FastAPI app serving a model directory (``zenrec train``) or a registry root's promoted version.

    ``store_url`` defaults to a SQLite file beside the model
    (``sqlite:///MODEL_DIR/events.db``) or the registry's ``events.db``.
    ``api_key`` (or the ``ZENREC_API_KEY`` environment variable) guards
    ``POST /events`` and, with ``require_key_for_reads``, every read;
    without a key writes are open (log warning).  ``max_k`` caps list length,
    ``max_body_bytes`` the request body (413 above).  An event's timestamp
    may lie at most ``max_event_ahead`` seconds after the server's clock (a
    day by default) and ``max_event_age`` seconds before it (default: any time
    since 1970); outside that window it is a 422 naming the field.  ``item_table`` (one row
    per item, in the model's item order) enables attribute filters.
    ``retrieval`` (auto, exact, faiss, hnsw, ivf) is how known users of a
    model that declares ``vectors()`` are served (``auto``: scored by the model
    up to 50,000 items, a faiss HNSW index over its vectors above).  A faiss
    index is built once and saved in the model (version) directory's
    ``index/`` folder; later starts memory-map it (seconds instead of minutes,
    and worker processes share its pages).

    Serving a registry, the app polls it every ``poll_seconds`` (0: never)
    and hot-swaps a newly promoted version or traffic split in: the new
    versions are loaded and their events replayed beside the served ones,
    then requests move to them at once; a version that fails to load is
    logged and the old ones keep serving.  With ``log_lists`` every served
    list is logged (best-effort, off the request path) in the store's
    ``served_lists`` table for ``zenrec report online``; the log keeps the
    newest ``served_max_rows`` lists of the last ``served_max_age_s`` seconds
    (a million, 30 days; None lifts a bound), pruned every ``served_prune_s``
    seconds (so it may exceed ``served_max_rows`` by what one interval adds).
    ``log_sessions=False`` leaves anonymous session lists out of it, and
    ``log_anonymous_reads=False`` the lists of reads that came without the API
    key (with no key set: every list); ``zenrec report online`` then counts only
    the lists that were logged, and events naming the others' ``list_id`` are
    reported as unmatched.  Each served version
    keeps up to ``score_cache_mb`` of users' score rows, reused until the
    user's next event (:mod:`zenrec.serve.cache`; 0 turns it off).
    ``durability`` (``fsync`` or ``os``) is what an acknowledged event
    survives; see :class:`~zenrec.store.events.EventStore`.
    ``leaderboard`` (a ``zenrec compare --json`` file or its dict) is shown by
    ``GET /model`` and the web page at ``/``.

    Several servers may share one store (replicas on PostgreSQL, or processes
    on one SQLite file): each reads the store's new events and erasures every
    ``sync_seconds`` (0: never; the server then sees only what is posted to
    it) and, on PostgreSQL with ``sync_notify``, as soon as a commit notifies
    it (:mod:`zenrec.serve.follower`).
    """
    from zenrec._io import read_manifest
    from zenrec.models.base import MODEL_FORMAT

    source = Path(source)
    if not source.exists():
        raise ConfigError(f"{source}: no such model directory or registry")
    if not is_registry(source):
        read_manifest(source, "model", MODEL_FORMAT)  # a clear error now rather than at startup
    max_k = check_k(max_k, "max_k")
    max_body_bytes = check_k(max_body_bytes, "max_body_bytes")
    for name, limit in (("max_event_ahead", max_event_ahead), ("max_event_age", max_event_age)):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or
                                  not 0 <= limit < float("inf")):
            raise ConfigError(f"the {name!r} parameter must be a number of seconds ≥ 0 or None; got {limit!r}")
    if isinstance(poll_seconds, bool) or not isinstance(poll_seconds, (int, float)) or not 0 <= poll_seconds < 3600:
        raise ConfigError(f"the 'poll_seconds' parameter must be a number of seconds from 0 to 3600; got {poll_seconds!r}")
    if isinstance(sync_seconds, bool) or not isinstance(sync_seconds, (int, float)) or not 0 <= sync_seconds <= 60:
        raise ConfigError(f"the 'sync_seconds' parameter must be a number of seconds from 0 to 60; got {sync_seconds!r}")
    if not isinstance(sync_notify, bool):
        raise ConfigError(f"the 'sync_notify' parameter must be true or false; got {sync_notify!r}")
    if retrieval not in ("auto", "exact", "faiss", "hnsw", "ivf"):
        raise ConfigError(f"the 'retrieval' parameter must be auto, exact, faiss, hnsw or ivf; got {retrieval!r}")
    if isinstance(score_cache_mb, bool) or not isinstance(score_cache_mb, (int, float)) or not (
        0 <= score_cache_mb < 1 << 20
    ):
        raise ConfigError(f"the 'score_cache_mb' parameter must be a number of megabytes >= 0; got {score_cache_mb!r}")
    cache_bytes = int(score_cache_mb * (1 << 20))
    check_served_bounds(served_max_rows, served_max_age_s, served_prune_s)  # now rather than when the server starts
    check_durability(durability)  # now rather than when the server starts
    from zenrec.serve.routes.model_info import read_leaderboard

    board = read_leaderboard(leaderboard) if leaderboard is not None else None  # a bad file fails now
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    if key is not None and not key.strip():
        raise ConfigError("the API key must not be empty")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from zenrec.store.events import BatchWriter, EventStore

        lists = ListLog()
        registry = ModelRegistry(source) if is_registry(source) else None
        store = EventStore(store_url or default_store_url(source), background_checkpoint=True, durability=durability)
        writer = None
        try:
            replayed = [0]

            def load(version: str) -> LiveModel:
                assert registry is not None
                erased = store.last_erasure_seq()  # read before the files: later erasures are followed
                where = registry.path(version)
                live = LiveModel(ModelBundle.load(where), version, item_table, retrieval, lists, cache_bytes,
                                 where / INDEX_DIR)
                live.erasures_through = erased
                replayed[0] += replay_events(live, store, registry.info(version).last_event_seq)
                return live

            if registry is not None:
                view = start_view(registry, load)
            else:
                erased = store.last_erasure_seq()
                bundle = ModelBundle.load(source)
                live = LiveModel(bundle, manifest_version(source, bundle.manifest), item_table, retrieval, lists,
                                 cache_bytes, source / INDEX_DIR)
                live.erasures_through = erased
                replayed[0] = replay_events(live, store)
                view = ServingView(live.version, {live.version: live})
            writer = BatchWriter(store)
            state = ServeState(view, store, writer, metrics, key, require_key_for_reads, max_k, max_event_ahead,
                               max_event_age, lists=lists,
                               replayed=replayed[0], served_log=ServedLog(store, max_rows=served_max_rows,
                                                                    max_age_s=served_max_age_s,
                                                                    prune_every_s=served_prune_s) if log_lists else None,
                               log_sessions=log_sessions, log_anonymous_reads=log_anonymous_reads, source=source)
            for v, m in view.models.items():
                metrics.model_info.labels(v, m.model.name).set(1)
            if registry is not None:  # polled when poll_seconds > 0; state.watcher.check() swaps on demand

                def set_view(new: ServingView) -> None:
                    state.view = new

                def swapped(old: ServingView, new: ServingView) -> None:
                    for v, m in new.models.items():
                        if v not in old.models:  # catch up with events stored while it loaded
                            replay_events(m, store, m.replayed_through)
                    for v, m in old.models.items():
                        metrics.model_info.labels(v, m.model.name).set(0)
                    for v, m in new.models.items():
                        metrics.model_info.labels(v, m.model.name).set(1)
                    log.info("heap settled after the swap in %.0f ms", freeze_heap())

                state.watcher = RegistryWatcher(registry, load, lambda: state.view, set_view, swapped,
                                                poll_seconds or 1.0)
                if poll_seconds > 0:
                    state.watcher.start()
            if sync_seconds > 0:
                state.follower = StoreFollower(store, lambda: state.view, source, sync_seconds, sync_notify,
                                               metrics.events_followed.inc, metrics.erasures_followed.inc)
                state.follower.start()
            if key is None:
                log.warning("no API key set: POST /events is open to anyone who can reach the server")
                if log_lists and not log_anonymous_reads:
                    log.warning("no API key set and anonymous reads are not logged: no served list is logged")
            log.info("serving %s from %s; events in %s; %d events replayed", view.versions(), source, store.url,
                     state.replayed)
            app.state.zenrec = state
            freeze_heap()  # full collector passes would otherwise stall requests for 60-130 ms
            yield
        except ZenrecError as exc:  # a model, registry or store zenrec cannot serve: one line, not a traceback
            if getattr(app.state, "zenrec", None) is None:
                app.state.startup_error = exc
            raise
        finally:
            watcher = getattr(getattr(app.state, "zenrec", None), "watcher", None)
            if watcher is not None:
                watcher.stop()
            follower = getattr(getattr(app.state, "zenrec", None), "follower", None)
            if follower is not None:
                follower.stop()
            served_log = getattr(getattr(app.state, "zenrec", None), "served_log", None)
            if served_log is not None:
                served_log.close()
            if writer is not None:
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
    from fastapi import Depends

    from zenrec.serve.routes import events, health, items, recommendations, users
    from zenrec.serve.routes.common import read_access

    reads = [Depends(read_access)] if require_key_for_reads else []  # no per-request dependency otherwise
    for module in (recommendations, items):
        app.include_router(module.router, dependencies=reads)
    from zenrec.serve.routes import history, model_info, page

    for module in (history, model_info):  # the web page's reads
        app.include_router(module.router, dependencies=reads)
    app.include_router(page.router)  # the page at / (static files; it holds no data)
    app.state.leaderboard = board
    app.include_router(health.metrics_router, dependencies=reads)
    for module in (events, health, users):
        app.include_router(module.router)
    app.add_middleware(UserListFastPath)  # innermost: the plain user list skips FastAPI's layers
    if log_lists and not log_anonymous_reads and key is not None:  # which reads came with the key
        app.add_middleware(KeyedRequests, key=key)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # refuses a large body before it is read
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: counts every answer, 413s included
    app.add_middleware(StartupError)
    return app


class StartupError:
    """ASGI middleware: a start that failed on a :class:`~zenrec.errors.ZenrecError` reports its one-line
    message to the server (uvicorn logs it) instead of the traceback text Starlette sends."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)

        async def send_short(message: Any) -> None:
            error = getattr(scope.get("app") and scope["app"].state, "startup_error", None)
            if message.get("type") == "lifespan.startup.failed" and error is not None:
                message = {**message, "message": f"cannot start: {error}"}
            await send(message)

        await self.app(scope, receive, send_short)
