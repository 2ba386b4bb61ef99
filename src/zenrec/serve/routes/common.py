"""What every route shares: the server state, API-key checks, filters and the response bodies."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Request, Response, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from zenrec.errors import UnknownIdError, ZenrecError
from zenrec.serve.errors import ApiError

__all__ = [
    "Id",
    "ItemOut",
    "ListOut",
    "SimilarOut",
    "state_of",
    "read_access",
    "write_access",
    "parse_filter",
    "allowed_for",
    "plain_id",
    "json_response",
    "ErrorOut",
    "error_responses",
]

#: a raw user or item id: a string or an integer
Id = StrictStr | StrictInt

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key")


def state_of(request: Request) -> Any:
    """The app's :class:`~zenrec.serve.app.ServeState` (503 while the app is not started)."""
    state = getattr(request.app.state, "zenrec", None)
    if state is None:
        raise ApiError(503, "unavailable", "the model is not loaded yet")
    return state


async def read_access(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Dependency of read endpoints: the API key, when the server requires it for reads."""
    state_of(request).check_key(key, write=False)


async def write_access(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Dependency of write endpoints: the API key, whenever the server has one."""
    state_of(request).check_key(key, write=True)


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response built directly (the route's ``response_model`` still documents it in OpenAPI).

    FastAPI would validate and re-serialise a returned dict against the
    response model; for the hot read paths that costs more than the list.
    """
    return Response(json_bytes(body), status_code=status, media_type="application/json")


def json_bytes(body: Any) -> bytes:
    """A response body as compact UTF-8 JSON (no NaN: a score that is not a number is a bug to see)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def plain_id(raw: str, vocabulary: Any) -> Any:
    """A path id as the vocabulary spells it: stripped as every stored id is (:mod:`zenrec.data.ids`), an
    integer for integer vocabularies when it parses."""
    raw = raw.strip()
    if getattr(vocabulary, "is_integer", False):
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


def parse_filter(text: str | None) -> Any:
    """The ``filter`` query parameter: JSON (a list of item ids, or an attribute rule object), or a rule string."""
    if text is None or not text.strip():
        return None
    stripped = text.strip()
    if stripped[0] in "[{\"":
        try:
            return json.loads(stripped)
        except ValueError as exc:
            raise ApiError(422, "invalid_filter", f"filter: not valid JSON ({exc})") from None
        except RecursionError:
            raise ApiError(422, "invalid_filter", "filter: nested too deeply (a rule is a list of ids or "
                           '{"column": value or {"operator": value}})') from None
    return stripped


def allowed_for(live: Any, rule: Any) -> Any:
    """The allowed-items mask of a filter rule (422 naming what is wrong)."""
    if rule is None:
        return None
    if isinstance(rule, list) and not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in rule):
        raise ApiError(422, "invalid_filter", "filter: a list must hold item ids (strings or integers)")
    if not isinstance(rule, (list, dict, str)):
        raise ApiError(422, "invalid_filter", "filter: give a list of item ids, a rule object or a rule string")
    try:
        return live.allowed_mask(rule)
    except UnknownIdError as exc:
        raise ApiError(422, "unknown_item", f"filter: {exc}") from None
    except ZenrecError as exc:
        raise ApiError(422, "invalid_filter", str(exc)) from None
    except (TypeError, ValueError) as exc:  # a rule value pandas cannot compare
        raise ApiError(422, "invalid_filter", f"filter: {exc}") from None


class ReasonOut(BaseModel):
    """Why an item was recommended: one of the user's items related to it."""

    item: Id
    title: str | None = None
    weight: float = Field(description="the item's part of the score (an explanation's contribution), or its "
                          "similarity where the model cannot split its scores (larger: stronger)")
    method: str = Field(description="how the model's explanation was computed: weights (EASE/ItemKNN item-item "
                        "weights, a split of the score), als-solve, integrated-gradients, transition; or, for models "
                        "that cannot split their scores, similarity: embedding (cosine of item vectors) or "
                        "cooccurrence")
    share: float | None = Field(None, description="the item's share of the credited score, where the weights are "
                                "parts of the score")


class ItemOut(BaseModel):
    """One recommended item."""

    item: Id
    score: float
    title: str | None = None
    reasons: list[ReasonOut] | None = Field(None, description="with reasons=true: the user's items behind it")


class ListOut(BaseModel):
    """A served recommendation list."""

    model_config = ConfigDict(json_schema_extra={"description": "`fallback` is set when the model could not "
                                                 "personalise (e.g. `popular` for an unknown user)"})

    user: Id | None = None
    items: list[ItemOut]
    model_version: str
    list_id: str = Field(description="fresh per served list; send it back with events to attribute them")
    fallback: str | None = None


class SimilarOut(BaseModel):
    """Items similar to one item."""

    item: Id
    items: list[ItemOut]
    model_version: str
    list_id: str
    method: str = Field(description="embedding (cosine of item vectors), weights (item-item model) or cooccurrence")


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and a message naming the field and what was expected."""

    code: str = Field(description="stable, machine-readable: invalid_k, invalid_filter, unknown_item, unauthorized, …")
    message: str


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


_ERROR_TEXT = {
    400: "malformed request: the body is not valid JSON, or a header is invalid (JSON); a request line or headers "
         "over the HTTP server's limit, about 80 KB (plain text, from the HTTP layer)",
    401: "missing or wrong API key (X-API-Key)",
    404: "unknown user or item id (where the id is part of the path or the model's policy is to raise)",
    413: "request body larger than the server's limit",
    422: "a parameter or field has the wrong type or value (k, filter, ids, event fields)",
    503: "the model or the event store is not available right now",
}


#: a request line or header block over the HTTP server's limit (uvicorn with httptools: about 80 KB, e.g. a
#: very long ``filter``) is refused by the HTTP layer before the app sees it, as a plain-text 400
_PLAIN_400 = {"text/plain": {"schema": {"type": "string"}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route really sends, each with the :class:`ErrorOut` body
    (and, for 400, the HTTP layer's plain-text answer to an oversized request head)."""
    out: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut, "description": _ERROR_TEXT[code]}
                                            for code in codes}
    if 400 in out:
        out[400] = {**out[400], "content": _PLAIN_400}
    return out
