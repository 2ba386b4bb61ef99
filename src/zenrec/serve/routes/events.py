"""``POST /events``: one event or a batch, stored durably, then visible to the next recommendation."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from zenrec.errors import DataError
from zenrec.serve.errors import ApiError
from zenrec.serve.routes.common import Id, error_responses, state_of, write_access

router = APIRouter(tags=["events"], dependencies=[Depends(write_access)],
                   responses=error_responses(400, 401, 413, 422, 503))

#: most events in one request
MAX_BATCH = 1000


class EventIn(BaseModel):
    """One behaviour event."""

    model_config = ConfigDict(extra="forbid")

    user: Id = Field(description="raw user id (a new user is fine)")
    item: Id = Field(description="raw item id (one the model does not know is stored but not scored)")
    type: str = Field("click", description="view, click, favorite, cart, purchase, rating, or an alias declared at "
                      "ingest (e.g. buy); stored as the type it names, an unknown name is refused with 422")
    value: float | None = Field(None, description="strength or rating (default 1)")
    timestamp: float | None = Field(None, description="epoch seconds (default: now)")
    event_id: str | None = Field(None, description="client id: the same id twice is stored once")
    list_id: str | None = Field(None, description="the served list this event answers (for attribution)")


class EventBatch(BaseModel):
    """Several events in one request (stored in one transaction)."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class StoredOut(BaseModel):
    """What the store acknowledged for one event."""

    seq: int
    event_id: str | None = None
    duplicate: bool


class EventsOut(BaseModel):
    """The acknowledgement: sent only after the events are committed."""

    stored: list[StoredOut]
    model_version: str
    unknown_items: list[Id] = Field(description="items the served model does not know: stored, not scored")


def _check_time(ts: float, now: float, ahead: float | None, age: float | None, where: str) -> None:
    """A 422 when an event's time lies outside the server's window around its clock."""
    if ahead is not None and ts > now + ahead:
        raise ApiError(422, "invalid_event", f"{where}timestamp {ts!r} lies {ts - now:.0f} s after the server's clock; "
                       f"at most {ahead:.0f} s ahead are accepted (epoch seconds expected)")
    if age is not None and ts < now - age:
        raise ApiError(422, "invalid_event", f"{where}timestamp {ts!r} lies {now - ts:.0f} s before the server's "
                       f"clock; at most {age:.0f} s back are accepted")


@router.post("/events", response_model=EventsOut)
async def post_events(
    request: Request,
    body: Annotated[EventIn | EventBatch, Body(description="one event, or {\"events\": [...]}")],
) -> dict[str, Any]:
    """Store events durably (idempotent on `event_id`); the next recommendation for their users reflects them."""
    from zenrec.store.events import Event

    state = state_of(request)
    given = body.events if isinstance(body, EventBatch) else [body]
    events = []
    now = time.time()
    vocab = state.view.live.bundle.events  # the event names declared at ingest, carried by the model
    for i, e in enumerate(given):
        data = e.model_dump(exclude_none=True)
        data["model_version"] = state.lists.version_of(e.list_id)
        where = f"events[{i}]: " if isinstance(body, EventBatch) else ""
        kind = vocab.canonical(e.type)
        if kind is None:
            raise ApiError(422, "invalid_event", f"{where}unknown event type {e.type!r}; expected one of "
                           f"{vocab.accepted()} (declare a log's own names at ingest with --event-alias NAME=TYPE)")
        data["type"] = kind
        try:
            events.append(Event(**data))
        except DataError as exc:
            raise ApiError(422, "invalid_event", f"{where}{exc}") from None
        _check_time(events[-1].timestamp, now, state.max_event_ahead, state.max_event_age, where)
    try:  # the writer's thread commits; the event loop waits without holding a pool thread
        stored = await asyncio.wait_for(asyncio.wrap_future(state.writer.submit(events)), timeout=60)
    except asyncio.TimeoutError:
        raise ApiError(503, "store_unavailable", "the event store did not commit within 60 s; retry with the "
                       "same event ids") from None
    except DataError as exc:  # e.g. an event id already naming another event: nothing of the request was stored
        raise ApiError(422, "invalid_event", str(exc)) from None
    fresh = [SimpleNamespace(user=e.user, item=e.item, timestamp=e.timestamp, seq=s.seq)
             for e, s in zip(events, stored, strict=True) if not s.duplicate]
    view = state.view  # read after the commit: a version swapped in meanwhile gets the events too
    for live in view.models.values():
        live.apply_events(fresh)
    live = view.live
    for e, s in zip(events, stored, strict=True):
        if e.model_version is not None and not s.duplicate:
            state.metrics.events_attributed.labels(e.model_version, e.type).inc()
    n_dup = sum(s.duplicate for s in stored)
    state.metrics.events_stored.inc(len(stored) - n_dup)
    state.metrics.events_duplicate.inc(n_dup)
    known = live.bundle.items.index([e.item for e in events], missing="mask")
    unknown = list(dict.fromkeys(e.item for e, i in zip(events, known, strict=True) if i < 0))
    return {
        "stored": [{"seq": s.seq, "event_id": s.event_id, "duplicate": s.duplicate} for s in stored],
        "model_version": live.version,
        "unknown_items": unknown,
    }
