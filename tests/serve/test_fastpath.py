"""The fast path of ``GET /users/{user_id}/recommendations``: it answers the plain request with the same body as
the FastAPI route, counts it under the route's metrics label, and leaves every other request (other
parameters, bad values, a key required for reads) to the route, whose answers, errors included, are unchanged."""

from __future__ import annotations

import pytest

from zenrec.serve.fastpath import UserListFastPath

KEY = "fast-key"


@pytest.fixture(scope="module")
def ease_dir(model_dirs):
    return model_dirs("ease")


@pytest.fixture()
def client(ease_dir, tmp_path, serve_app):
    with serve_app(ease_dir, tmp_path / "events.db", max_k=100) as c:
        yield c


def fast_path(client) -> UserListFastPath:
    """The app's fast-path middleware (ASGI middlewares hold the next app in ``.app``)."""
    obj = client.app.middleware_stack
    while obj is not None and not isinstance(obj, UserListFastPath):
        obj = getattr(obj, "app", None)
    assert obj is not None, "the fast path is not installed"
    return obj


def without_list_id(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "list_id"}


def test_plain_request_is_taken_and_matches_the_route(client):
    fp = fast_path(client)
    before = fp.taken
    fast = client.get("/users/1/recommendations?k=7")
    assert fp.taken == before + 1
    routed = client.get("/users/1/recommendations?k=7&reasons=false")  # another parameter: the route answers
    assert fp.taken == before + 1
    assert fast.status_code == routed.status_code == 200
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert without_list_id(fast.json()) == without_list_id(routed.json())
    assert len(fast.json()["items"]) == 7
    assert fast.json()["list_id"] != routed.json()["list_id"]


def test_exclude_seen_and_default_k(client, ease_dir):
    from zenrec.models.bundle import ModelBundle

    fp = fast_path(client)
    before = fp.taken
    bundle = ModelBundle.load(ease_dir)
    u = bundle.user_index(1)
    seen = {int(x) for x in bundle.items.ids(bundle.seen_items(u))}
    kept = client.get("/users/1/recommendations?exclude_seen=false&k=50").json()
    dropped = client.get("/users/1/recommendations?exclude_seen=1").json()
    assert fp.taken == before + 2
    assert len(dropped["items"]) == 10  # the default k
    assert not seen & {x["item"] for x in dropped["items"]}
    assert seen & {x["item"] for x in kept["items"]}  # EASE ranks some training items high when they may show


def test_unknown_user_gets_the_popular_fallback(client):
    fp = fast_path(client)
    before = fp.taken
    body = client.get("/users/no-such-user/recommendations?k=3").json()
    assert fp.taken == before + 1
    assert body["fallback"] == "popular" and len(body["items"]) == 3


@pytest.mark.parametrize(("query", "status", "code"), [
    ("k=0", 422, "invalid_k"),
    ("k=101", 422, "invalid_k"),  # digits the fast path reads, beyond max_k: the route's 422
    ("k=abc", 422, "invalid_request"),
    ("k=", 422, "invalid_request"),
    ("exclude_seen=maybe", 422, "invalid_request"),
    ("filter=%5B%22nope%22%5D", 422, "unknown_item"),
])
def test_requests_it_does_not_take_get_the_routes_errors(client, query, status, code):
    fp = fast_path(client)
    before = fp.taken
    r = client.get(f"/users/1/recommendations?{query}")
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert fp.taken == before


def test_long_user_id_is_the_routes_422(client):
    fp = fast_path(client)
    r = client.get("/users/" + "u" * 513 + "/recommendations")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert fp.taken == 0


def test_metrics_count_fast_answers_under_the_route(client):
    for _ in range(3):
        assert client.get("/users/2/recommendations?k=5").status_code == 200
    text = client.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("zenrec_requests_total{")
                and 'route="/users/{user_id}/recommendations"' in x and 'status="200"' in x)
    assert float(line.rsplit(" ", 1)[1]) >= 3


def test_key_required_for_reads_leaves_it_to_the_route(ease_dir, tmp_path, serve_app):
    with serve_app(ease_dir, tmp_path / "e.db", api_key=KEY, require_key_for_reads=True) as c:
        fp = fast_path(c)
        assert c.get("/users/1/recommendations").status_code == 401
        assert c.get("/users/1/recommendations", headers={"X-API-Key": KEY}).status_code == 200
        assert fp.taken == 0
