"""Every path that returns recommendations gives the same items and scores for the same query.

The paths: the model itself (``Recommender.recommend`` on indices), the bundle
(raw ids), the CLI's CSV (``zenrec recommend --users … -o``), the HTTP app
(``GET /users/{id}/recommendations``) and the evaluator's top lists.  They
share one scoring path and one filtered top-k; hypothesis draws the model, the
user (string ids, unknown ones too), ``k`` and whether seen items are excluded.
Scores agree to float32 rounding; items agree except where two scores tie
within that rounding (then either order is right).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zenrec.data.vocab import Vocabulary
from zenrec.evaluate.evaluator import evaluate
from zenrec.models import Query, TrainOptions, create_model
from zenrec.models.bundle import ModelBundle

MODELS = {
    "pop": {},
    "itemknn": {},
    "ease": {},
    "als": {"factors": 16, "iterations": 4},
    "transition": {},
    "lmf": {"epochs": 2, "factors": 16},
    "sasrec": {"epochs": 1, "factors": 16, "max_len": 20, "batch_size": 256},
}
N_USERS = 150


@pytest.fixture(scope="module")
def world(ml100k, tmp_path_factory):
    """Each model fitted on the first users of ml-100k, saved as a bundle with string ids, and served."""
    from fastapi.testclient import TestClient

    from zenrec.serve.app import create_app

    inter = ml100k.interactions
    part = inter.subset(inter.user < N_USERS)
    users = Vocabulary([f"user-{i}" for i in range(part.n_users)], "user")
    items = Vocabulary([f"item-{i}" for i in range(part.n_items)], "item")
    root = tmp_path_factory.mktemp("paths")
    out = {}
    for name, params in MODELS.items():
        model = create_model(name, **params).fit(part, None, TrainOptions(seed=3, threads=1))
        bundle = ModelBundle(model, users, items, sp.csr_matrix(part.binary))
        path = bundle.save(root / name)
        app = create_app(path, store_url=f"sqlite:///{root / (name + '.db')}", log_lists=False)
        client = TestClient(app, raise_server_exceptions=False).__enter__()
        out[name] = (model, ModelBundle.load(path), path, client, part)
    yield out
    for *_, client, _ in out.values():
        client.__exit__(None, None, None)


def _same(a_items, a_scores, b_items, b_scores, what: str) -> None:
    a_items, b_items = list(a_items), list(b_items)
    a_scores, b_scores = np.asarray(a_scores, np.float64), np.asarray(b_scores, np.float64)
    assert len(a_items) == len(b_items), f"{what}: {len(a_items)} items against {len(b_items)}"
    scale = max(1.0, float(np.abs(a_scores).max(initial=0.0)))
    np.testing.assert_allclose(a_scores, b_scores, rtol=1e-5, atol=1e-6 * scale, err_msg=what)
    tol = 2e-5 * scale
    for j, (x, y) in enumerate(zip(a_items, b_items, strict=True)):
        if x != y:  # only a tie may swap: the other path's item must sit at an equal score nearby
            near = [b_items[i] for i in range(len(b_items)) if abs(b_scores[i] - a_scores[j]) <= tol]
            assert x in near or j >= len(a_items) - sum(abs(a_scores - a_scores[-1]) <= tol), (
                f"{what}: rank {j + 1} holds {x!r} against {y!r} (scores {a_scores[j]} / {b_scores[j]})")


def _cli(path: Path, user: str, k: int, exclude_seen: bool, tmp: Path) -> pd.DataFrame:
    from typer.testing import CliRunner

    from zenrec.cli import app

    users = tmp / "users.csv"
    users.write_text(f"user_id\n{user}\n")
    target = tmp / "out.csv"
    args = ["recommend", str(path), "--users", str(users), "-k", str(k), "-o", str(target)]
    result = CliRunner().invoke(app, args + ([] if exclude_seen else ["--include-seen"]))
    assert result.exit_code == 0, result.output
    return pd.read_csv(target, dtype={"user_id": str, "item_id": str})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(MODELS)),
    user=st.integers(-3, N_USERS - 1),
    k=st.integers(1, 40),
    exclude_seen=st.booleans(),
)
def test_every_path_returns_the_same_list(world, tmp_path, name, user, k, exclude_seen):
    model, bundle, path, client, part = world[name]
    raw = f"user-{user}" if user >= 0 else f"stranger-{-user}"
    seen = part.binary[user].indices if user >= 0 else np.empty(0, np.int64)

    py = model.recommend(Query(user=user if user >= 0 else None, k=k, exclude=seen if exclude_seen else None))
    py_items = bundle.items.ids(py.items).tolist()
    bun = bundle.recommend(Query(user=raw, k=k, exclude_seen=exclude_seen))
    _same(py_items, py.scores, bun.items.tolist(), bun.scores, f"{name}: model vs bundle")
    assert bun.fallback == py.fallback == (None if user >= 0 else "popular")

    csv = _cli(path, raw, k, exclude_seen, tmp_path)
    _same(py_items, py.scores, csv["item_id"].tolist(), csv["score"], f"{name}: model vs CLI CSV")
    assert csv["rank"].tolist() == list(range(1, len(csv) + 1))

    r = client.get(f"/users/{raw}/recommendations", params={"k": k, "exclude_seen": str(exclude_seen).lower()})
    assert r.status_code == 200, r.text
    body = r.json()
    _same(py_items, py.scores, [x["item"] for x in body["items"]], [x["score"] for x in body["items"]],
          f"{name}: model vs HTTP")
    assert body["fallback"] == py.fallback

    if user >= 0:  # the evaluator ranks known users
        # every item is the truth: by the masking rule a seen (masked) item is no target, the unseen ones are
        every = np.ones(part.binary.shape, np.float32)
        res = evaluate(model, every, [part.binary] if exclude_seen else [], ks=(k,), metrics=("ndcg",),
                       beyond=False, users=np.asarray([user]), keep_per_user=True)
        keep = res.top[0] >= 0
        _same(py.items.tolist(), py.scores, res.top[0][keep].tolist(), res.top_scores[0][keep],
              f"{name}: model vs evaluator")
