"""HTTP errors of the server, all rendered as ``{"error": {"code": ..., "message": ...}}``.

:class:`ApiError` is what routes raise; :func:`install_error_handlers` maps
it, request-validation failures, Starlette's own HTTP errors and zenrec's
exceptions to a 4xx (or 503 when the store is down) with that JSON body, so
no user input can produce a traceback or a non-JSON answer.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from zenrec.errors import ArtifactError, ConfigError, DataError, UnknownIdError, ZenrecError

__all__ = ["ApiError", "error_body", "install_error_handlers"]

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An HTTP error with a machine-readable code and a human-readable message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message}}


def _response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _loc(loc: Any) -> str:
    parts = [str(x) for x in loc if x not in ("body",)] if isinstance(loc, (list, tuple)) else [str(loc)]
    return ".".join(parts) or "body"


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    for e in errors:
        if e.get("type") == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "not valid JSON")
            return 400, "malformed_json", f"the request body is not valid JSON: {why} (at character {e['loc'][-1]})"
    parts = []
    for e in errors[:5]:
        parts.append(f"{_loc(e.get('loc', ()))}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 422, "invalid_request", "; ".join(parts) + more


def zenrec_error_response(exc: ZenrecError) -> JSONResponse:
    """The HTTP answer for one of zenrec's own exceptions."""
    from zenrec.store.events import StoreError

    if isinstance(exc, UnknownIdError):
        return _response(404, "unknown_id", str(exc))
    if isinstance(exc, StoreError):
        log.error("event store error: %s", exc)
        return _response(503, "store_unavailable", str(exc))
    if isinstance(exc, (ConfigError, DataError)):
        return _response(422, "invalid_request", str(exc))
    if isinstance(exc, ArtifactError):
        return _response(503, "model_unavailable", str(exc))
    return _response(422, "invalid_request", str(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of ``app`` as the JSON error body."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _validation_message(exc)
        return _response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path} (see /docs)"
        return _response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(ZenrecError)
    async def _zenrec(request: Request, exc: ZenrecError) -> JSONResponse:
        return zenrec_error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # a bug: one log line per request at error level (the traceback at debug), found again by its id
        rid = uuid.uuid4().hex[:12]
        log.error("request %s: unhandled %s on %s %s: %s", rid, type(exc).__name__, request.method,
                  request.url.path, str(exc)[:200])
        log.debug("request %s traceback", rid, exc_info=exc)
        return _response(500, "internal_error",
                         f"internal error ({type(exc).__name__}); the server log has request {rid}",
                         headers={"X-Request-Id": rid})
