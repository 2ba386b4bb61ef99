"""``GET /users/{id}/recommendations/{item}/why``: the model's explanation of one score, as JSON."""

from __future__ import annotations

import pytest


def test_why_explains_a_served_score(model_dirs, serve_app, tmp_path):
    with serve_app(model_dirs("ease"), tmp_path / "e.db") as c:
        listed = c.get("/users/196/recommendations", params={"k": 3, "reasons": "true"}).json()
        top = listed["items"][0]
        r = c.get(f"/users/196/recommendations/{top['item']}/why")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["item"] == top["item"] and body["user"] == 196 and body["method"] == "weights"
        assert body["score"] == pytest.approx(top["score"], abs=1e-5)
        assert sum(x["weight"] for x in body["contributions"]) == pytest.approx(body["score"], abs=1e-5)
        assert body["sentence"].startswith("Because of") and body["model_version"] == listed["model_version"]
        assert top["reasons"][0]["item"] == body["contributions"][0]["item"]


def test_why_404s_unknown_user_and_item_as_json(model_dirs, serve_app, tmp_path):
    with serve_app(model_dirs("ease"), tmp_path / "e.db") as c:
        r = c.get("/users/no-such-user/recommendations/50/why")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_user"
        r = c.get("/users/196/recommendations/999999/why")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_item"
        assert "999999" in r.json()["error"]["message"]


def test_why_for_a_sequence_model_credits_history_positions(model_dirs, serve_app, tmp_path):
    with serve_app(model_dirs("sasrec"), tmp_path / "e.db") as c:
        top = c.get("/users/5/recommendations", params={"k": 1}).json()["items"][0]
        body = c.get(f"/users/5/recommendations/{top['item']}/why").json()
        assert body["method"] == "integrated-gradients" and body["contributions"]
        assert body["score"] == pytest.approx(top["score"], abs=1e-4)
        # baseline + contributions + residual is the score; the integration error stays small
        assert abs(body["residual"]) < 0.1 * max(1.0, abs(body["score"] - body["baseline"]))
