"""Metrics: a hand-computed table for every metric, then properties over random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zenrec.evaluate import metrics as M

# --------------------------------------------------------------------------
# Hand-computed accuracy table.  Three users, top-5 lists (1 = relevant):
#
#   user A: [1, 0, 1, 0, 0], n_rel = 3
#   user B: [0, 0, 0, 1, 0], n_rel = 7   (more relevant items than k)
#   user C: [0, 0, 0, 0, 0], n_rel = 2   (no hit)
HITS = np.array(
    [
        [1, 0, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=bool,
)
N_REL = np.array([3, 7, 2])
L2, L3, L4, L5, L6 = (math.log2(x) for x in (2, 3, 4, 5, 6))

EXPECTED_AT_5 = {
    # recall = hits / n_rel: A 2/3, B 1/7, C 0
    "recall": [2 / 3, 1 / 7, 0.0],
    # precision = hits / k: A 2/5, B 1/5, C 0
    "precision": [2 / 5, 1 / 5, 0.0],
    # hit: any hit in the top 5
    "hit": [1.0, 1.0, 0.0],
    # mrr = 1 / rank of first hit: A rank 1, B rank 4
    "mrr": [1.0, 1 / 4, 0.0],
    # ndcg: A  DCG = 1/log2(2) + 1/log2(4) = 1.5
    #          IDCG over min(3,5)=3 slots = 1 + 1/log2(3) + 1/log2(4) = 2.13093
    #          → 0.70392
    #       B  DCG = 1/log2(5) = 0.43068
    #          IDCG over min(7,5)=5 slots = 1 + .63093 + .5 + .43068 + .38685 = 2.94846
    #          → 0.14607
    "ndcg": [
        (1 / L2 + 1 / L4) / (1 / L2 + 1 / L3 + 1 / L4),
        (1 / L5) / (1 / L2 + 1 / L3 + 1 / L4 + 1 / L5 + 1 / L6),
        0.0,
    ],
    # map: A  (P@1 + P@3) / min(3,5) = (1 + 2/3) / 3 = 5/9 = 0.5556
    #      B  P@4 / min(7,5) = (1/4) / 5 = 0.05
    "map": [(1 + 2 / 3) / 3, (1 / 4) / 5, 0.0],
}

# the same lists cut at k = 2 (A: [1, 0], B: [0, 0], C: [0, 0])
EXPECTED_AT_2 = {
    "recall": [1 / 3, 0.0, 0.0],  # 1 hit of 3
    "precision": [1 / 2, 0.0, 0.0],  # 1 hit in 2 slots
    "hit": [1.0, 0.0, 0.0],
    "mrr": [1.0, 0.0, 0.0],
    # A: DCG = 1, IDCG over min(3,2)=2 slots = 1 + 1/log2(3) = 1.63093 → 0.61315
    "ndcg": [1 / (1 + 1 / L3), 0.0, 0.0],
    # A: P@1 / min(3,2) = 1/2
    "map": [0.5, 0.0, 0.0],
}


@pytest.mark.parametrize("name", sorted(M.ACCURACY_METRICS))
def test_hand_computed_at_5(name):
    got = M.ACCURACY_METRICS[name](HITS, N_REL, 5)
    np.testing.assert_allclose(got, EXPECTED_AT_5[name], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(M.ACCURACY_METRICS))
def test_hand_computed_at_2(name):
    got = M.ACCURACY_METRICS[name](HITS, N_REL, 2)
    np.testing.assert_allclose(got, EXPECTED_AT_2[name], rtol=1e-12, atol=1e-15)


def test_hand_computed_numbers_spelled_out():
    # the decimals quoted in the comments above, so a wrong formula cannot hide
    assert M.ndcg(HITS, N_REL, 5)[0] == pytest.approx(0.70392, abs=1e-5)
    assert M.ndcg(HITS, N_REL, 5)[1] == pytest.approx(0.14607, abs=1e-5)
    assert M.ndcg(HITS, N_REL, 2)[0] == pytest.approx(0.61315, abs=1e-5)
    assert M.average_precision(HITS, N_REL, 5)[0] == pytest.approx(0.5556, abs=1e-4)


def test_metric_names_are_the_documented_ones():
    assert set(M.ACCURACY_METRICS) == {"recall", "precision", "ndcg", "mrr", "map", "hit"}


@pytest.mark.parametrize("name", sorted(M.ACCURACY_METRICS))
def test_bad_inputs_are_refused(name):
    f = M.ACCURACY_METRICS[name]
    with pytest.raises(ValueError, match="k must be positive"):
        f(HITS, N_REL, 0)
    with pytest.raises(ValueError, match="at least one relevant item"):
        f(HITS, np.array([3, 0, 2]), 5)
    with pytest.raises(ValueError, match="n_rel has 2 values"):
        f(HITS, np.array([3, 1]), 5)


# --------------------------------------------------------------------------
# Hand-computed beyond-accuracy metrics.  Six items; training users per item:
ITEM_USERS = np.array([8, 4, 2, 1, 0, 0])
N_USERS = 8
# Lists (−1 marks an empty slot, e.g. when every remaining item was masked)
TOP = np.array([[0, 1, 2], [0, 3, 4]])
TOP_GAP = np.array([[0, 1, 2], [0, 3, -1]])


def test_coverage_hand_computed():
    # distinct items {0,1,2,3,4} of 6 → 5/6
    assert M.coverage(TOP, 6) == pytest.approx(5 / 6)
    # the empty slot is not an item: {0,1,2,3} → 4/6
    assert M.coverage(TOP_GAP, 6) == pytest.approx(4 / 6)


def test_novelty_hand_computed():
    # share of users = [8,4,2,1,max(0,1),max(0,1)] / 8 = [1, .5, .25, .125, .125, .125]
    # self-information −log2(share) = [0, 1, 2, 3, 3, 3]
    # TOP holds items 0,1,2,0,3,4 → (0+1+2+0+3+3)/6 = 9/6 = 1.5
    assert M.novelty(TOP, ITEM_USERS, N_USERS) == pytest.approx(1.5)
    # TOP_GAP holds items 0,1,2,0,3 → (0+1+2+0+3)/5 = 1.2
    assert M.novelty(TOP_GAP, ITEM_USERS, N_USERS) == pytest.approx(1.2)


def test_average_popularity_hand_computed():
    # users of items 0,1,2,0,3,4 = 8,4,2,8,1,0 → 23/6
    assert M.average_popularity(TOP, ITEM_USERS) == pytest.approx(23 / 6)
    # users of items 0,1,2,0,3 = 8,4,2,8,1 → 23/5
    assert M.average_popularity(TOP_GAP, ITEM_USERS) == pytest.approx(23 / 5)


def test_intra_list_diversity_hand_computed():
    # item vectors (one row per item, e.g. its training users):
    #   item0 = [1, 0]   item1 = [1, 1]   item2 = [0, 1]   item3 = [0, 0]
    # cos(0,1) = 1/√2, cos(0,2) = 0, cos(1,2) = 1/√2, cos(3, ·) = 0
    vecs = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=float))
    # list [0,1,2]: mean similarity (1/√2 + 0 + 1/√2)/3 = √2/3 = 0.4714 → distance 0.5286
    # list [0,2]  (one empty slot): similarity 0 → distance 1
    # list [1,3]: an all-zero item is at distance 1
    top = np.array([[0, 1, 2], [0, 2, -1], [1, 3, -1]])
    expected = ((1 - math.sqrt(2) / 3) + 1.0 + 1.0) / 3
    assert M.intra_list_diversity(top, vecs) == pytest.approx(expected)
    assert M.intra_list_diversity(top[:1], vecs) == pytest.approx(0.5286, abs=1e-4)
    # identical items → similarity 1 → distance 0 (item0 and a copy of it)
    same = sp.csr_matrix(np.array([[2, 0], [3, 0]], dtype=float))
    assert M.intra_list_diversity(np.array([[0, 1]]), same) == pytest.approx(0.0, abs=1e-12)
    # lists of one item have no pair: left out; none left → 0.0
    assert M.intra_list_diversity(np.array([[0, -1]]), vecs) == 0.0


def _naive_diversity(top, dense):
    out = []
    for row in top:
        items = [i for i in row if i >= 0]
        if len(items) < 2:
            continue
        sims = []
        for a in items:
            for b in items:
                if a == b:
                    continue
                na, nb = np.linalg.norm(dense[a]), np.linalg.norm(dense[b])
                sims.append(dense[a] @ dense[b] / (na * nb) if na > 0 and nb > 0 else 0.0)
        out.append(1 - np.mean(sims))
    return float(np.mean(out)) if out else 0.0


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_diversity_matches_pairwise_definition(data):
    n_items = data.draw(st.integers(2, 8))
    dense = data.draw(hnp.arrays(np.float64, (n_items, 4), elements=st.integers(0, 3).map(float)))
    n_lists = data.draw(st.integers(1, 4))
    k = data.draw(st.integers(1, n_items))
    rows = []
    for _ in range(n_lists):
        perm = data.draw(st.permutations(range(n_items)))[:k]
        gaps = data.draw(st.integers(0, k))
        rows.append(list(perm[: k - gaps]) + [-1] * gaps)
    top = np.array(rows)
    got = M.intra_list_diversity(top, sp.csr_matrix(dense))
    assert got == pytest.approx(_naive_diversity(top, dense), abs=1e-9)


# --------------------------------------------------------------------------
# Properties of the accuracy metrics over random hit tables


@st.composite
def hit_tables(draw):
    """A consistent (hits, n_rel, k): n_rel ≥ hits in the row, hits at most n_rel."""
    n_users = draw(st.integers(1, 6))
    width = draw(st.integers(1, 12))
    hits = draw(hnp.arrays(bool, (n_users, width)))
    extra = draw(hnp.arrays(np.int64, n_users, elements=st.integers(0, 5)))
    n_rel = np.maximum(hits.sum(axis=1) + extra, 1)
    k = draw(st.integers(1, width + 3))
    return hits, n_rel, k


@settings(max_examples=200, deadline=None)
@given(hit_tables())
def test_every_accuracy_metric_lies_in_unit_interval(table):
    hits, n_rel, k = table
    for name, f in M.ACCURACY_METRICS.items():
        v = f(hits, n_rel, k)
        assert v.shape == (hits.shape[0],), name
        assert np.all((v >= 0) & (v <= 1 + 1e-12)), (name, v)


@settings(max_examples=200, deadline=None)
@given(hit_tables())
def test_relations_between_metrics(table):
    hits, n_rel, k = table
    r = {name: f(hits, n_rel, k) for name, f in M.ACCURACY_METRICS.items()}
    any_hit = hits[:, :k].any(axis=1)
    # hit@k bounds every other metric and is 0 exactly when all are 0
    for name in ("recall", "precision", "ndcg", "mrr", "map"):
        assert np.all(r["hit"] >= r[name] - 1e-12), name
        np.testing.assert_array_equal(r[name] > 0, any_hit, err_msg=name)
    # recall and precision count the same hits
    np.testing.assert_allclose(r["recall"] * n_rel, r["precision"] * k)
    # each hit adds a precision ≤ 1 to MAP's sum: map ≤ hits / min(n_rel, k)
    n_hits = hits[:, :k].sum(axis=1)
    assert np.all(r["map"] <= n_hits / np.minimum(n_rel, k) + 1e-12)
    # NDCG's gain never exceeds the hit count's
    assert np.all(r["ndcg"] <= n_hits + 1e-12)


@settings(max_examples=100, deadline=None)
@given(hit_tables())
def test_metrics_grow_with_k(table):
    hits, n_rel, k = table
    for name in ("recall", "hit", "mrr"):
        f = M.ACCURACY_METRICS[name]
        assert np.all(f(hits, n_rel, k + 1) >= f(hits, n_rel, k) - 1e-12), name


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(1, 15), st.integers(1, 15))
def test_perfect_list_scores_one(n_users, n_rel, k):
    # every one of the first min(n_rel, k) slots is relevant
    width = max(k, n_rel)
    hits = np.zeros((n_users, width), dtype=bool)
    hits[:, : min(n_rel, k)] = True
    nr = np.full(n_users, n_rel)
    np.testing.assert_allclose(M.ndcg(hits, nr, k), 1.0)
    np.testing.assert_allclose(M.average_precision(hits, nr, k), 1.0)
    np.testing.assert_allclose(M.mrr(hits, nr, k), 1.0)
    np.testing.assert_allclose(M.hit_rate(hits, nr, k), 1.0)
    if n_rel <= k:
        np.testing.assert_allclose(M.recall(hits, nr, k), 1.0)


@settings(max_examples=100, deadline=None)
@given(hit_tables())
def test_ndcg_below_one_when_a_relevant_slot_is_missed(table):
    hits, n_rel, k = table
    kk = min(k, hits.shape[1])
    perfect = hits[:, :kk].sum(axis=1) == np.minimum(n_rel, k)
    prefix = np.array([h[: min(n, kk)].all() for h, n in zip(hits, n_rel, strict=True)])
    v = M.ndcg(hits, n_rel, k)
    # 1 exactly when the hits fill the first min(n_rel, k) slots
    np.testing.assert_array_equal(np.isclose(v, 1.0), perfect & prefix & (np.minimum(n_rel, k) <= kk))


def test_diversity_dense_and_sparse_paths_agree():
    """The gathered-similarity path (few distinct items) equals the norm identity path."""
    import scipy.sparse as sp

    from zenrec.evaluate.metrics import intra_list_diversity

    rng = np.random.default_rng(3)
    vectors = sp.random(300, 500, density=0.05, random_state=3, format="csr")
    top = rng.integers(0, 300, (200, 10))
    top[:7, 6:] = -1
    dense = intra_list_diversity(top, vectors)
    sparse = intra_list_diversity(top, vectors, max_dense_items=0)
    assert dense == pytest.approx(sparse, abs=1e-12)
    assert 0.5 < dense < 1.0
