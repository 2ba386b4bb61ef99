"""Two-tower DNN: conformance with side information, cold-start items scored from content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zenrec import testing
from zenrec.data import Interactions
from zenrec.errors import ConfigError
from zenrec.features import ItemFeatures, MultiHot
from zenrec.features.side import Side, UserFeatures
from zenrec.models import registry
from zenrec.models.base import TrainOptions
from zenrec.models.twotower import TwoTower
from zenrec.testing import top_items

FAST = TrainOptions(seed=7, threads=1, validation=False)  # the toy's every event, every epoch: these tests check mechanics, not early stopping
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
    top = top_items(model, data, k=1)
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


# ------------------------------------------------------------------ user features
@pytest.fixture(scope="module")
def segment_world():
    """Two user segments, each liking its own 20 of 40 items; users 60…79 have no training events."""
    rng = np.random.default_rng(3)
    n_users, n_items, n_train_users = 80, 40, 60
    segment = np.where(np.arange(n_users) % 2 == 0, "north", "south")
    users, items = [], []
    for u in range(n_train_users):
        pool = np.arange(20) + (0 if segment[u] == "north" else 20)
        pick = rng.choice(pool, 6, replace=False)
        users += [u] * len(pick)
        items += pick.tolist()
    data = Interactions(np.array(users), np.array(items), n_users, n_items)
    # segment as a category, as a number (with noise) and as a vector: each alone tells the taste
    table = pd.DataFrame({
        "segment": segment,
        "age": np.where(segment == "north", 25.0, 55.0) + rng.normal(0, 3, n_users),
        "emb": [[1.0, 0.0] if s == "north" else [0.0, 1.0] for s in segment],
    })
    return data, table, segment


def _right_group_share(model, users, segment, scores=None) -> float:
    s = model.score(users) if scores is None else scores
    top = np.argsort(-s, axis=1)[:, :5]
    want_north = segment[users] == "north"
    return float(np.mean([(t < 20).all() if w else (t >= 20).all() for t, w in zip(top, want_north, strict=True)]))


@pytest.mark.parametrize("column", ["segment", "age", "emb"])
def test_user_features_score_users_unseen_in_training(segment_world, column):
    data, table, segment = segment_world
    kinds = {"segment": dict(categorical=["segment"]), "age": dict(numeric=["age"]), "emb": dict(vectors=["emb"])}
    feats = UserFeatures.from_frame(table, **kinds[column])
    cfg = {**TINY, "epochs": 40, "text_encoder": "none"}
    unseen = np.arange(60, 80)
    assert (np.diff(data.binary.indptr)[unseen] == 0).all()
    with_feats = TwoTower(**cfg).fit(data, options=FAST, side=feats)
    assert _right_group_share(with_feats, unseen, segment) >= 0.9
    without = TwoTower(**cfg).fit(data, options=FAST)
    assert _right_group_share(without, unseen, segment) <= 0.6, "no features: unseen users all look alike"
    # the same users as brand-new rows (outside the model's user range) score the same from their features
    np.testing.assert_allclose(with_feats.score_new_users(feats.subset(unseen)), with_feats.score(unseen),
                               rtol=1e-5, atol=1e-5)
    testing.check_save_load(with_feats, np.arange(55, 80))


def test_user_and_item_features_together(segment_world):
    data, table, segment = segment_world
    users = UserFeatures.from_frame(table, categorical=["segment"], numeric=["age"], vectors=["emb"])
    genre = np.where(np.arange(data.n_items) < 20, "cold-weather", "beach")
    items = ItemFeatures.from_frame(pd.DataFrame({"g": genre}), categorical=["g"])
    model = TwoTower(**{**TINY, "epochs": 40, "text_encoder": "none"}).fit(data, options=FAST,
                                                                          side=Side(items=items, users=users))
    unseen = np.arange(60, 80)
    assert _right_group_share(model, unseen, segment) >= 0.9
    testing.check_batch_equals_single(model, unseen[:5])
    testing.check_save_load(model, np.arange(50, 80))
    # a new user: features plus a one-item history outside the model's user range
    hist = Interactions(np.array([0]), np.array([25]), 1, data.n_items)
    s = model.score_new_users(users.subset(np.array([0])), history=hist)
    assert s.shape == (1, data.n_items) and np.isfinite(s).all()
    # features of the wrong size, or of a kind the model did not see, are refused by name
    with pytest.raises(ConfigError, match="user features describe 3 users; the interactions have 80"):
        TwoTower(**TINY).fit(data, options=FAST, side=users.subset(np.arange(3)))
    with pytest.raises(ConfigError, match="numeric feature 'age'"):
        model.score_new_users(UserFeatures.from_frame(table, categorical=["segment"], numeric=[], vectors=["emb"]))


def test_user_features_are_checked():
    with pytest.raises(ConfigError, match=r"numeric\['age'\] must be 2 numbers"):
        UserFeatures(2, numeric={"age": np.array([1.0, 2.0, 3.0])})
    with pytest.raises(ConfigError, match="at least one"):
        UserFeatures(2)
    with pytest.raises(ConfigError, match="Side.users must be UserFeatures"):
        Side(users=ItemFeatures(2))
    data = testing.checkerboard(10)
    with pytest.raises(ConfigError, match="trained without user features"):
        TwoTower(**TINY).fit(data, options=FAST).score_new_users(UserFeatures(1, numeric={"a": np.zeros(1)}))


def test_rows_of_lists_every_entry_of_the_chosen_rows():
    import scipy.sparse as sp
    import torch

    from zenrec.models.nets.twotower import rows_of

    m = sp.random(12, 9, density=0.3, format="csr", random_state=5)
    m.indices = m.indices.astype(np.int64)
    rows = np.array([3, 0, 3, 11, 7])
    which, cols = rows_of(torch.as_tensor(m.indptr), torch.as_tensor(m.indices), torch.as_tensor(rows))
    got = sp.coo_matrix((np.ones(len(cols)), (which.numpy(), cols.numpy())), shape=(len(rows), 9)).toarray()
    np.testing.assert_array_equal(got, (m[rows] != 0).toarray())


def test_in_rows_marks_every_copy_of_a_stored_item():
    import scipy.sparse as sp
    import torch

    from zenrec.models.nets.twotower import in_rows

    m = sp.random(12, 9, density=0.3, format="csr", random_state=6)
    rows = np.array([3, 0, 3, 11, 7])
    cand = np.array([4, 0, 8, 4, 2, 2, 2, 7, 1])
    got = in_rows(torch.as_tensor(m.indptr.astype(np.int64)), torch.as_tensor(m.indices.astype(np.int64)),
                  torch.as_tensor(rows), torch.as_tensor(cand))
    np.testing.assert_array_equal(got.numpy(), (m[rows] != 0).toarray()[:, cand])


def test_sampled_softmax_masking_the_users_other_items_still_learns():
    testing.check_known_answer(TwoTower(**{**TINY, "loss": "sampled", "negatives": 16}), 40)
