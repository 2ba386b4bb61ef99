"""The full-ranking evaluator: masking, oracle scorers, sampled mode, real-data cross-check."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zenrec.data import Interactions
from zenrec.errors import ConfigError
from zenrec.evaluate.evaluator import EvalResult, evaluate, evaluate_split
from zenrec.models import create_model


@st.composite
def train_truth(draw, max_users=6, max_items=12):
    """Disjoint train / held-out 0-1 matrices; every user has at least one held-out item."""
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(2, max_items))
    cells = draw(hnp.arrays(np.int8, (n_users, n_items), elements=st.integers(0, 2)))
    for u in range(n_users):
        if not (cells[u] == 2).any():
            cells[u, draw(st.integers(0, n_items - 1))] = 2
    train = sp.csr_matrix((cells == 1).astype(np.float32))
    truth = sp.csr_matrix((cells == 2).astype(np.float32))
    return train, truth


def _oracle(truth, train=None, train_score=0.0):
    """Scores 1 on held-out items, ``train_score`` on training items, 0 elsewhere."""
    dense_t = truth.toarray()
    dense_x = train.toarray() if train is not None else np.zeros_like(dense_t)

    def score(users):
        return (dense_t[users] + train_score * dense_x[users]).astype(np.float32)

    return score


@settings(max_examples=150, deadline=None)
@given(train_truth(), st.integers(1, 12))
def test_scorer_equal_to_truth_is_perfect(case, k):
    train, truth = case
    res = evaluate(_oracle(truth), truth, [train], ks=(k,), keep_per_user=True)
    n_rel = np.diff(truth.indptr)[np.diff(truth.indptr) > 0]
    small = n_rel <= k
    np.testing.assert_allclose(res.per_user[f"recall@{k}"][small], 1.0)
    np.testing.assert_allclose(res.per_user[f"ndcg@{k}"], 1.0)
    np.testing.assert_allclose(res.per_user[f"hit@{k}"], 1.0)
    np.testing.assert_allclose(res.per_user[f"mrr@{k}"], 1.0)
    np.testing.assert_allclose(res.per_user[f"map@{k}"], 1.0)
    assert res.n_users == truth.shape[0]


@settings(max_examples=150, deadline=None)
@given(train_truth(), st.integers(1, 12))
def test_masked_items_scored_highest_are_still_never_recommended(case, k):
    train, truth = case
    # the model puts every training item far above everything else; masking
    # must make the result identical to that of the plain oracle
    boosted = evaluate(_oracle(truth, train, 1e6), truth, [train], ks=(k,), keep_per_user=True,
                       train=Interactions.from_csr(train))
    plain = evaluate(_oracle(truth), truth, [train], ks=(k,), keep_per_user=True,
                     train=Interactions.from_csr(train))
    for key, vals in plain.per_user.items():
        np.testing.assert_allclose(boosted.per_user[key], vals, err_msg=key)
    n_rel = np.diff(truth.indptr)
    np.testing.assert_allclose(boosted.per_user[f"recall@{k}"][n_rel <= k], 1.0)
    # no masked (training) item is counted as covered: only held-out and unseen items can be
    shown_max = np.minimum(truth.shape[1] - np.diff(train.indptr), k)
    assert boosted[f"coverage@{k}"] * truth.shape[1] <= shown_max.sum() + 1e-9


def test_users_whose_unmasked_items_run_out_get_empty_slots_not_masked_items():
    # user 0 has 3 items, 2 in training: only 1 item may be ranked, the other slots stay empty
    train = sp.csr_matrix(np.array([[1, 1, 0]], np.float32))
    truth = sp.csr_matrix(np.array([[0, 0, 1]], np.float32))
    tr = Interactions.from_csr(train)
    res = evaluate(lambda u: np.array([[9.0, 8.0, 1.0]], np.float32)[np.zeros(len(u), int)],
                   truth, [train], ks=(3,), train=tr)
    assert res["recall@3"] == 1.0
    assert res["precision@3"] == pytest.approx(1 / 3)
    assert res["coverage@3"] == pytest.approx(1 / 3)  # only item 2 was shown
    assert res["avg_pop@3"] == 0.0  # item 2 has no training user; masked items 0 and 1 (1 each) do not count


def test_exclude_and_truth_given_as_raw_matrices_are_cleaned():
    # truth row with a duplicate entry and an explicit zero: n_rel must be 1, not 3
    truth = sp.csr_matrix((np.array([1, 1, 0], np.float32), np.array([1, 1, 2]), np.array([0, 3])), shape=(1, 4))
    res = evaluate(lambda u: np.array([[0, 5, 0, 0]], np.float32), truth, ks=(1,))
    assert res["recall@1"] == 1.0
    # an explicit zero in exclude does not mask item 1
    excl = sp.csr_matrix((np.array([0.0], np.float32), np.array([1]), np.array([0, 1])), shape=(1, 4))
    assert evaluate(lambda u: np.array([[0, 5, 0, 0]], np.float32), truth, [excl], ks=(1,))["hit@1"] == 1.0


def test_nan_scores_rank_last():
    truth = sp.csr_matrix(np.array([[0, 1, 0]], np.float32))
    res = evaluate(lambda u: np.array([[np.nan, 0.5, np.nan]], np.float32), truth, ks=(1,))
    assert res["hit@1"] == 1.0


def test_batches_do_not_change_results(ml100k_small):
    model = create_model("itemknn").fit(ml100k_small.train)
    a = evaluate_split(model, ml100k_small, "test", ks=(5, 10))
    b = evaluate_split(model, ml100k_small, "test", ks=(5, 10), batch_size=7)
    assert a.metrics == pytest.approx(b.metrics)


def test_evaluate_split_masks_train_for_valid_and_train_plus_valid_for_test(ml100k_small):
    s = ml100k_small
    # an oracle that scores the training AND validation items highest, then the test items
    tr, va, te = s.train.binary.toarray(), s.valid.binary.toarray(), s.test.binary.toarray()

    def score(users):
        return (1e6 * (tr[users] + va[users]) + te[users]).astype(np.float32)

    res = evaluate_split(score, s, "test", ks=(50,), keep_per_user=True)
    n_rel = te.sum(axis=1)[te.sum(axis=1) > 0]
    np.testing.assert_allclose(res.per_user["recall@50"][n_rel <= 50], 1.0)
    # on validation the validation items must be reachable: scores favour them after masking train
    res_v = evaluate_split(lambda u: (1e6 * tr[u] + va[u]).astype(np.float32), s, "valid", ks=(50,))
    assert res_v["hit@50"] == 1.0


def test_result_shape_and_labels(ml100k_small):
    model = create_model("pop").fit(ml100k_small.train)
    res = evaluate_split(model, ml100k_small, "valid", ks=(10, 5))
    assert isinstance(res, EvalResult) and res.mode == "full"
    assert set(res.metrics) == {
        f"{m}@{k}" for k in (5, 10) for m in ("recall", "precision", "ndcg", "mrr", "map", "hit",
                                               "coverage", "novelty", "diversity", "avg_pop")
    }
    d = res.to_dict()
    assert d["mode"] == "full" and d["n_users"] == res.n_users and d["metrics"] == res.metrics


def test_sampled_mode_is_labelled_and_not_below_full_ranking(ml100k_small):
    model = create_model("ease", reg=100.0).fit(ml100k_small.train)
    full = evaluate_split(model, ml100k_small, "test", ks=(10,))
    sampled = evaluate_split(model, ml100k_small, "test", ks=(10,), sampled=100)
    assert full.mode == "full"
    assert sampled.mode == "sampled-100"
    assert not any(k.startswith(("coverage", "novelty")) for k in sampled.metrics)  # no beyond metrics
    for m in ("recall@10", "ndcg@10", "hit@10", "mrr@10"):
        assert sampled[m] >= full[m], m
    assert sampled["ndcg@10"] > full["ndcg@10"] + 0.05  # 100 negatives is a much easier task
    # the same seed gives the same candidates
    again = evaluate_split(model, ml100k_small, "test", ks=(10,), sampled=100)
    assert again.metrics == sampled.metrics


def test_sampled_mode_ranks_only_truth_and_candidates():
    # 1 user, truth = item 0 scored lowest of all; with 1 negative it is ranked 2nd at worst
    truth = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0]], np.float32))
    score = lambda u: np.array([[0, 6, 5, 4, 3, 2]], np.float32)  # noqa: E731
    assert evaluate(score, truth, ks=(2,), sampled=1)["hit@2"] == 1.0
    assert evaluate(score, truth, ks=(2,))["hit@2"] == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ks": (0,)}, "'ks' parameter"),
        ({"ks": ()}, "'ks' parameter"),
        ({"ks": (2.5,)}, "'ks' parameter"),
        ({"metrics": ("ndgc",)}, "unknown metric 'ndgc'"),
        ({"sampled": 0}, "'sampled' parameter"),
        ({"users": np.array([5])}, "'users' parameter"),
        ({"exclude": [sp.csr_matrix((1, 3))]}, "'exclude' matrix has 3 items"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, match):
    truth = sp.csr_matrix(np.array([[1, 0]], np.float32))
    with pytest.raises(ConfigError, match=match):
        evaluate(lambda u: np.zeros((len(u), 2), np.float32), truth, **kwargs)


def test_wrong_score_shape_and_empty_truth():
    truth = sp.csr_matrix(np.array([[1, 0]], np.float32))
    with pytest.raises(ConfigError, match="scorer returned shape"):
        evaluate(lambda u: np.zeros((len(u), 3), np.float32), truth)
    with pytest.raises(ConfigError, match="no user has held-out items"):
        evaluate(lambda u: np.zeros((len(u), 2), np.float32), sp.csr_matrix((1, 2)))


def test_popularity_on_ml100k_general_split_matches_the_field(ml100k_split):
    """Cross-check with a known number: MostPop's test NDCG@10 on RecBole's ml-100k
    general split is ≈ 0.142 (true training counts), so ours must land in [0.12, 0.16]."""
    model = create_model("pop").fit(ml100k_split.train, ml100k_split.valid)
    res = evaluate_split(model, ml100k_split, "test", ks=(10,))
    assert 0.12 <= res["ndcg@10"] <= 0.16
    assert res.n_users == 943
    # and popularity must clearly beat a random ranking on the same split
    rng = np.random.default_rng(0)
    rand = evaluate_split(lambda u: rng.random((len(u), ml100k_split.train.n_items)).astype(np.float32),
                          ml100k_split, "test", ks=(10,))
    assert rand["ndcg@10"] < 0.05
