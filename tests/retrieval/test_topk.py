"""Ranking kernels: top-k against a full sort, masking, hit lookup against a naive loop."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zenrec.evaluate.metrics import hits_matrix
from zenrec.retrieval.topk import mask_rows, topk

# scores drawn from a handful of values so that ties (also at the k-th place) are common
SCORE = st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 1.0, 2.0, 3.5])


@st.composite
def score_blocks(draw, max_rows=6, max_cols=20):
    n_rows = draw(st.integers(1, max_rows))
    n_cols = draw(st.integers(1, max_cols))
    return draw(hnp.arrays(np.float32, (n_rows, n_cols), elements=SCORE))


def _reference_topk(scores, k):
    """Full stable sort: value descending, then item index ascending."""
    n = scores.shape[1]
    idx = np.array([np.lexsort((np.arange(n), -row)) for row in scores])
    return idx[:, :k]


@settings(max_examples=300, deadline=None)
@given(score_blocks(), st.integers(1, 25))
def test_topk_equals_full_sort_with_ties_by_lower_index(scores, k):
    idx, vals = topk(scores, k)
    expected = _reference_topk(scores, min(k, scores.shape[1]))
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(vals, np.take_along_axis(scores, expected, axis=1))
    assert idx.dtype == np.int64


def test_topk_tie_at_the_cut_keeps_lower_indices():
    # six equal scores, k = 2: items 0 and 1, not whichever argpartition picks
    scores = np.array([[1, 1, 1, 1, 1, 1], [0, 5, 1, 1, 1, 1]], dtype=np.float32)
    idx, _ = topk(scores, 2)
    np.testing.assert_array_equal(idx, [[0, 1], [1, 2]])
    # a big block with a plateau: argpartition alone returns arbitrary members
    rng = np.random.default_rng(0)
    big = np.repeat(rng.integers(0, 3, size=(1, 500)).astype(np.float32), 50, axis=0)
    idx, _ = topk(big, 37)
    np.testing.assert_array_equal(idx, _reference_topk(big, 37))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_take_the_torch_path_with_the_same_ties(dtype):
    from zenrec.retrieval.topk import TORCH_MIN_COLS

    rng = np.random.default_rng(3)
    n = TORCH_MIN_COLS + 1000
    block = rng.integers(0, 4, size=(12, n)).astype(dtype)  # plateaus: thousands tie at the k-th place
    block[0, :] = -np.inf  # a row with nothing to rank
    block[1, rng.choice(n, 50, replace=False)] = np.nan  # NaN ranks last
    block[2] = rng.standard_normal(n)  # no ties
    for k in (1, 10, 37, n - 1):
        idx, vals = topk(block, k)
        expected = _reference_topk(np.where(np.isnan(block), -np.inf, block), k)
        np.testing.assert_array_equal(idx, expected)
        np.testing.assert_array_equal(vals, np.take_along_axis(block, expected, axis=1))


def test_topk_nan_ranks_last_and_edge_sizes():
    scores = np.array([[np.nan, 1.0, -np.inf, 0.0]], dtype=np.float32)
    idx, vals = topk(scores, 4)
    assert list(idx[0][:2]) == [1, 3]
    assert set(idx[0][2:]) == {0, 2}
    idx, vals = topk(scores, 0)
    assert idx.shape == (1, 0) and vals.shape == (1, 0)
    idx, _ = topk(np.array([[3, 1, 2]], dtype=np.int64), 2)  # integer scores
    np.testing.assert_array_equal(idx, [[0, 2]])
    with pytest.raises(ValueError, match="2-d"):
        topk(np.ones(3), 2)


@st.composite
def masked_blocks(draw):
    scores = draw(score_blocks(max_cols=15))
    n_rows, n_cols = scores.shape
    excl = draw(hnp.arrays(bool, (n_rows + 2, n_cols)))  # more rows than the block
    users = draw(hnp.arrays(np.int64, n_rows, elements=st.integers(-1, n_rows + 3)))
    return scores, sp.csr_matrix(excl.astype(np.float32)), users


@settings(max_examples=300, deadline=None)
@given(masked_blocks(), st.integers(1, 16))
def test_masked_items_are_never_recommended(case, k):
    scores, excl, users = case
    # the masked items get the highest scores: masking must still win
    block = scores.copy()
    dense = excl.toarray().astype(bool)
    for r, u in enumerate(users):
        if 0 <= u < excl.shape[0]:
            block[r, dense[u]] = 1e9
    mask_rows(block, excl, users)
    idx, vals = topk(block, k)
    for r, u in enumerate(users):
        known = 0 <= u < excl.shape[0]
        masked = set(np.flatnonzero(dense[u])) if known else set()
        shown = [i for i, v in zip(idx[r], vals[r], strict=True) if v > -np.inf]
        assert not masked & set(shown)
        if known:
            # every masked entry is -inf; every other entry kept its score
            assert np.all(np.isneginf(block[r, dense[u]]))
            np.testing.assert_array_equal(block[r, ~dense[u]], scores[r, ~dense[u]])
        else:
            np.testing.assert_array_equal(block[r], scores[r])  # unknown users are left alone


def test_mask_rows_ignores_stored_zeros_and_checks_shape():
    excl = sp.csr_matrix((np.array([0.0, 1.0], np.float32), np.array([0, 2]), np.array([0, 2])), shape=(1, 3))
    block = np.zeros((1, 3), np.float32)
    mask_rows(block, excl, np.array([0]))
    np.testing.assert_array_equal(block, [[0, 0, -np.inf]])
    with pytest.raises(ValueError, match="2 users for a block of 1 rows"):
        mask_rows(block, excl, np.array([0, 0]))


@st.composite
def hit_cases(draw):
    n_rows = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 12))
    truth = draw(hnp.arrays(bool, (n_rows, n_items)))
    k = draw(st.integers(0, n_items))
    top = np.array([draw(st.permutations(range(n_items)))[:k] for _ in range(n_rows)], dtype=np.int64)
    top = top.reshape(n_rows, k)
    holes = draw(hnp.arrays(bool, top.shape))
    top[holes] = -1  # empty slots are never hits
    return top, truth


def _naive_hits(top, truth):
    return np.array([[0 <= i < truth.shape[1] and bool(truth[r, i]) for i in row] for r, row in enumerate(top)],
                    dtype=bool).reshape(top.shape)


@settings(max_examples=300, deadline=None)
@given(hit_cases())
def test_hits_matrix_equals_naive_lookup(case):
    top, truth = case
    got = hits_matrix(top, sp.csr_matrix(truth.astype(np.float32)))
    np.testing.assert_array_equal(got, _naive_hits(top, truth))


def test_hits_matrix_unsorted_duplicate_and_zero_entries_and_no_mutation():
    # row 0 holds items 2 and 0 in unsorted order, item 1 stored as an explicit zero;
    # row 1 holds item 3 twice (duplicates)
    data = np.array([1, 0, 1, 1, 1], np.float32)
    indices = np.array([2, 1, 0, 3, 3])
    indptr = np.array([0, 3, 5])
    truth = sp.csr_matrix((data, indices, indptr), shape=(2, 4))
    before = truth.indices.copy()
    top = np.array([[0, 1, 2, 3], [3, -1, 0, 2]])
    np.testing.assert_array_equal(
        hits_matrix(top, truth), [[True, False, True, False], [True, False, False, False]]
    )
    np.testing.assert_array_equal(truth.indices, before)  # the caller's matrix is untouched
    with pytest.raises(ValueError, match="does not align"):
        hits_matrix(top[:1], truth)
