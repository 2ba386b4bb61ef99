"""LiveModel: new events change a user's scores through the model itself, fallbacks are flagged,
unknown ids are named, similar items come from the model's own item geometry."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from zenrec.errors import UnknownIdError
from zenrec.models.bundle import ModelBundle
from zenrec.models.query import Query
from zenrec.serve.live import LiveModel


def _event(user, item, ts=1e12, seq=1):
    return SimpleNamespace(user=user, item=item, timestamp=ts, seq=seq)


@pytest.fixture(scope="module")
def ease(model_dirs):
    return ModelBundle.load(model_dirs("ease"))


def _unseen_popular(bundle: ModelBundle, user, n: int = 1) -> list:
    u = int(bundle.users.index([user])[0])
    seen = set(bundle.seen[u].indices.tolist())
    order = np.argsort(-bundle.model.popularity_)
    return [bundle.items.ids([i])[0].item() for i in order if i not in seen][:n]


def test_ease_new_event_adds_the_items_weight_row(ease):
    live = LiveModel(ease, "v1")
    x = _unseen_popular(ease, 196)[0]
    before = live.recommend(Query(user=196, k=ease.model.n_items_, exclude_seen=False))
    live.apply_events([_event("196", x)])
    after = live.recommend(Query(user=196, k=ease.model.n_items_, exclude_seen=False))
    b = {r.item: r.score for r in before}
    a = {r.item: r.score for r in after}
    ids = list(a)
    gain = np.asarray([a[i] - b[i] for i in ids])
    xi = int(ease.items.index([x])[0])
    want = ease.model.weights_[xi, ease.items.index(ids)]
    np.testing.assert_allclose(gain, want, atol=1e-5)
    assert x not in {r.item for r in live.recommend(Query(user=196, k=50))}  # now seen: excluded


def test_unknown_user_falls_back_then_scores_from_its_events(ease):
    live = LiveModel(ease, "v1")
    cold = live.recommend(Query(user="nobody", k=5))
    assert cold.fallback == "popular"
    top_pop = ease.items.ids(np.argsort(-ease.model.popularity_)[:5]).tolist()
    assert [r.item for r in cold] == top_pop
    live.apply_events([_event("nobody", 50), _event("nobody", 172, seq=2)])
    warm = live.recommend(Query(user="nobody", k=5))
    assert warm.fallback is None
    session = live.recommend(Query(history=[50, 172], k=5))
    assert [r.item for r in warm] == [r.item for r in session]
    assert {50, 172}.isdisjoint(r.item for r in warm)


def test_unknown_items_in_events_are_ignored_and_unknown_ids_named(ease):
    live = LiveModel(ease, "v1")
    before = [r.item for r in live.recommend(Query(user=196, k=10))]
    assert live.apply_events([_event("196", "no-such-item")]) == 0
    assert live.events_ignored == 1
    assert [r.item for r in live.recommend(Query(user=196, k=10))] == before
    with pytest.raises(UnknownIdError, match="no-such-item"):
        live.recommend(Query(history=[50, "no-such-item"], k=3))
    with pytest.raises(UnknownIdError, match="99999"):
        live.similar(99999)


def test_lists_get_fresh_ids_remembered_for_attribution(ease):
    live = LiveModel(ease, "v7")
    a, b = live.recommend(Query(user=196, k=3)), live.recommend(Query(user=196, k=3))
    assert a.list_id != b.list_id
    assert live.version_of_list(a.list_id) == "v7"
    assert live.version_of_list("never-served") is None


@pytest.mark.parametrize(
    ("name", "method"), [("ease", "weights"), ("als", "embedding"), ("pop", "cooccurrence")]
)
def test_similar_items_by_model_kind(model_dirs, name, method):
    bundle = ModelBundle.load(model_dirs(name))
    live = LiveModel(bundle, "v1")
    sim = live.similar(50, k=5)  # Star Wars
    assert sim.method == method
    items = [r.item for r in sim]
    assert len(items) == 5 and 50 not in items
    s = [r.score for r in sim]
    assert s == sorted(s, reverse=True)
    assert 172 in [r.item for r in live.similar(50, k=20)]  # The Empire Strikes Back
    if method == "embedding":
        v = bundle.model.vectors().items
        i, j = bundle.items.index([50, items[0]])
        cos = v[i] @ v[j] / np.linalg.norm(v[i]) / np.linalg.norm(v[j])
        assert s[0] == pytest.approx(cos, abs=1e-5)
