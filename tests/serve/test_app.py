"""The HTTP app through TestClient: real-time lists for EASE, ALS and SASRec, sessions, fallbacks,
similar items, idempotent events, filters, bad input as JSON 4xx, API keys, metrics, restart replay."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest

from zenrec.errors import ConfigError
from zenrec.models.bundle import ModelBundle
from zenrec.store.events import EventStore

KEY = "test-key"
SEQ_USERS = 300  # the users the sasrec fixture trains on (conftest.SEQ_USERS)
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def ease_dir(model_dirs):
    return model_dirs("ease")


@pytest.fixture(scope="module")
def app_client(serve_app):
    return serve_app


def ranks(body) -> dict:
    return {x["item"]: r for r, x in enumerate(body["items"])}


@pytest.fixture()
def client(ease_dir, tmp_path, app_client):
    with app_client(ease_dir, tmp_path / "events.db", api_key=KEY, max_k=2000) as c:
        yield c


def _unseen(bundle: ModelBundle, user, skip: int = 0, n: int = 1) -> list:
    u = int(bundle.users.index([user])[0])
    seen = set(bundle.seen[u].indices.tolist())
    order = np.argsort(-bundle.model.popularity_)
    return [bundle.items.ids([i])[0].item() for i in order if i not in seen][skip : skip + n]


def _error(r, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]["message"]


def test_known_user_list(client, ease_dir):
    bundle = ModelBundle.load(ease_dir)
    r = client.get("/users/196/recommendations", params={"k": 7})
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == 196 and body["fallback"] is None
    assert body["model_version"] == client.get("/healthz").json()["model_version"]
    uuid.UUID(body["list_id"])
    items = [x["item"] for x in body["items"]]
    assert len(items) == 7 and all(x["title"] for x in body["items"])
    seen = set(bundle.items.ids(bundle.seen[bundle.users.index([196])[0]].indices).tolist())
    assert seen.isdisjoint(items)
    want = bundle.recommend_users([196], k=7)["item_id"].tolist()
    assert items == want
    assert client.get("/users/196/recommendations", params={"k": 7}).json()["list_id"] != body["list_id"]


def test_unknown_user_gets_flagged_popular_items(client, ease_dir):
    bundle = ModelBundle.load(ease_dir)
    body = client.get("/users/never-seen/recommendations", params={"k": 5}).json()
    assert body["fallback"] == "popular"
    assert [x["item"] for x in body["items"]] == bundle.items.ids(np.argsort(-bundle.model.popularity_)[:5]).tolist()


def test_realtime_ease(client, ease_dir):
    bundle = ModelBundle.load(ease_dir)
    x = _unseen(bundle, 196)[0]
    n = bundle.model.n_items_
    before = client.get("/users/196/recommendations", params={"k": n, "exclude_seen": False}).json()
    r = client.post("/events", json={"user": 196, "item": x, "type": "click"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["stored"][0]["duplicate"] is False
    after = client.get("/users/196/recommendations", params={"k": n, "exclude_seen": False}).json()
    b = {i["item"]: i["score"] for i in before["items"]}
    gain = {i["item"]: i["score"] - b[i["item"]] for i in after["items"]}
    xi = int(bundle.items.index([x])[0])
    ids = list(gain)
    np.testing.assert_allclose([gain[i] for i in ids], bundle.model.weights_[xi, bundle.items.index(ids)], atol=1e-5)
    listed = [i["item"] for i in client.get("/users/196/recommendations", params={"k": 50}).json()["items"]]
    assert x not in listed


def test_realtime_als_fold_in(model_dirs, tmp_path, app_client):
    d = model_dirs("als")
    bundle = ModelBundle.load(d)
    m = bundle.model
    user, xs = 196, _unseen(bundle, 196, skip=30, n=3)
    with app_client(d, tmp_path / "events.db") as c:
        before = c.get(f"/users/{user}/recommendations", params={"k": 1000, "exclude_seen": False}).json()
        for x in xs:
            assert c.post("/events", json={"user": user, "item": x}).status_code == 200
        after = c.get(f"/users/{user}/recommendations", params={"k": 1000, "exclude_seen": False}).json()
    # the served list is the model's fold-in of the training row plus the new items
    u = int(bundle.users.index([user])[0])
    row = bundle.seen[u].tolil()
    row[0, bundle.items.index(xs)] = 1
    row = row.tocsr()
    want = np.argsort(-(m.fold_in(row) @ m.item_factors_.T)[0])[:20]
    assert [i["item"] for i in after["items"][:20]] == bundle.items.ids(want).tolist()
    assert [i["item"] for i in after["items"][:20]] != [i["item"] for i in before["items"][:20]]
    rb, ra = ranks(before), ranks(after)
    assert sum(ra.get(x, 10**6) < rb.get(x, 10**6) for x in xs) == len(xs)  # the new items moved up


def test_realtime_sasrec(model_dirs, tmp_path, ml100k, app_client):
    d = model_dirs("sasrec")
    bundle = ModelBundle.load(d)
    m, n = bundle.model, bundle.model.n_items_
    inter = ml100k.interactions
    part = inter.user < SEQ_USERS
    same = (inter.user[:-1] == inter.user[1:]) & part[:-1]
    prev, nxt = inter.item[:-1][same].astype(np.int64), inter.item[1:][same].astype(np.int64)
    pairs = [divmod(int(p), n) for p in np.argsort(-np.bincount(prev * n + nxt, minlength=n * n))[:3]]
    pool = iter(range(0, SEQ_USERS, 2))
    moved, tried = 0, 0
    q = {"k": 1000, "exclude_seen": False}
    with app_client(d, tmp_path / "events.db") as c:
        for xi, yi in pairs:  # x is most often followed by y in training
            x, y = (v.item() for v in bundle.items.ids([xi, yi]))
            for _ in range(5):
                u = next(u for u in pool if not {xi, yi} & set(bundle.seen[u].indices.tolist()))
                user = bundle.users.ids([u])[0].item()
                before = c.get(f"/users/{user}/recommendations", params=q).json()
                assert c.post("/events", json={"user": user, "item": x}).status_code == 200
                after = c.get(f"/users/{user}/recommendations", params=q).json()
                # exactly the model reading the training sequence followed by the new item
                seq = m.sequences_[u][m.sequences_[u] > 0]
                want = np.argsort(-m.score_sequences(np.append(seq, xi + 1)[None, :])[0], kind="stable")[:10]
                top = [i["item"] for i in after["items"][:10]]
                assert top == bundle.items.ids(want).tolist()
                assert top != [i["item"] for i in before["items"][:10]]
                tried += 1
                moved += ranks(after).get(y, 10**6) < ranks(before).get(y, 10**6)
    assert moved >= 0.7 * tried, f"the appended item's successor moved up for only {moved} of {tried} users"


def test_session_recommendations(client, ease_dir):
    bundle = ModelBundle.load(ease_dir)
    r = client.post("/recommendations", json={"items": [50, 172], "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fallback"] is None and body["user"] is None
    w = bundle.model.weights_
    s = w[bundle.items.index([50, 172])].sum(axis=0)
    s[bundle.items.index([50, 172])] = -np.inf
    assert [x["item"] for x in body["items"]] == bundle.items.ids(np.argsort(-s)[:5]).tolist()
    empty = client.post("/recommendations", json={"items": [], "k": 3}).json()
    assert empty["fallback"] == "popular"
    msg = _error(client.post("/recommendations", json={"items": [50, 123456]}), 422, "unknown_item")
    assert "123456" in msg


def test_similar_items(client):
    body = client.get("/items/50/similar", params={"k": 5}).json()
    assert body["item"] == 50 and body["method"] == "weights"
    items = [x["item"] for x in body["items"]]
    assert len(items) == 5 and 50 not in items and 181 in items  # Return of the Jedi
    assert "999999" in _error(client.get("/items/999999/similar"), 404, "unknown_item")


def test_idempotent_events(client, tmp_path):
    ev = {"user": "u-1", "item": 50, "event_id": "click-42"}
    first = client.post("/events", json=ev, headers=AUTH).json()["stored"][0]
    second = client.post("/events", json=ev, headers=AUTH).json()["stored"][0]
    assert first["duplicate"] is False and second["duplicate"] is True and second["seq"] == first["seq"]
    batch = client.post("/events", json={"events": [ev, {**ev, "event_id": "click-43"}]}, headers=AUTH).json()
    assert [s["duplicate"] for s in batch["stored"]] == [True, False]
    with EventStore(f"sqlite:///{tmp_path / 'events.db'}") as store:
        assert store.count() == 2
    assert client.get("/healthz").json()["events_applied"] == 2


def test_events_on_unknown_items_are_stored_not_scored(client):
    before = client.get("/users/196/recommendations").json()["items"]
    r = client.post("/events", json={"user": 196, "item": "brand-new-item"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["unknown_items"] == ["brand-new-item"]
    assert client.get("/users/196/recommendations").json()["items"] == before


def test_filters(ease_dir, tmp_path, ml100k, app_client):
    table = ml100k.item_table.assign(year=pd.to_numeric(ml100k.item_table["year"], errors="coerce"))
    with app_client(ease_dir, tmp_path / "e.db", item_table=table) as c:
        bundle = ModelBundle.load(ease_dir)
        fresh = _unseen(bundle, 1, skip=5, n=4)
        allow = [1, 2, *fresh]  # user 1 has seen items 1 and 2
        body = c.get("/users/1/recommendations", params={"filter": json.dumps(allow), "k": 10}).json()
        assert sorted(x["item"] for x in body["items"]) == sorted(fresh)
        body = c.get("/users/1/recommendations", params={"filter": '{"year": {"ge": 1997}}', "k": 30}).json()
        years = table["year"].to_numpy()[ml100k.items.index([x["item"] for x in body["items"]])]
        assert len(years) == 30 and (years >= 1997).all()
        text = c.get("/users/1/recommendations", params={"filter": "year>=1997", "k": 30}).json()
        assert [x["item"] for x in text["items"]] == [x["item"] for x in body["items"]]
        _error(c.get("/users/1/recommendations", params={"filter": '{"nope": 1}'}), 422, "invalid_filter")
        _error(c.get("/users/1/recommendations", params={"filter": "[1, 777777]"}), 422, "unknown_item")
        _error(c.get("/users/1/recommendations", params={"filter": "[1, "}), 422, "invalid_filter")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("post", "/recommendations", {"content": b'{"items": [50,', "headers": {"content-type": "application/json"}},
         400, "malformed_json"),
        ("post", "/events", {"content": b"{not json", "headers": {**AUTH, "content-type": "application/json"}},
         400, "malformed_json"),
        ("get", "/users/196/recommendations?k=0", {}, 422, "invalid_k"),
        ("get", "/users/196/recommendations?k=-3", {}, 422, "invalid_k"),
        ("get", "/users/196/recommendations?k=1000000000000", {}, 422, "invalid_k"),
        ("get", "/users/196/recommendations?k=ten", {}, 422, "invalid_request"),
        ("get", "/items/50/similar?k=99999999", {}, 422, "invalid_k"),
        ("post", "/recommendations", {"json": {"items": [50], "k": 0}}, 422, "invalid_k"),
        ("post", "/recommendations", {"json": {"items": "50"}}, 422, "invalid_request"),
        ("post", "/recommendations", {"json": {"items": [50], "surprise": 1}}, 422, "invalid_request"),
        ("post", "/events", {"json": {"user": 1, "item": 50}}, 401, "unauthorized"),
        ("post", "/events", {"json": {"user": 1, "item": 50}, "headers": {"X-API-Key": "wrong"}}, 401, "unauthorized"),
        ("post", "/events", {"json": {"item": 50}, "headers": AUTH}, 422, "invalid_request"),
        ("post", "/events", {"json": {"user": "", "item": 50}, "headers": AUTH}, 422, "invalid_event"),
        ("post", "/events", {"json": {"user": "a", "item": 50, "colour": 1}, "headers": AUTH}, 422, "invalid_request"),
        ("post", "/events", {"json": {"events": []}, "headers": AUTH}, 422, "invalid_request"),
        ("post", "/events", {"content": b'{"user": "a", "item": 50, "value": Infinity}',
                             "headers": {**AUTH, "content-type": "application/json"}}, 422, "invalid_event"),
        ("post", "/events", {"content": b"x" * 2_000_000, "headers": AUTH}, 413, "body_too_large"),
        ("get", "/no/such/route", {}, 404, "not_found"),
        ("delete", "/events", {"headers": AUTH}, 405, "method_not_allowed"),
        # request limits: an operator value that is an object, a filter nested past the JSON parser, strict types
        ("get", "/users/196/recommendations?filter=" + '{"title":{"lt":{"a":1}}}', {}, 422, "invalid_filter"),
        ("post", "/recommendations", {"json": {"items": [50], "filter": {"title": {"lt": {"a": 1}}}}}, 422,
         "invalid_filter"),
        ("get", "/users/196/recommendations?filter=" + "[" * 3000 + "]" * 3000, {}, 422, "invalid_filter"),
        ("post", "/recommendations", {"content": ('{"items":[50],"filter":' + "[" * 3000 + "]" * 3000 + "}").encode(),
                                      "headers": {"content-type": "application/json"}}, 400, "bad_request"),
        ("get", "/users/196/recommendations?filter=" + '{"title":[[1]]}', {}, 422, "invalid_filter"),
        ("get", "/users/196/recommendations?filter=" + '{"title":null}', {}, 422, "invalid_filter"),
        ("post", "/recommendations", {"json": {"items": [50], "filter": {"year": {"in": list(range(10_001))}}}}, 422,
         "invalid_filter"),
        ("post", "/recommendations", {"json": {"items": [50], "k": True}}, 422, "invalid_request"),
        ("post", "/recommendations", {"json": {"items": [50], "reasons": 0}}, 422, "invalid_request"),
        ("post", "/recommendations", {"json": {"items": [50], "exclude_seen": "yes"}}, 422, "invalid_request"),
        # event times: outside what a store keeps, or past the server's window around its clock
        ("post", "/events", {"json": {"user": "a", "item": 50, "timestamp": 1e300}, "headers": AUTH}, 422,
         "invalid_event"),
        ("post", "/events", {"json": {"user": "a", "item": 50, "timestamp": -1e15}, "headers": AUTH}, 422,
         "invalid_event"),
        ("post", "/events", {"json": {"user": "a", "item": 50, "timestamp": 1e10}, "headers": AUTH}, 422,
         "invalid_event"),
        ("post", "/events", {"json": {"events": [{"user": "a", "item": 50},
                                                 {"user": "a", "item": 50, "timestamp": 1.7e308}]},
                             "headers": AUTH}, 422, "invalid_event"),
    ],
)
def test_bad_input_is_a_json_4xx(client, method, path, kwargs, status, code):
    _error(getattr(client, method)(path, **kwargs) if method != "post" else client.post(path, **kwargs), status, code)


def test_oversized_body_without_content_length(client):
    def chunks():
        for _ in range(40):
            yield b"x" * 50_000

    r = client.post("/events", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    _error(r, 413, "body_too_large")


def test_api_key_on_reads(ease_dir, tmp_path, monkeypatch, app_client):
    monkeypatch.setenv("ZENREC_API_KEY", "from-env")
    with app_client(ease_dir, tmp_path / "e.db", require_key_for_reads=True) as c:
        _error(c.get("/users/196/recommendations"), 401, "unauthorized")
        _error(c.get("/items/50/similar"), 401, "unauthorized")
        assert c.get("/users/196/recommendations", headers={"X-API-Key": "from-env"}).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_metrics(client):
    client.get("/users/196/recommendations")
    client.get("/users/196/recommendations?k=0")
    client.post("/events", json={"user": 196, "item": 50}, headers=AUTH)
    version = client.get("/healthz").json()["model_version"]
    text = client.get("/metrics").text
    assert 'zenrec_requests_total{method="GET",route="/users/{user_id}/recommendations",status="200"} 1.0' in text
    assert 'zenrec_requests_total{method="GET",route="/users/{user_id}/recommendations",status="422"} 1.0' in text
    assert "zenrec_events_stored_total 1.0" in text
    assert f'zenrec_model_info{{model="ease",model_version="{version}"}} 1.0' in text
    assert 'zenrec_request_seconds_count{method="POST",route="/events"} 1.0' in text


def test_score_cache_is_reported_and_an_event_still_shows_at_once(ease_dir, tmp_path, app_client):
    import gc

    bundle = ModelBundle.load(ease_dir)
    with app_client(ease_dir, tmp_path / "e.db", durability="os") as c:
        assert gc.get_freeze_count() > 0  # the startup heap is out of the collector's full passes
        first = c.get("/users/196/recommendations").json()
        assert c.get("/users/196/recommendations").json()["items"] == first["items"]
        x = first["items"][0]["item"]
        c.post("/events", json={"user": 196, "item": x})
        after = c.get("/users/196/recommendations").json()
        assert x not in [i["item"] for i in after["items"]]  # the cached row was not reused
        version = c.get("/healthz").json()["model_version"]
        text = c.get("/metrics").text
        assert f'zenrec_score_cache_lookups{{model_version="{version}",result="hit"}} 1.0' in text
        assert f'zenrec_score_cache_lookups{{model_version="{version}",result="miss"}} 2.0' in text
        cache = c.get("/healthz").json()["score_cache"]
        assert cache["users"] == 1 and cache["bytes"] == bundle.model.n_items_ * 4
    with app_client(ease_dir, tmp_path / "f.db", score_cache_mb=0) as c:
        c.get("/users/196/recommendations")
        assert c.get("/healthz").json()["score_cache"] == {"users": 0, "bytes": 0, "hit_rate": 0.0}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"durability": "never"}, "durability"),
    ({"score_cache_mb": -1}, "score_cache_mb"),
    ({"score_cache_mb": "64"}, "score_cache_mb"),
])
def test_bad_server_options_are_named(ease_dir, tmp_path, kwargs, message):
    from zenrec.errors import ConfigError
    from zenrec.serve.app import create_app

    with pytest.raises(ConfigError, match=message):
        create_app(ease_dir, store_url=f"sqlite:///{tmp_path}/e.db", **kwargs)


def test_restart_replays_stored_events(ease_dir, tmp_path, app_client):
    store = tmp_path / "events.db"
    with app_client(ease_dir, store) as c:
        c.post("/events", json={"events": [{"user": "newcomer", "item": 50}, {"user": "newcomer", "item": 172}]})
        c.post("/events", json={"user": 196, "item": 50})
        first_new = c.get("/users/newcomer/recommendations").json()
        first_old = c.get("/users/196/recommendations").json()
        assert first_new["fallback"] is None
    with app_client(ease_dir, store) as c:
        assert c.get("/healthz").json()["events_replayed"] == 3
        again_new = c.get("/users/newcomer/recommendations").json()
        assert again_new["fallback"] is None and again_new["items"] == first_new["items"]
        assert c.get("/users/196/recommendations").json()["items"] == first_old["items"]
    with app_client(ease_dir, tmp_path / "other.db") as c:  # a fresh store: nothing to replay
        assert c.get("/users/newcomer/recommendations").json()["fallback"] == "popular"


def test_registry_root_is_served_with_its_version(ease_dir, tmp_path, app_client):
    from zenrec.store.registry import ModelRegistry

    reg = ModelRegistry(tmp_path / "reg")
    v = reg.add(ease_dir)
    reg.promote(v)
    with app_client(tmp_path / "reg", tmp_path / "reg" / "events.db") as c:
        assert c.get("/users/196/recommendations").json()["model_version"] == v
        assert len(c.get("/users/196/recommendations").json()["items"]) == 10


def test_the_openapi_schema_names_the_errors_each_route_sends(client):
    spec = client.get("/openapi.json").json()
    for path, method, codes in [
        ("/users/{user_id}/recommendations", "get", {"401", "404", "422"}),
        ("/recommendations", "post", {"400", "401", "413", "422"}),
        ("/items/{item_id}/similar", "get", {"401", "404", "422"}),
        ("/events", "post", {"400", "401", "413", "422", "503"}),
    ]:
        responses = spec["paths"][path][method]["responses"]
        assert codes <= set(responses), (path, sorted(responses))
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    k = next(p for p in spec["paths"]["/users/{user_id}/recommendations"]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["minimum"] == 1
    session = spec["components"]["schemas"]["SessionIn"]["properties"]
    assert session["k"]["minimum"] == 1 and session["reasons"]["type"] == "boolean"


def test_an_unexpected_error_is_one_log_line_with_a_request_id(ease_dir, tmp_path, caplog, monkeypatch):
    """A bug answers 500 with a request id; the log holds one error line naming it, the traceback only at debug."""
    from fastapi.testclient import TestClient

    from zenrec.serve.app import create_app
    from zenrec.serve.live import LiveModel

    def broken(self, query):  # noqa: ANN001, ANN202
        raise RuntimeError("boom " + "x" * 5000)

    monkeypatch.setattr(LiveModel, "recommend", broken)
    app = create_app(ease_dir, store_url=f"sqlite:///{tmp_path / 'e.db'}", log_lists=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        caplog.clear()
        with caplog.at_level("INFO", logger="zenrec.serve.errors"):
            r = c.get("/users/196/recommendations")
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    rid = r.headers["X-Request-Id"]
    assert rid in r.json()["error"]["message"]
    lines = [rec for rec in caplog.records if rec.name == "zenrec.serve.errors"]
    assert len(lines) == 1 and rid in lines[0].getMessage() and lines[0].exc_info is None
    assert len(lines[0].getMessage()) < 400


def test_event_times_keep_to_the_servers_window(ease_dir, tmp_path):
    """Defaults: up to a day ahead of the server's clock and any time since 1970; max_event_age narrows the past."""
    import time

    from fastapi.testclient import TestClient

    from zenrec.serve.app import create_app

    now = time.time()
    app = create_app(ease_dir, store_url=f"sqlite:///{tmp_path / 'e.db'}", api_key=KEY, max_event_age=3600)
    with TestClient(app, raise_server_exceptions=False) as c:
        ok = c.post("/events", json={"user": "a", "item": 50, "timestamp": now - 600}, headers=AUTH)
        assert ok.status_code == 200
        soon = c.post("/events", json={"user": "a", "item": 50, "timestamp": now + 3600}, headers=AUTH)
        assert soon.status_code == 200
        old = c.post("/events", json={"user": "a", "item": 172, "timestamp": now - 7200}, headers=AUTH)
        assert old.status_code == 422 and "before the server's clock" in old.json()["error"]["message"]
        late = c.post("/events", json={"events": [{"user": "a", "item": 1}, {"user": "a", "item": 2,
                                                                              "timestamp": now + 3 * 86400}]},
                      headers=AUTH)
        assert late.status_code == 422 and late.json()["error"]["message"].startswith("events[1]: timestamp")
        assert c.get("/healthz").json()["events_applied"] == 2  # nothing of the refused batch was stored
    with pytest.raises(ConfigError, match="'max_event_ahead' parameter must be a number of seconds"):
        create_app(ease_dir, store_url=f"sqlite:///{tmp_path / 'f.db'}", max_event_ahead=-1)


def test_an_event_id_names_one_event(client):
    """A retry is acknowledged as a duplicate; the same id on another user or item is a 422 and stores nothing."""
    first = client.post("/events", json={"user": "a", "item": 50, "event_id": "x-1"}, headers=AUTH)
    retry = client.post("/events", json={"user": "a", "item": 50, "event_id": "x-1"}, headers=AUTH)
    assert first.status_code == retry.status_code == 200
    assert retry.json()["stored"][0]["duplicate"] and retry.json()["stored"][0]["seq"] == first.json()["stored"][0]["seq"]
    reused = client.post("/events", json={"events": [{"user": "c", "item": 1},
                                                     {"user": "b", "item": 50, "event_id": "x-1"}]}, headers=AUTH)
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "invalid_event"
    assert "already names the event of user 'a'" in reused.json()["error"]["message"]
    assert client.get("/healthz").json()["events_applied"] == 1


def test_session_lists_can_stay_out_of_the_served_log(ease_dir, tmp_path):
    """Every read writes a row by default; log_sessions=False leaves anonymous session reads out."""
    from fastapi.testclient import TestClient

    from zenrec.serve.app import create_app
    from zenrec.store.served import served_frame

    app = create_app(ease_dir, store_url=f"sqlite:///{tmp_path / 'e.db'}", log_sessions=False, served_max_rows=100)
    with TestClient(app, raise_server_exceptions=False) as c:
        for _ in range(3):
            assert c.post("/recommendations", json={"items": [50]}).status_code == 200
        assert c.get("/users/196/recommendations").status_code == 200
        state = app.state.zenrec
        assert state.served_log.flush(10) and state.served_log.max_rows == 100
        kinds = served_frame(EventStore(f"sqlite:///{tmp_path / 'e.db'}"))["kind"].tolist()
    assert kinds == ["user"]


def test_anonymous_reads_can_stay_out_of_the_served_log(ease_dir, tmp_path):
    """log_anonymous_reads=False: a read without the API key (or with a wrong one) writes no served_lists row, a
    read with the key does; with no key set at all, no read is logged."""
    from fastapi.testclient import TestClient

    from zenrec.serve.app import create_app
    from zenrec.store.served import served_frame

    url = f"sqlite:///{tmp_path / 'anon.db'}"
    app = create_app(ease_dir, store_url=url, api_key=KEY, log_anonymous_reads=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/users/196/recommendations").status_code == 200
        assert c.get("/users/196/recommendations", headers={"X-API-Key": "wrong"}).status_code == 200
        assert c.post("/recommendations", json={"items": [50]}).status_code == 200
        keyed = c.get("/users/186/recommendations", headers=AUTH).json()["list_id"]
        session = c.post("/recommendations", json={"items": [50]}, headers=AUTH).json()["list_id"]
        assert app.state.zenrec.served_log.flush(10)
        logged = served_frame(EventStore(url))
    assert sorted(logged["list_id"]) == sorted([keyed, session]) and sorted(logged["kind"]) == ["session", "user"]

    url = f"sqlite:///{tmp_path / 'nokey.db'}"
    app = create_app(ease_dir, store_url=url, api_key=None, log_anonymous_reads=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/users/196/recommendations", headers=AUTH).status_code == 200
        assert app.state.zenrec.served_log.flush(10)
        assert len(served_frame(EventStore(url))) == 0


def test_the_served_log_stays_within_its_bound_under_many_reads(ease_dir, tmp_path):
    """Four times the bound in reads through the real app: pruned after every batch (served_prune_s=0), the
    served_lists table never holds more than the bound once the queued lists are written."""
    import sqlite3

    from fastapi.testclient import TestClient

    from zenrec.serve.app import create_app

    bound, path = 100, tmp_path / "bounded.db"
    app = create_app(ease_dir, store_url=f"sqlite:///{path}", served_max_rows=bound, served_prune_s=0.0)

    def rows() -> int:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM served_lists").fetchone()[0])

    counts = []
    with TestClient(app, raise_server_exceptions=False) as c:
        log = app.state.zenrec.served_log
        for _ in range(4):
            for n in range(bound):
                assert c.get(f"/users/{1 + n % 900}/recommendations", params={"k": 20}).status_code == 200
            assert rows() <= 2 * bound  # before the flush: the bound plus at most this round's lists
            assert log.flush(10)
            counts.append(rows())
        assert log.written == 4 * bound and log.dropped == log.failed == 0
        assert log.pruned == log.written - counts[-1]
    # after each flush: within the bound (a list sharing the edge's timestamp may go too, hence the slack below)
    assert max(counts) <= bound and min(counts) >= bound - 5, counts
