"""``GET /``: the web page (plain HTML and a little vanilla JavaScript shipped in ``zenrec/serve/static``).

The page calls the JSON API itself: a user's history (``/users/{id}/history``),
recommendations with reasons, feedback buttons that post events with the
list id, and a model view (``/model``) with the served versions, the
registry's traffic split and, when the server was started with one, the
leaderboard drawn as inline SVG.  Nothing is fetched from elsewhere: it works
offline.  The page itself holds no data, so it needs no API key; the key
field sends one with every call.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from zenrec.serve.errors import ApiError

router = APIRouter(include_in_schema=False)

_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
#: the page's files: name → (bytes, media type); read once
_FILES: dict[str, tuple[bytes, str]] = {}


def _files() -> dict[str, tuple[bytes, str]]:
    if not _FILES:
        for entry in resources.files("zenrec.serve").joinpath("static").iterdir():
            ext = entry.name.rsplit(".", 1)[-1]
            if entry.is_file() and ext in _TYPES:
                _FILES[entry.name] = (entry.read_bytes(), _TYPES[ext])
    return _FILES


def _send(name: str) -> Response:
    found = _files().get(name)
    if found is None:
        raise ApiError(404, "not_found", f"no page file {name!r}")
    body, media = found
    return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})


@router.get("/")
def page() -> Response:
    """The web page."""
    return _send("index.html")


@router.get("/static/{name}")
def static(name: str) -> Response:
    """One of the page's script and style files."""
    return _send(name)
