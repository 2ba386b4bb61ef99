"""The hot read answered before FastAPI: ``GET /users/{user_id}/recommendations`` with at most ``k`` and
``exclude_seen``.

On a large catalogue a known user's list is one ANN search, and FastAPI's routing, parameter parsing,
dependency and exception layers cost about a third of the request's CPU (profiled with py-spy under load).
This ASGI middleware takes only the common, well-formed request: a path id of at most 512 characters, ``k``
as plain digits, ``exclude_seen`` as ``true``/``false``/``1``/``0``, nothing else in the query string, and
no API key required for reads.  Anything else — another parameter, a value FastAPI might read differently,
a bad ``k``, any :class:`~zenrec.serve.errors.ApiError` or :class:`~zenrec.errors.ZenrecError` — goes on
to the FastAPI route, which answers it (errors included) as documented.  Both build the list with
:func:`zenrec.serve.routes.recommendations.user_list`, so the bodies are the same.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from zenrec.errors import ZenrecError
from zenrec.serve.errors import ApiError
from zenrec.serve.routes.common import json_bytes
from zenrec.serve.routes.recommendations import user_list

__all__ = ["ROUTE", "ROUTE_KEY", "UserListFastPath"]

#: the route template the fast path answers (and labels its requests' metrics with)
ROUTE = "/users/{user_id}/recommendations"
#: the scope key under which a middleware names the route template it answered
ROUTE_KEY = "zenrec.route"
_PATH = re.compile(r"/users/([^/]{1,512})/recommendations")
_K = re.compile(r"[1-9][0-9]{0,5}")
_BOOL = {"true": True, "1": True, "false": False, "0": False}
_HEADERS = [(b"content-type", b"application/json")]


class UserListFastPath:
    """ASGI middleware: answers the plain ``GET /users/{user_id}/recommendations`` itself (see the module
    docstring); ``taken`` counts the requests it answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.taken = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = self._params(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        state = getattr(scope["app"].state, "zenrec", None) if params is not None else None
        if state is None:
            await self.app(scope, receive, send)
            return
        try:
            state.check_key(None, write=False)  # a key required for reads: the route checks the header
            body = json_bytes(await user_list(state, *params))
        except (ApiError, ZenrecError):  # the FastAPI route answers it, as documented
            await self.app(scope, receive, send)
            return
        scope[ROUTE_KEY] = ROUTE  # the request metrics' label (FastAPI puts its route object in scope["route"])
        self.taken += 1
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _params(scope: Scope) -> tuple[str, int, bool] | None:
        """(user id, k, exclude_seen) of a request the fast path takes, else None."""
        if scope.get("root_path"):
            return None
        m = _PATH.fullmatch(scope["path"])
        if m is None:
            return None
        k, exclude_seen = 10, True
        query = scope.get("query_string") or b""
        if query:
            try:
                pairs = parse_qsl(query.decode("ascii"), keep_blank_values=True, strict_parsing=True)
            except (UnicodeDecodeError, ValueError):
                return None
            names = [name for name, _ in pairs]
            if len(set(names)) != len(names):
                return None
            for name, value in pairs:
                if name == "k" and _K.fullmatch(value):
                    k = int(value)
                elif name == "exclude_seen" and value in _BOOL:
                    exclude_seen = _BOOL[value]
                else:
                    return None
        return m.group(1), k, exclude_seen
