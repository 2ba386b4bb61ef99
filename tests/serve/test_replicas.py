"""Several servers on one store behave as one service: events, score caches, promotions and erasures.

The fast tests run one app in-process beside "another writer" (a second
:class:`EventStore` on the same database, as another replica or ``zenrec
forget`` would be) and drive the follower by hand.  The slow test starts two
real ``zenrec serve`` processes on loopback against one store (SQLite file,
and PostgreSQL when ``ZENREC_TEST_POSTGRES_URL`` is set) and talks to them
over HTTP only.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from zenrec.cli import app as cli_app
from zenrec.errors import ConfigError
from zenrec.models.bundle import ModelBundle
from zenrec.serve.app import create_app
from zenrec.serve.live import LiveModel
from zenrec.store.erasure import KEY_ENV, user_hash
from zenrec.store.events import Event, EventStore
from zenrec.store.registry import ModelRegistry

USER = 196  # a user of ml-100k
KEY = "replica-test-erasure-key"
#: how long a change may take to reach the other server before the test calls it lost (the bound is 0.1 s)
PROPAGATION_DEADLINE_S = 10.0


def _items(body: dict) -> list:
    return [r["item"] for r in body["items"]]


def _scores(body: dict) -> dict:
    return {r["item"]: r["score"] for r in body["items"]}


def _copy_model(model_dirs, tmp_path: Path, name: str = "ease") -> Path:
    """A private copy (an erasure rewrites the model's files; the session's model must stay intact)."""
    return Path(shutil.copytree(model_dirs(name), tmp_path / name))


# ---------------------------------------------------------------- one app beside another writer


def test_events_and_erasures_of_another_writer_reach_the_server(model_dirs, tmp_path, shared_store_url, monkeypatch):
    from fastapi.testclient import TestClient

    from zenrec.retrain.erasure import forget

    monkeypatch.setenv(KEY_ENV, KEY)
    model = _copy_model(model_dirs, tmp_path)
    # the follower's thread waits a minute between reads: this test reads by hand, so nothing races it
    app = create_app(model, store_url=shared_store_url, sync_seconds=60, sync_notify=False)
    with TestClient(app, raise_server_exceptions=False) as client, EventStore(shared_store_url) as other:
        state = client.app.state.zenrec
        before = client.get(f"/users/{USER}/recommendations", params={"k": 10}).json()
        top = before["items"][0]["item"]
        assert client.get(f"/users/{USER}/recommendations", params={"k": 10}).json()["items"] == before["items"]
        assert len(state.live.score_cache) == 1  # the user's row is cached …

        other.append([Event(str(USER), str(top), "click")])  # … and another replica takes an event for them
        assert _items(client.get(f"/users/{USER}/recommendations", params={"k": 10}).json()) == _items(before)
        assert state.follower.step() == (1, 0)
        after = client.get(f"/users/{USER}/recommendations", params={"k": 10}).json()
        assert top not in _items(after)  # seen now, so excluded
        shared = set(_items(after)) & set(_items(before))
        # the user's row was scored afresh with the new item in it (EASE scores move), not read from the cache
        assert any(abs(_scores(after)[i] - _scores(before)[i]) > 1e-6 for i in shared)
        history = client.get(f"/users/{USER}/history").json()
        assert [r["item"] for r in history["new"]] == [top]
        assert state.follower.step() == (0, 0)  # nothing is applied twice

        # an erasure by `zenrec forget` (another process, the same store and model directory)
        report = forget(model, USER, other)
        assert report.events == 1
        assert client.get(f"/users/{USER}/recommendations", params={"k": 3}).json()["fallback"] is None
        other.append([Event(str(USER), "50", "click")])  # stored after the erasure: the user starting afresh
        events, erasures = state.follower.step()
        assert (events, erasures) == (1, 2)  # forget records the erasure twice (before and after the files)
        gone = client.get(f"/users/{USER}/recommendations", params={"k": 3}).json()
        history = client.get(f"/users/{USER}/history").json()
        assert history["known"] is False  # their training row is gone from the loaded model
        assert [r["item"] for r in history["new"]] == [50]  # the erased event went, the later one stayed
        assert gone["fallback"] is None  # an unknown user scored from its one new event
        health = client.get("/healthz").json()
        assert health["sync"]["mode"] == "poll" and health["sync"]["erasures_followed"] == 2
        assert health["sync"]["events_followed"] == 2 and health["problem"] is None
        metrics = client.get("/metrics").text
        assert "zenrec_events_followed_total 2.0" in metrics and "zenrec_erasures_followed_total 2.0" in metrics


def test_an_erasure_without_the_key_is_reported_not_skipped(model_dirs, tmp_path, monkeypatch):
    """A server that cannot read the erasure key keeps the erasure pending and says so in /healthz;
    events still flow."""
    from fastapi.testclient import TestClient

    from zenrec.store.erasure import erase_user_events

    monkeypatch.delenv(KEY_ENV, raising=False)
    model = _copy_model(model_dirs, tmp_path)
    url = f"sqlite:///{tmp_path / 'events.db'}"
    app = create_app(model, store_url=url, sync_seconds=60)
    with TestClient(app, raise_server_exceptions=False) as client, EventStore(url) as other:
        state = client.app.state.zenrec
        erase_user_events(other, USER, user_hash(b"a key this server does not have", USER))
        other.append([Event("someone-new", "50")])
        with pytest.raises(ConfigError, match="erasure key"):
            state.follower.step()
        health = client.get("/healthz").json()
        assert health["status"] == "degraded" and "erasure key" in health["problem"]
        assert health["sync"]["erasures_through"] == 0  # pending, not skipped
        assert client.get("/users/someone-new/history").json()["n_new"] == 1  # the event was applied anyway


def test_forget_through_a_seq_keeps_later_events_and_refuses_late_erased_ones(model_dirs):
    live = LiveModel(ModelBundle.load(model_dirs("ease")), "v")
    ev = [Event("u9", str(i)) for i in (1, 2, 3)]
    stored = [type("E", (), {"user": e.user, "item": e.item, "timestamp": e.timestamp + n, "seq": 10 + n})()
              for n, e in enumerate(ev)]
    assert live.apply_events(stored[:1] + stored[2:]) == 2  # seq 10 and 12
    removed = live.forget("u9", through_seq=11)
    assert removed["live_events"] == 1
    assert live.new_items("u9").tolist() == live.item_indices(["3"]).tolist()
    assert live.apply_events(stored[1:2]) == 0  # seq 11 was deleted by the erasure: met late, it stays out
    assert live.apply_events(stored[2:]) == 0  # seq 12 is already there
    assert live.forget("u9")["live_events"] == 1  # a local erasure (no seq) removes everything


def test_a_request_racing_an_erasure_caches_no_row_of_the_erased_user(model_dirs):
    """A list built while ``forget`` runs (a follower forgets while requests come in) must not leave the erased
    user's personal row in the score cache under the new stamp: the next list is the unknown user's."""
    from zenrec.models.query import Query

    live = LiveModel(ModelBundle.load(model_dirs("ease")), "v")
    assert live.recommend(Query(user=USER, k=5)).fallback is None  # cached
    drop = live.score_cache.drop

    def drop_then_serve(key: str) -> int:  # a request lands right after the cache row is dropped
        n = drop(key)
        live.recommend(Query(user=USER, k=5))
        return n

    live.score_cache.drop = drop_then_serve
    assert live.forget(str(USER), through_seq=1)["model_rows"] == 1
    assert live.recommend(Query(user=USER, k=5)).fallback == "popular"


def test_users_hashed_finds_vocabulary_and_new_users_only(model_dirs):
    live = LiveModel(ModelBundle.load(model_dirs("ease")), "v")
    key = b"k" * 32
    live.apply_events([type("E", (), {"user": "fresh", "item": "50", "timestamp": 1.0, "seq": 1})()])
    wanted = {user_hash(key, u): u for u in (USER, 1, "fresh", "nobody")}
    found = live.users_hashed(wanted, key)
    assert found == {user_hash(key, USER): [str(USER)], user_hash(key, 1): ["1"],
                     user_hash(key, "fresh"): ["fresh"]}
    live.forget(USER)
    assert live.users_hashed({user_hash(key, USER)}, key) == {}  # erased: its placeholder matches nothing


def test_sync_settings_are_checked(model_dirs, tmp_path):
    model = model_dirs("ease")
    for bad in (-1, 61, "fast", True, float("nan")):
        with pytest.raises(ConfigError, match="sync_seconds"):
            create_app(model, store_url=f"sqlite:///{tmp_path / 'e.db'}", sync_seconds=bad)
    with pytest.raises(ConfigError, match="sync_notify"):
        create_app(model, store_url=f"sqlite:///{tmp_path / 'e.db'}", sync_notify="yes")
    r = CliRunner().invoke(cli_app, ["serve", str(model), "--sync-seconds", "-1"])
    assert r.exit_code == 2 and "sync_seconds" in r.output and "Traceback" not in r.output


# ---------------------------------------------------------------- two real servers


def _until(what: str, fetch, ok, deadline_s: float = PROPAGATION_DEADLINE_S):
    """``fetch()`` until ``ok(value)``; returns the value and the seconds waited, or fails naming ``what``."""
    t0 = time.monotonic()
    while True:
        value = fetch()
        if ok(value):
            return value, time.monotonic() - t0
        if time.monotonic() - t0 > deadline_s:
            pytest.fail(f"{what}: not seen within {deadline_s:.0f} s (last: {value})")
        time.sleep(0.02)


@pytest.mark.slow
def test_two_servers_on_one_store_act_as_one(model_dirs, tmp_path, shared_store_url, serve_process):
    reg = ModelRegistry(tmp_path / "registry")
    v1 = reg.add(model_dirs("ease"), note="ease")
    reg.promote(v1, "first")
    v2 = reg.add(model_dirs("als"), note="als")
    args = ("--api-key", "write-key")
    a = serve_process(reg.root, shared_store_url, tmp_path / "a.log", *args)
    b = serve_process(reg.root, shared_store_url, tmp_path / "b.log", *args)
    key = {"X-API-Key": "write-key"}
    try:
        ha, hb = a.wait_healthy(), b.wait_healthy()
        mode = "notify" if shared_store_url.startswith("postgresql") else "poll"
        assert ha["sync"]["mode"] == hb["sync"]["mode"] == mode
        assert ha["model_version"] == hb["model_version"] == v1
        with httpx.Client(base_url=a.url, timeout=10) as ca, httpx.Client(base_url=b.url, timeout=10) as cb:

            def rec(c: httpx.Client, user: object, k: int = 10) -> dict:
                r = c.get(f"/users/{user}/recommendations", params={"k": k})
                assert r.status_code == 200, r.text
                return r.json()

            # 1. an event posted to A is in B's next answer: B's cached row goes, the item is excluded as seen
            first_b = rec(cb, USER)
            assert rec(cb, USER)["items"] == first_b["items"]  # served from B's score cache
            assert _items(rec(ca, USER)) == _items(first_b)
            top = first_b["items"][0]["item"]
            r = ca.post("/events", json={"user": USER, "item": top, "event_id": "a-1"}, headers=key)
            assert r.status_code == 200, r.text
            after_a = rec(ca, USER)
            assert top not in _items(after_a)
            after_b, waited = _until("A's event in B's list", lambda: rec(cb, USER), lambda x: top not in _items(x))
            assert _items(after_b) == _items(after_a)  # the same list as the server that took the event …
            np.testing.assert_allclose([s["score"] for s in after_b["items"]],
                                       [s["score"] for s in after_a["items"]], rtol=1e-5)
            shared = set(_items(after_b)) & set(_items(first_b))  # … scored afresh, not B's cached row
            assert any(abs(_scores(after_b)[i] - _scores(first_b)[i]) > 1e-6 for i in shared)

            # a user new to both: events posted to B personalise A's answer
            assert rec(ca, "fresh-1")["fallback"] == "popular"
            r = cb.post("/events", json={"events": [{"user": "fresh-1", "item": 50}, {"user": "fresh-1", "item": 172}]},
                        headers=key)
            assert r.status_code == 200, r.text
            fresh_a, _ = _until("B's events in A's list", lambda: rec(ca, "fresh-1"), lambda x: x["fallback"] is None)
            assert _items(fresh_a) == _items(rec(cb, "fresh-1")) and not {50, 172} & set(_items(fresh_a))

            # 2. a promotion through the registry reaches both; each replays the stored events into the new version
            promoted = CliRunner().invoke(cli_app, ["registry", "promote", str(reg.root), v2])
            assert promoted.exit_code == 0, promoted.output
            for c in (ca, cb):
                _until(f"{v2} served by {c.base_url}", lambda c=c: c.get("/healthz").json()["model_version"],
                       lambda v: v == v2, deadline_s=60)
            on_a, on_b = rec(ca, USER), rec(cb, USER)
            assert on_a["model_version"] == on_b["model_version"] == v2
            assert _items(on_a) == _items(on_b) and top not in _items(on_b)

            # 3. an erasure through A: B treats the user as unknown, and only new events bring them back
            r = ca.delete(f"/users/{USER}", headers=key)
            assert r.status_code == 200 and r.json()["events"] == 1, r.text
            assert rec(ca, USER)["fallback"] == "popular"
            _until("A's erasure on B", lambda: rec(cb, USER), lambda x: x["fallback"] == "popular")
            history = cb.get(f"/users/{USER}/history").json()
            assert history["known"] is False and history["n_new"] == 0
            assert ca.delete("/users/fresh-1", headers=key).status_code == 200
            _until("the erasure of a user known only by events", lambda: rec(cb, "fresh-1")["fallback"],
                   lambda f: f == "popular")
            r = cb.post("/events", json={"user": USER, "item": 50, "event_id": "b-after"}, headers=key)
            assert r.status_code == 200, r.text
            _until("an event after the erasure", lambda: rec(ca, USER), lambda x: x["fallback"] is None)
            assert ca.get(f"/users/{USER}/history").json()["n_new"] == 1

            for c in (ca, cb):
                health = c.get("/healthz").json()
                assert health["status"] == "ok" and health["sync"]["problem"] is None, health
            assert cb.get("/healthz").json()["sync"]["erasures_followed"] >= 2
            assert waited < PROPAGATION_DEADLINE_S
    finally:
        a.stop()
        b.stop()
