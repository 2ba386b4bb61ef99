"""``DELETE /users/{user_id}``: erase a user everywhere (``zenrec forget`` over HTTP; the write key guards it)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from zenrec.data.ids import normalize_id
from zenrec.serve.errors import ApiError
from zenrec.serve.routes.common import error_responses, state_of, write_access

router = APIRouter(tags=["users"], dependencies=[Depends(write_access)],
                   responses=error_responses(401, 404, 422, 503))


class ForgetOut(BaseModel):
    """What the erasure removed, per place; every count is 0 for a user never seen (the call is idempotent)."""

    user_hash: str = Field(description="the keyed hash (HMAC-SHA256) that names the user in the tombstones and the "
                           "audit log; the raw id is kept nowhere")
    events: int = Field(description="events deleted from the store")
    served_lists: int = Field(description="served lists deleted from the store")
    training_log_rows: int = Field(description="rows removed from the training logs of the registry's versions")
    versions: dict[str, dict[str, int]] = Field(description="per version directory rewritten: vocabulary entries, "
                                                "seen and history entries and per-user array rows erased")
    live: dict[str, int] = Field(description="removed from the loaded versions: events since training, cached "
                                 "score rows, model rows")


@router.delete("/users/{user_id}", response_model=ForgetOut)
async def forget_user(request: Request, user_id: str) -> dict[str, Any]:
    """Erase a user: their events and served lists, their state in every loaded version, their rows in every
    registered version's files; their keyed hash joins the tombstones so no later retrain sees them. From the
    next read they are an unknown user. 200 with zero counts for a user never seen."""
    from zenrec.retrain.erasure import forget

    state = state_of(request)
    try:
        user = normalize_id(user_id)
    except ValueError as exc:
        raise ApiError(422, "invalid_user", f"user_id {exc}") from None
    if state.source is None:
        raise ApiError(503, "unavailable", "this server has no model directory or registry to erase from")

    def purge(u: Any) -> dict[str, int]:
        out: dict[str, int] = {}
        if state.served_log is not None:
            state.served_log.flush()  # queued lists of the user reach the store before its rows are deleted
        for live in state.view.models.values():
            for k, v in live.forget(u).items():
                out[k] = out.get(k, 0) + v
        return out

    report = await asyncio.to_thread(forget, state.source, user, state.store, purge)
    return {"user_hash": report.user_hash, **report.counts()}
