"""Reasons: each recommended item is explained by the user's own items, with the model's own numbers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from zenrec.models.bundle import ModelBundle
from zenrec.models.query import Query
from zenrec.serve.live import LiveModel


@pytest.fixture(scope="module")
def ease(model_dirs):
    return ModelBundle.load(model_dirs("ease"))


def test_ease_reasons_are_the_largest_weights_from_the_users_items(ease):
    live = LiveModel(ease, "v1")
    out = live.recommend(Query(user=196, k=10, reasons=True))
    u = int(ease.users.index([196])[0])
    hist = ease.seen[u].indices
    w = ease.model.weights_
    for rec in out:
        i = int(ease.items.index([rec.item])[0])
        col = w[hist, i]
        expected = hist[np.argsort(-col, kind="stable")[:3]]
        expected = [j for j in expected if w[j, i] > 0]
        got = [int(ease.items.index([r["item"]])[0]) for r in rec.reasons]
        assert got == expected
        assert [r["weight"] for r in rec.reasons] == pytest.approx([float(w[j, i]) for j in expected])
        assert all(r["method"] == "weights" and r["title"] for r in rec.reasons)
    assert sum(len(r.reasons) for r in out) >= 20  # a real user's list is explained


def test_a_new_event_becomes_a_reason(ease):
    live = LiveModel(ease, "v1")
    # a user with few items; post an item and ask for the items it explains best
    u = int(np.argmin(np.diff(ease.seen.indptr)))
    user = ease.users.ids([u])[0].item()
    seen = set(ease.seen[u].indices.tolist())
    x = next(int(i) for i in np.argsort(-ease.model.popularity_) if int(i) not in seen)
    raw_x = ease.items.ids([x])[0].item()
    live.apply_events([SimpleNamespace(user=str(user), item=raw_x, timestamp=1e12, seq=1)])
    out = live.recommend(Query(user=user, k=20, reasons=True))
    assert any(r["item"] == raw_x for rec in out for r in rec.reasons)


def test_reasons_over_http_and_absent_unless_asked(model_dirs, serve_app, tmp_path):
    with serve_app(model_dirs("sasrec"), tmp_path / "e.db") as c:
        plain = c.get("/users/5/recommendations").json()
        assert all(it.get("reasons") is None for it in plain["items"])
        asked = c.get("/users/5/recommendations", params={"reasons": "true"}).json()
        assert all(isinstance(it["reasons"], list) for it in asked["items"])
        # a sequence model explains itself: its history items credited by integrated gradients, positive only
        assert all(r["method"] == "integrated-gradients" and r["weight"] > 0 for it in asked["items"]
                   for r in it["reasons"])
        assert sum(len(it["reasons"]) for it in asked["items"]) >= 10
        body = c.post("/recommendations", json={"items": [1, 2, 3], "reasons": True}).json()
        for it in body["items"]:
            assert {r["item"] for r in it["reasons"]} <= {1, 2, 3}
