"""Two-tower DNN: conformance with side information, cold-start items scored from content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zenrec import testing
from zenrec.data import Interactions
from zenrec.errors import ConfigError
from zenrec.features import ItemFeatures, MultiHot
from zenrec.models import registry
from zenrec.models.base import TrainOptions
from zenrec.models.twotower import TwoTower

FAST = TrainOptions(seed=7, threads=1)
TINY = dict(factors=16, hidden=32, token_dim=16, text_len=8, history_len=20, epochs=60, min_token_count=1,
            loss="softmax", lr=1e-3, id_dropout=0.5)


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """load_model finds classes through the registry: register the class for these tests."""
    monkeypatch.setitem(registry.MODELS, "twotower", ("zenrec.models.twotower", "TwoTower"))


def _checker_features(n: int) -> ItemFeatures:
    words = np.where(np.arange(n) % 2 == 0, "even number", "odd number")
    table = pd.DataFrame({
        "title": [f"{w} item{i}" for i, w in enumerate(words)],
        "kind": np.where(np.arange(n) % 2 == 0, "E", "O"),
        "img": [[float(i % 2), 1.0 - i % 2, 0.5] for i in range(n)],
    })
    return ItemFeatures.from_frame(table, text="title", categorical=["kind"], vectors=["img"])


@pytest.mark.parametrize("text_encoder", ["cnn", "minilm"])
def test_conformance_with_side_information(text_encoder):
    n = 40
    data = testing.checkerboard(n)
    side = _checker_features(n)
    if text_encoder == "minilm":  # precomputed sentence vectors stand in for the encoder here
        rng = np.random.default_rng(0)
        v = rng.normal(size=(n, 384)).astype(np.float32)
        side = ItemFeatures(n, side.text, side.categorical, side.vectors, v / np.linalg.norm(v, axis=1, keepdims=True))
    testing.check_config_round_trip(TwoTower)
    model = TwoTower(text_encoder=text_encoder, **TINY).fit(data, options=FAST, side=side)
    top, _ = model.recommend(np.arange(n), k=1, exclude=data.binary)
    assert (top[:, 0] == np.arange(n)).mean() >= 0.9, "the checkerboard's known answer"
    users = np.arange(0, n, 7)
    testing.check_finite(model, users)
    testing.check_batch_equals_single(model, users)
    testing.check_save_load(model, users)  # no side input needed after loading
    testing.check_unknown_user(model)
    np.testing.assert_array_equal(model.score(users, history=data), model.score(users))


def test_side_information_must_match_the_catalogue():
    data = testing.checkerboard(10)
    with pytest.raises(ConfigError, match="describes 12 items; the interactions have 10"):
        TwoTower(**TINY).fit(data, options=FAST, side=_checker_features(12))
    with pytest.raises(ConfigError, match="reads side=ItemFeatures"):
        TwoTower(**TINY).fit(data, options=FAST, side={"title": ["a"]})
    with pytest.raises(ConfigError, match="'text_encoder' parameter of TwoTower"):
        TwoTower(text_encoder="bert")


TOPICS = {
    "space": ["space", "galaxy", "star", "alien", "planet", "rocket", "orbit", "moon"],
    "love": ["love", "romance", "wedding", "heart", "kiss", "paris", "letter", "summer"],
}


@pytest.fixture(scope="module")
def topic_world():
    """Two tastes, 24 items each; item 0 is the most popular space item and the last item,
    titled like item 0 and of its genre, was never interacted with (a cold-start item)."""
    rng = np.random.default_rng(1)
    per, n_users = 24, 80
    n_items = 2 * per + 1
    titles, genres = [], []
    for t, words in enumerate(TOPICS.values()):
        for _ in range(per):
            titles.append(" ".join(rng.choice(words, 3, replace=False)))
            genres.append(["SciFi", "Drama"] if t == 0 else ["Romance", "Drama"])
    titles.append(titles[0])
    genres.append(genres[0])
    users, items = [], []
    for u in range(n_users):
        topic = u % 2
        pool = np.arange(per) + topic * per
        pick = rng.choice(pool[1:], 8, replace=False)
        if topic == 0 or rng.random() < 0.1:  # item 0: every space fan, a few others
            pick = np.append(pick, 0)
        users += [u] * len(pick)
        items += pick.tolist()
    data = Interactions(np.array(users), np.array(items), n_users, n_items)
    side = ItemFeatures(n_items, np.asarray(titles), {"genres": MultiHot.from_lists(genres)})
    return data, side


def test_a_cold_item_like_a_popular_item_scores_near_it(topic_world):
    data, side = topic_world
    cold = data.n_items - 1
    assert data.item_counts()[cold] == 0
    model = TwoTower(**{**TINY, "epochs": 40}).fit(data, options=FAST, side=side)
    space_fans = np.arange(0, data.n_users, 2)
    s = model.score(space_fans)
    love_items = np.arange(24, 48)
    spread = s[:, 0] - s[:, love_items].mean(1)  # how far the popular item stands out
    assert (spread > 0).all()
    # the cold item sits near the popular item, far above the other taste
    assert np.median(np.abs(s[:, cold] - s[:, 0]) / spread) < 0.5
    assert (s[:, cold] > s[:, love_items].max(1)).mean() >= 0.9
    # and a love fan ranks it low: content, not a constant, carries the score
    love_fans = np.arange(1, data.n_users, 2)
    s2 = model.score(love_fans)
    assert (s2[:, cold] < np.median(s2[:, love_items], axis=1)).mean() >= 0.9
    # its content vector alone (as for an item outside the catalogue) gives the same scores
    content = model.item_content_vectors(side.subset(np.array([cold])))
    np.testing.assert_allclose(content[0], model.item_vectors_[cold], rtol=1e-5, atol=1e-6)


def test_without_side_information_it_is_an_id_model():
    data = testing.checkerboard(20)
    model = TwoTower(**TINY).fit(data, options=FAST)
    assert model.net_.mlp is None
    with pytest.raises(ConfigError, match="no content path"):
        model.item_content_vectors(_checker_features(2))
