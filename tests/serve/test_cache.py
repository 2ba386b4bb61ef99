"""ScoreCache and the live model's use of it: a cached list is exactly the list the model would score,
any event for the user invalidates it, and memory stays within the budget."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zenrec.errors import ConfigError
from zenrec.models.bundle import ModelBundle
from zenrec.models.query import Query
from zenrec.serve.cache import ScoreCache
from zenrec.serve.live import LiveModel


def _row(value: float, n: int = 10) -> np.ndarray:
    return np.full(n, value, dtype=np.float32)


def test_hit_only_at_the_same_stamp_and_rows_are_read_only():
    c = ScoreCache(1 << 20)
    assert c.get("u", 0) is None
    c.put("u", 0, _row(1.0))
    got = c.get("u", 0)
    assert got is not None and got[0] == 1.0
    with pytest.raises(ValueError):
        got[0] = 5.0  # shared by later requests: nobody may change it
    assert c.get("u", 1) is None  # the user's history moved on
    assert (c.hits, c.misses) == (1, 2)
    assert c.hit_rate() == pytest.approx(1 / 3)


def test_a_late_put_of_an_older_stamp_does_not_replace_a_newer_row():
    c = ScoreCache(1 << 20)
    c.put("u", 2, _row(2.0))
    c.put("u", 1, _row(1.0))  # a request that started before event 2 finished after it
    assert c.get("u", 2)[0] == 2.0
    assert c.get("u", 1) is None


def test_least_recently_used_rows_leave_first_within_the_byte_budget():
    row_bytes = _row(0.0).nbytes
    c = ScoreCache(3 * row_bytes)
    for u in "abc":
        c.put(u, 0, _row(0.0))
    c.get("a", 0)  # a is now the most recent
    c.put("d", 0, _row(0.0))
    assert c.get("b", 0) is None and c.get("a", 0) is not None and c.get("d", 0) is not None
    assert c.bytes == 3 * row_bytes and len(c) == 3
    c.put("a", 1, _row(1.0))  # replacing a row does not count it twice
    assert c.bytes == 3 * row_bytes


def test_zero_budget_keeps_nothing_and_bad_budgets_are_named():
    c = ScoreCache(0)
    c.put("u", 0, _row(1.0))
    assert c.get("u", 0) is None and len(c) == 0
    for bad in (-1, 1.5, True, "64"):
        with pytest.raises(ConfigError, match="score cache"):
            ScoreCache(bad)


@pytest.fixture(scope="module")
def sasrec(model_dirs):
    return ModelBundle.load(model_dirs("sasrec"))


def _items(rec) -> list:
    return [(r.item, round(r.score, 5)) for r in rec]


def test_cached_lists_equal_uncached_ones_and_an_event_invalidates(sasrec):
    cached = LiveModel(sasrec, "v1")
    plain = LiveModel(sasrec, "v1", score_cache_bytes=0)
    user = sasrec.users.ids([3])[0].item()
    first = cached.recommend(Query(user=user, k=10))
    assert cached.score_cache.misses == 1 and len(cached.score_cache) == 1
    again = cached.recommend(Query(user=user, k=10))
    assert cached.score_cache.hits == 1
    assert _items(again) == _items(first) == _items(plain.recommend(Query(user=user, k=10)))
    top = first.items[0].item()
    ev = SimpleNamespace(user=str(user), item=top, timestamp=2e12, seq=1)
    cached.apply_events([ev])
    plain.apply_events([ev])
    after = cached.recommend(Query(user=user, k=10))
    assert cached.score_cache.misses == 2  # the event made the row stale
    assert top not in [r.item for r in after]
    assert _items(after) == _items(plain.recommend(Query(user=user, k=10)))
    assert len(plain.score_cache) == 0


@settings(max_examples=12, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.integers(0, 1681)), min_size=1, max_size=12))
def test_any_interleaving_of_events_and_requests_matches_scoring_every_time(model_dirs, steps):
    """Property: with the cache, every served list is the one a cache-less server would serve."""
    bundle = ModelBundle.load(model_dirs("ease"))
    cached = LiveModel(bundle, "v1", score_cache_bytes=1 << 20)
    plain = LiveModel(bundle, "v1", score_cache_bytes=0)
    users = bundle.users.ids(np.arange(6)).tolist()
    for seq, (u, is_event, item) in enumerate(steps, start=1):
        user = users[u]
        if is_event:
            ev = SimpleNamespace(user=str(user), item=bundle.items.ids([item])[0].item(), timestamp=1e12 + seq,
                                 seq=seq)
            cached.apply_events([ev])
            plain.apply_events([ev])
        else:
            assert _items(cached.recommend(Query(user=user, k=5))) == _items(plain.recommend(Query(user=user, k=5)))


def test_factor_models_without_new_events_use_the_index_not_the_cache(model_dirs):
    """A forced vector retriever answers a known user by one search (nothing cached); on a small catalogue
    "auto" scores through the model instead, with the library's own numbers."""
    bundle = ModelBundle.load(model_dirs("als"))
    live = LiveModel(bundle, "v1", retrieval="exact")
    user = bundle.users.ids([0])[0].item()
    live.recommend(Query(user=user, k=5))
    live.recommend(Query(user=user, k=5))
    assert (live.score_cache.hits, live.score_cache.misses) == (0, 0)  # one vector search: nothing to cache
    auto = LiveModel(bundle, "v1")
    got = auto.recommend(Query(user=user, k=5))
    want = bundle.recommend(Query(user=user, k=5))
    assert got.items.tolist() == want.items.tolist() and got.scores.tolist() == want.scores.tolist()
    np.testing.assert_allclose(live.recommend(Query(user=user, k=5)).scores, want.scores, rtol=1e-5)
