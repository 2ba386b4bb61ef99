"""``GET /users/{user_id}/recommendations`` and ``POST /recommendations`` (anonymous sessions)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from starlette.concurrency import run_in_threadpool

from zenrec.errors import UnknownIdError
from zenrec.models.query import Query as RecQuery
from zenrec.serve.errors import ApiError
from zenrec.serve.live import INLINE_MAX_ITEMS
from zenrec.serve.routes.common import (
    Id,
    ListOut,
    allowed_for,
    error_responses,
    json_response,
    parse_filter,
    plain_id,
    state_of,
)

# read_access is added by create_app when reads need the API key (no dependency to resolve otherwise)
router = APIRouter(tags=["recommendations"], responses=error_responses(400, 401, 404, 413, 422, 503))

_FILTER_HELP = (
    "JSON list of allowed item ids, or an attribute rule on the item table: JSON "
    '(`{"genre": "Comedy", "price": {"lt": 20}}`) or text (`genre=Comedy, price<20`)'
)


class SessionIn(BaseModel):
    """An anonymous session: its recent items, oldest first."""

    model_config = ConfigDict(extra="forbid")

    items: list[Id] = Field(max_length=1000, description="item ids the session interacted with, oldest first")
    k: StrictInt = Field(10, json_schema_extra={"minimum": 1}, description="list length (1 … the server's max_k)")
    exclude_seen: StrictBool = Field(True, description="leave out the session's own items")
    filter: list[Id] | dict[str, Any] | str | None = Field(None, description=_FILTER_HELP)
    reasons: StrictBool = Field(False, description="explain each item by the session's items related to it")


@router.get("/users/{user_id}/recommendations", response_model=ListOut)
async def user_recommendations(
    request: Request,
    user_id: Annotated[str, Path(max_length=512, description="raw user id")],
    k: Annotated[int, Query(description="list length (1 … the server's max_k)", json_schema_extra={"minimum": 1})] = 10,
    exclude_seen: Annotated[bool, Query(description="leave out items the user already interacted with")] = True,
    filter: Annotated[str | None, Query(max_length=100_000, description=_FILTER_HELP)] = None,
    reasons: Annotated[bool, Query(description="explain each item by the user's items related to it")] = False,
) -> Response:
    """Top-k for a user, from its training history plus every event posted since.

    An unknown user with posted events is scored from them; without any, the
    list holds popular items and says `"fallback": "popular"`.
    """
    return json_response(await user_list(state_of(request), user_id, k, exclude_seen, filter, reasons))


async def user_list(state: Any, user_id: str, k: int, exclude_seen: bool = True, filter: str | None = None,
                    reasons: bool = False) -> dict[str, Any]:
    """The body of a user's list (``GET /users/{user_id}/recommendations``, and its fast path in
    :mod:`zenrec.serve.fastpath`); raises :class:`~zenrec.serve.errors.ApiError` on a bad parameter."""
    started = time.perf_counter()
    state.check_k(k)
    view = state.view
    user = plain_id(user_id, view.live.bundle.users)
    live = view.for_user(user)  # under a traffic split, the user's version
    query = RecQuery(user=user, k=k, exclude_seen=exclude_seen, filter=allowed_for(live, parse_filter(filter)),
                     reasons=reasons)
    if live.cheap_for(user):  # in the event loop: a thread hand-off would cost more than the list
        out = live.recommend(query)
    else:
        out = await run_in_threadpool(live.recommend, query)
    return state.served(out, live, "user", started)


@router.post("/recommendations", response_model=ListOut)
async def session_recommendations(request: Request, body: SessionIn) -> Response:
    """Top-k for an anonymous session given its recent items (sequence models read their order)."""
    started = time.perf_counter()
    state = state_of(request)
    state.check_k(body.k)
    live = state.live
    query = RecQuery(user=None, history=body.items, k=body.k, exclude_seen=body.exclude_seen,
                     filter=allowed_for(live, body.filter), reasons=body.reasons)
    try:
        if live.n_items <= INLINE_MAX_ITEMS:
            out = live.recommend(query)
        else:
            out = await run_in_threadpool(live.recommend, query)
    except UnknownIdError as exc:
        raise ApiError(422, "unknown_item", f"items: {exc}") from None
    return json_response(state.served(out, live, "session", started))


class ContributionOut(BaseModel):
    """One part of an explained score: a history item, or a named part (a latent factor, a feature group)."""

    item: Id | None = Field(None, description="a history item (raw id)")
    name: str | None = Field(None, description="a named part, e.g. `factor 3` or `text`")
    title: str | None = None
    weight: float = Field(description="its part of the score, in the model's score units")
    share: float | None = Field(None, description="weight / the sum of the weights (when the weights add up)")


class ExplanationOut(BaseModel):
    """Why the model scores an item for a user: `score = baseline + Σ contributions + residual`."""

    user: Id | None = None
    item: Id
    title: str | None = None
    model: str | None = None
    model_version: str
    score: float = Field(description="the score a list shows for this user and item")
    method: str = Field(description="weights, als-solve, factors, integrated-gradients, transition, parts, popular "
                        "(a fallback: nothing credited) or similarity (not a split of the score)")
    sentence: str = Field(description="one line for a person")
    contributions: list[ContributionOut] = Field(description="strongest first (by absolute weight)")
    baseline: float = Field(description="the part no input is credited with (an item bias, an empty history's score)")
    residual: float = Field(description="what the split misses (0 for exact splits)")
    additive: bool = Field(description="whether the weights are parts of the score")
    note: str | None = None
    extra: dict[str, Any] | None = None


@router.get("/users/{user_id}/recommendations/{item_id}/why", response_model=ExplanationOut)
async def why(
    request: Request,
    user_id: Annotated[str, Path(max_length=512, description="raw user id")],
    item_id: Annotated[str, Path(max_length=512, description="raw item id")],
) -> Response:
    """Why the model scores this item for this user, from the model's own scoring (its training history plus
    every event posted since).  404 for a user the server knows nothing of, or an unknown item."""
    state = state_of(request)
    view = state.view
    user = plain_id(user_id, view.live.bundle.users)
    live = view.for_user(user)
    bundle = live.bundle
    item = plain_id(item_id, bundle.items)
    new = live.new_items(user)
    if bundle.user_index(user) < 0 and not len(new):
        raise ApiError(404, "unknown_user", f"unknown user {user!r}: no training history and no events")
    try:
        exp = (await run_in_threadpool(bundle.explain, RecQuery(user=user), [item], 5, new))[0]
    except UnknownIdError as exc:
        raise ApiError(404, "unknown_item", str(exc)) from None
    return json_response({**exp.to_dict(), "model_version": live.version})
