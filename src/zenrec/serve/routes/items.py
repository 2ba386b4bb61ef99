"""``GET /items/{item_id}/similar``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from zenrec.errors import UnknownIdError
from zenrec.serve.errors import ApiError
from zenrec.serve.routes.common import SimilarOut, error_responses, plain_id, state_of

# read_access is added by create_app when reads need the API key
router = APIRouter(tags=["items"], responses=error_responses(401, 404, 422, 503))


@router.get("/items/{item_id}/similar", response_model=SimilarOut)
def similar_items(
    request: Request,
    item_id: Annotated[str, Path(max_length=512, description="raw item id")],
    k: Annotated[int, Query(description="list length (1 … the server's max_k)")] = 10,
) -> dict[str, Any]:
    """Items most like this one: cosine of the model's item vectors, its item-item weights, or co-occurrence."""
    state = state_of(request)
    state.check_k(k)
    live = state.live
    try:
        out = live.similar(plain_id(item_id, live.bundle.items), k)
    except UnknownIdError as exc:
        raise ApiError(404, "unknown_item", str(exc)) from None
    body = out.to_dict()
    return {"item": body["user"], "items": body["items"], "model_version": body["model_version"],
            "list_id": body["list_id"], "method": body["method"]}
