"""Paired comparison of two models' per-user values: Wilcoxon p-values and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from zenrec.errors import ConfigError
from zenrec.evaluate.significance import bootstrap_mean_ci, paired_comparison, wilcoxon_p


def test_identical_values_give_p_one_and_a_zero_interval():
    a = np.random.default_rng(0).random(200)
    r = paired_comparison(a, a.copy())
    assert r.p_value == 1.0 and r.diff == 0.0 and r.ci_low == 0.0 and r.ci_high == 0.0 and r.n_users == 200
    assert wilcoxon_p(np.zeros(5)) == 1.0


def test_a_hand_computed_wilcoxon_p_value():
    # |d| ranks 1, 2, 3, 4; W- = 4; of the 16 sign patterns, 7 have a rank sum <= 4:
    # {}, {1}, {2}, {3}, {4}, {1,2}, {1,3}; two-sided p = 2 * 7/16
    assert wilcoxon_p(np.array([1.0, 2.0, 3.0, -4.0])) == pytest.approx(0.875)
    # zero differences are dropped (Wilcoxon's rule): the same p
    assert wilcoxon_p(np.array([0.0, 1.0, 0.0, 2.0, 3.0, -4.0])) == pytest.approx(0.875)
    # all 20 users better: p = 2 / 2**20 exactly
    assert wilcoxon_p(np.arange(1.0, 21.0)) == pytest.approx(2 / 2**20)


def test_a_constant_shift_has_a_point_interval():
    a = np.random.default_rng(1).random(50)
    r = paired_comparison(a + 0.25, a)
    assert r.diff == pytest.approx(0.25)
    assert r.ci_low == pytest.approx(0.25) and r.ci_high == pytest.approx(0.25)
    assert r.p_value < 1e-6


def test_the_bootstrap_is_seeded_and_shares_draws_across_columns():
    rng = np.random.default_rng(2)
    d = rng.normal(0.1, 1.0, size=(300, 2))
    lo, hi = bootstrap_mean_ci(d, resamples=500, seed=7)
    lo2, hi2 = bootstrap_mean_ci(d, resamples=500, seed=7)
    np.testing.assert_array_equal(lo, lo2)
    np.testing.assert_array_equal(hi, hi2)
    # column by column, the same draws give the same bounds
    l0, h0 = bootstrap_mean_ci(d[:, 0], resamples=500, seed=7)
    assert (l0, h0) == pytest.approx((lo[0], hi[0]), rel=1e-12)
    assert (lo < d.mean(axis=0)).all() and (d.mean(axis=0) < hi).all()
    # about the normal-theory width: 2 * 1.96 * sd / sqrt(n)
    width = 2 * 1.96 * d.std(axis=0) / np.sqrt(300)
    np.testing.assert_allclose(hi - lo, width, rtol=0.2)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1)), st.integers(0, 2**31))
def test_swapping_the_models_negates_the_difference_and_keeps_p(a, seed):
    b = np.random.default_rng(seed).random(len(a))
    ab = paired_comparison(a, b, resamples=200, seed=3)
    ba = paired_comparison(b, a, resamples=200, seed=3)
    assert ab.diff == pytest.approx(-ba.diff)
    assert ab.ci_low == pytest.approx(-ba.ci_high) and ab.ci_high == pytest.approx(-ba.ci_low)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert 0.0 <= ab.p_value <= 1.0
    if len(a) == 1:  # one user: every resample is that user
        assert ab.ci_low == pytest.approx(ab.diff) and ab.ci_high == pytest.approx(ab.diff)


@pytest.mark.parametrize("a, b, words", [
    (np.zeros(3), np.zeros(4), "same users"),
    (np.zeros(0), np.zeros(0), "at least one user"),
    (np.array([np.nan]), np.zeros(1), "finite"),
])
def test_bad_input(a, b, words):
    with pytest.raises(ConfigError, match=words):
        paired_comparison(a, b)
    with pytest.raises(ConfigError, match="'resamples'"):
        bootstrap_mean_ci(np.zeros(3), resamples=0)
