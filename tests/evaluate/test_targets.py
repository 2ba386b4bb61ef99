"""Evaluation targets: the masking rule (an item already in the user's masked history is no target) and
target event types (evaluate on purchases only), checked against numbers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zenrec.data import CleaningConfig, ColumnMap, Dataset, Interactions, Split, load_split, save_split
from zenrec.errors import ConfigError
from zenrec.evaluate.evaluator import evaluate, evaluate_split

G = 1 / math.log2(3)  # the discount of rank 2

# A shop log in the shop's own words (collect = favorite, buy = purchase): (user, item, part, event).
# Every user's scores rank the items i0 > i1 > i2 > i3 > i4 > i5; masked items are skipped.
LOG = [
    ("A", "i0", "train", "collect"), ("A", "i1", "train", "view"),
    ("A", "i5", "valid", "view"),
    ("A", "i0", "test", "buy"),  # collected in training: masked, so it can never be hit
    ("A", "i2", "test", "buy"), ("A", "i3", "test", "view"),
    ("B", "i2", "train", "view"),
    ("B", "i4", "valid", "cart"),
    ("B", "i4", "test", "buy"),  # carted in validation: masked when testing
    ("B", "i1", "test", "cart"),
    ("C", "i0", "train", "view"),
    ("C", "i3", "valid", "buy"),
    ("C", "i5", "test", "view"),
]


@pytest.fixture(scope="module")
def shop():
    df = pd.DataFrame(LOG, columns=["u", "i", "part", "e"])
    df["t"] = np.arange(len(df))  # one time per row: the row's part is found again by its time
    cfg = CleaningConfig(event_aliases={"collect": "favorite", "buy": "purchase"})
    ds = Dataset.from_frame(df, ColumnMap(user="u", item="i", timestamp="t", event="e"), cfg, name="shop")
    inter = ds.interactions
    part = df["part"].to_numpy()[inter.timestamp]
    split = Split(inter.subset(part == "train"), inter.subset(part == "valid"), inter.subset(part == "test"))
    rank = np.zeros(inter.n_items, np.float32)
    rank[ds.items.index(np.array([f"i{j}" for j in range(6)]))] = np.arange(6, 0, -1)

    def score(users: np.ndarray) -> np.ndarray:
        return np.tile(rank, (len(users), 1))

    return ds, split, score


def _old_rule(split: Split, score, part: str = "test"):
    """The evaluation before the masking rule: history items ranked out (-inf) but still counted in the truth."""
    hist = split.train.binary if part == "valid" else (split.train.binary + split.valid.binary)
    hist = hist.toarray() > 0

    def masked(users: np.ndarray) -> np.ndarray:
        s = score(users)
        s[hist[users]] = -np.inf
        return s

    return masked


def test_the_hand_computed_case_with_and_without_the_rule(shop):
    _, split, score = shop
    # top-2 after masking: A [i2, i3], B [i0, i1], C [i1, i2]
    # before the rule: A {i0, i2, i3} 2 hits, B {i4, i1} hit at 2, C {i5} none
    old = evaluate(_old_rule(split, score), split.test, [], ks=(2,), beyond=False)
    assert old["recall@2"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert old["ndcg@2"] == pytest.approx((1 + G / (1 + G) + 0) / 3)
    # the rule removes A's i0 and B's i4: A {i2, i3} both hit, B {i1} hit at 2, C {i5} none
    res = evaluate_split(score, split, "test", ks=(2,), beyond=False)
    assert res["recall@2"] == pytest.approx((1 + 1 + 0) / 3)
    assert res["ndcg@2"] == pytest.approx((1 + G + 0) / 3)
    assert res.n_users == 3
    assert res.targets == {"held_out": 6, "other_type": 0, "seen": 2, "kept": 4, "users_without_target": 0}


def test_the_hand_computed_case_on_purchases_only(shop):
    ds, split, score = shop
    buys = split.with_target_events("buy", ds.event_aliases)  # the shop's word for purchase
    assert buys.target_events == ("purchase",)
    # before the rule: A {i0, i2} hit at 1, B {i4} no hit, C has no purchase
    old = evaluate(_old_rule(split, score), buys.targets("test"), [], ks=(2,), beyond=False)
    assert old.n_users == 2
    assert old["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    assert old["ndcg@2"] == pytest.approx((1 / (1 + G) + 0) / 2)
    # with the rule: A {i2} hit at 1; B's only purchase was carted in validation: B is not evaluated
    res = evaluate_split(score, buys, "test", ks=(2,), beyond=False)
    assert res.n_users == 1 and res["recall@2"] == 1.0 and res["ndcg@2"] == 1.0
    assert res.targets == {"held_out": 6, "other_type": 3, "seen": 2, "kept": 1, "users_without_target": 2}
    # purchases and carts: A {i2} hit at 1, B {i1} hit at 2
    two = evaluate_split(score, split.with_target_events("purchase, CART"), "test", ks=(2,), beyond=False)
    assert two.n_users == 2
    assert two["recall@2"] == 1.0 and two["ndcg@2"] == pytest.approx((1 + G) / 2)
    # evaluate_split's own argument (canonical names) gives the same as the split's
    assert evaluate_split(score, split, "test", target_events="purchase", ks=(2,), beyond=False).metrics == res.metrics


def test_the_hand_computed_validation_case(shop):
    _, split, score = shop
    # validation masks training only; top-3: A [i2, i3, i4], B [i0, i1, i3], C [i1, i2, i3]
    res = evaluate_split(score, split, "valid", ks=(3,), beyond=False)
    assert res["recall@3"] == pytest.approx(1 / 3) and res["ndcg@3"] == pytest.approx(0.5 / 3)
    buys = evaluate_split(score, split.with_target_events("purchase"), "valid", ks=(3,), beyond=False)
    assert buys.n_users == 1 and buys["recall@3"] == 1.0 and buys["ndcg@3"] == pytest.approx(0.5)
    assert buys.targets["users_without_target"] == 2 and buys.targets["other_type"] == 2


def test_the_rule_holds_in_sampled_mode(shop):
    _, split, score = shop
    # with more negatives than items every unmasked item is a candidate: the full-ranking numbers exactly
    full = evaluate_split(score, split, "test", ks=(2,), beyond=False)
    sampled = evaluate_split(score, split, "test", ks=(2,), sampled=100)
    assert sampled.mode == "sampled-100" and sampled.metrics == pytest.approx(full.metrics)
    assert sampled.targets == full.targets


def test_training_still_sees_every_event_type(shop):
    ds, split, _ = shop
    buys = split.with_target_events("purchase")
    assert buys.train is split.train and buys.valid is split.valid and buys.test is split.test
    assert set(np.asarray(buys.train.event_names)[buys.train.event]) == {"favorite", "view"}


def test_unknown_or_absent_types_are_config_errors_listing_the_available_ones(shop, ml100k):
    ds, split, _ = shop
    with pytest.raises(ConfigError, match=r"'wishlist' is not in the data; available: view, favorite \(or collect\), "
                                          r"cart, purchase \(or buy\)"):
        split.with_target_events("wishlist", ds.event_aliases)
    with pytest.raises(ConfigError, match="'click' is not in the data .a known type, but no row of the data has it."):
        split.with_target_events("purchase,click")
    with pytest.raises(ConfigError, match="at least one type"):
        split.with_target_events(" , ")
    from zenrec.data import split_dataset

    with pytest.raises(ConfigError, match="available: none: this data has no event types"):
        split_dataset(ml100k, target_events="purchase")
    # a known alias resolves only against the dataset that declares it
    with pytest.raises(ConfigError, match="'buy' is not in the data"):
        split.with_target_events("buy")


def test_no_target_left_is_a_clear_error(shop):
    _, split, score = shop
    only_a_seen = Split(split.train, split.valid, split.test.subset(np.flatnonzero(split.test.item == split.test.item[0])))
    with pytest.raises(ConfigError, match="no user has held-out items to evaluate .1 users' held-out items were all"):
        evaluate_split(score, only_a_seen, "test")
    with pytest.raises(ConfigError, match="no user has a held-out favorite event in the test part"):
        evaluate_split(score, split.with_target_events("favorite"), "test")


def test_target_events_survive_the_split_files(shop, tmp_path):
    ds, split, score = shop
    buys = split.with_target_events("buy", ds.event_aliases)
    written = save_split(buys, ds, tmp_path)
    assert sorted(p.name for p in written) == ["shop.targets.json", "shop.test.inter", "shop.train.inter",
                                               "shop.valid.inter"]
    assert "event:token" in (tmp_path / "shop.train.inter").read_text().splitlines()[0]
    back, ds2 = load_split(tmp_path)
    assert back.target_events == ("purchase",) and ds2.event_aliases == {"collect": "favorite", "buy": "purchase"}
    rank = {f"i{j}": 6.0 - j for j in range(6)}
    scores = np.array([rank[i] for i in ds2.items.ids(np.arange(len(ds2.items)))], np.float32)
    res = evaluate_split(lambda u: np.tile(scores, (len(u), 1)), back, "test", ks=(2,), beyond=False)
    assert res.n_users == 1 and res["ndcg@2"] == 1.0 and res.targets["seen"] == 2
    # without the targets file the files still carry event types, so targets can be chosen afterwards
    (tmp_path / "shop.targets.json").unlink()
    plain, _ = load_split(tmp_path)
    assert plain.target_events is None and plain.present_event_types() == ("view", "favorite", "cart", "purchase")


@st.composite
def overlapping(draw, max_users=6, max_items=10):
    """Train and held-out 0-1 matrices that may share items (every user holds out at least one)."""
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(2, max_items))
    train = draw(hnp.arrays(bool, (n_users, n_items)))
    truth = draw(hnp.arrays(bool, (n_users, n_items)))
    truth[np.arange(n_users), draw(hnp.arrays(np.int64, n_users, elements=st.integers(0, n_items - 1)))] = True
    scores = draw(hnp.arrays(np.float32, (n_users, n_items), elements=st.floats(-5, 5, width=32)))
    return sp.csr_matrix(train.astype(np.float32)), sp.csr_matrix(truth.astype(np.float32)), scores


@settings(max_examples=150, deadline=None)
@given(overlapping(), st.integers(1, 6), st.booleans())
def test_masked_truth_items_change_nothing_but_the_count(case, k, sampled):
    train, truth, scores = case
    kw = {"ks": (k,), "beyond": False, "per_user_metrics": True, "sampled": 3 if sampled else None, "seed": 1}
    clean_truth = sp.csr_matrix((truth.toarray() > 0) & ~(train.toarray() > 0), dtype=np.float32)
    overlap = int(((truth.toarray() > 0) & (train.toarray() > 0)).sum())
    if clean_truth.nnz == 0:
        with pytest.raises(ConfigError, match="no user has held-out items"):
            evaluate(lambda u: scores[u], truth, [train], **kw)
        return
    a = evaluate(lambda u: scores[u], truth, [train], **kw)
    b = evaluate(lambda u: scores[u], clean_truth, [train], **kw)
    # the masked items of the truth are simply not targets: the same users, the same values
    np.testing.assert_array_equal(a.users, b.users)
    assert a.metrics == pytest.approx(b.metrics)
    assert a.targets["seen"] == overlap and b.targets["seen"] == 0
    assert a.targets["kept"] == clean_truth.nnz == a.targets["held_out"] - overlap
    has_truth = np.diff(truth.indptr) > 0
    assert a.targets["users_without_target"] == int((has_truth & (np.diff(clean_truth.indptr) == 0)).sum())
    assert a.n_users == int((np.diff(clean_truth.indptr) > 0).sum())


def test_per_user_values_come_for_the_same_users_whatever_the_model(shop):
    _, split, score = shop
    a = evaluate_split(score, split, "test", ks=(2,), per_user_metrics=True, beyond=False)
    b = evaluate_split(lambda u: -score(u), split, "test", ks=(2,), per_user_metrics=True, beyond=False)
    np.testing.assert_array_equal(a.users, b.users)
    assert a.top is None  # per-user metrics only, not the lists
    np.testing.assert_allclose(a.per_user["ndcg@2"], [1.0, G, 0.0])
    assert a.per_user["ndcg@2"].mean() == pytest.approx(a["ndcg@2"])


def test_interactions_without_event_types_still_evaluate():
    # no event types at all: targets are every held-out item, as before
    train = Interactions(np.array([0, 0]), np.array([0, 1]), 1, 4)
    test = Interactions(np.array([0, 0]), np.array([1, 2]), 1, 4)
    res = evaluate_split(lambda u: np.array([[0, 0, 1, 0]], np.float32), Split(train, None, test), ks=(1,),
                         beyond=False)
    assert res["recall@1"] == 1.0 and res.targets["seen"] == 1
