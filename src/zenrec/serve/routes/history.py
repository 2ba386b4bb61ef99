"""``GET /users/{user_id}/history``: what the server knows a user did, with titles (the web page shows it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from zenrec.serve.routes.common import Id, error_responses, plain_id, state_of

# read_access is added by create_app when reads need the API key
router = APIRouter(tags=["users"], responses=error_responses(401, 422, 503))


class HistoryItemOut(BaseModel):
    """One item of a user's history."""

    item: Id
    title: str | None = None


class HistoryOut(BaseModel):
    """A user's items as the serving model sees them: training items, then the events posted since."""

    user: Id
    model_version: str
    known: bool = Field(description="whether the model was trained on this user")
    n_training: int = Field(description="how many training items the user has (the list may show fewer)")
    n_new: int = Field(description="how many items the user's events since training name (the list may show fewer)")
    new: list[HistoryItemOut] = Field(description="items of the events posted since training, newest first")
    training: list[HistoryItemOut] = Field(description="training items, the model's order where it keeps one "
                                           "(newest last), else by item index")


@router.get("/users/{user_id}/history", response_model=HistoryOut)
def user_history(
    request: Request,
    user_id: Annotated[str, Path(max_length=512, description="raw user id")],
    limit: Annotated[int, Query(ge=1, le=10_000, description="at most this many items per part")] = 100,
) -> dict[str, Any]:
    """A user's training items and the items of the events posted since, with titles.

    An unknown user without events has an empty history (its recommendations are popular items).
    """
    state = state_of(request)
    view = state.view
    user = plain_id(user_id, view.live.bundle.users)
    live = view.for_user(user)  # the version that serves the user's lists
    bundle = live.bundle
    u = bundle.user_index(user)
    training = bundle.stored_history(u)
    new = live.new_items(user)[::-1]

    def rows(idx: Any) -> list[dict[str, Any]]:
        ids = bundle.items.ids(idx) if len(idx) else []
        titles = [None] * len(idx) if bundle.titles is None else [str(t) for t in bundle.titles[idx]]
        return [{"item": _plain(i), "title": t} for i, t in zip(ids, titles, strict=True)]

    return {
        "user": user,
        "model_version": live.version,
        "known": u >= 0,
        "n_training": len(training),
        "n_new": len(new),
        "new": rows(new[:limit]),
        "training": rows(training[-limit:]),
    }


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x
