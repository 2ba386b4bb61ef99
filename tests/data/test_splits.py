"""Splits: disjoint, complete, deterministic, and following the field's rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zenrec.data import Interactions, leave_last_out, random_split, temporal_split
from zenrec.errors import ConfigError

RATIOS = [(0.8, 0.1, 0.1), (0.7, 0.3), (0.6, 0.2, 0.2), (0.5, 0.25, 0.25), (0.9, 0.1)]


@st.composite
def interactions(draw, max_users=8, max_n=80):
    n = draw(st.integers(1, max_n))
    n_users = draw(st.integers(1, max_users))
    user = np.array(draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n)))
    item = np.array(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)))
    ts = np.array(draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)))
    return Interactions(user, item, n_users, 10, ts, weight=np.arange(n, dtype=np.float32))


def _ids(inter):
    """Each row's identity: weight holds its original row number."""
    return inter.weight.astype(np.int64)


def _parts(split):
    return [p for p in (split.train, split.valid, split.test) if p is not None]


def _check_partition(inter, split):
    ids = np.concatenate([_ids(p) for p in _parts(split)])
    assert sorted(ids.tolist()) == list(range(len(inter)))  # disjoint and covering


def _recbole_counts(n, ratios):
    """RecBole's Dataset._calcu_split_ids, written plainly."""
    cnt = [int(ratios[i] * n) for i in range(len(ratios))]
    cnt[0] = n - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * n < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


@settings(max_examples=80, deadline=None)
@given(inter=interactions(), ratios=st.sampled_from(RATIOS), seed=st.integers(0, 2**31))
def test_random_split_rules(inter, ratios, seed):
    split = random_split(inter, ratios, seed)
    _check_partition(inter, split)
    parts = _parts(split)
    for u in range(inter.n_users):
        n = int((inter.user == u).sum())
        got = [int((p.user == u).sum()) for p in parts]
        assert got == _recbole_counts(n, ratios), (u, n)
    again = random_split(inter, ratios, seed)
    for a, b in zip(_parts(split), _parts(again), strict=False):
        assert np.array_equal(_ids(a), _ids(b))


def test_random_split_differs_between_seeds():
    rng = np.random.default_rng(0)
    inter = Interactions(rng.integers(0, 20, 2000), rng.integers(0, 50, 2000), 20, 50,
                         weight=np.arange(2000, dtype=np.float32))
    a, b = random_split(inter, seed=1), random_split(inter, seed=2)
    assert not np.array_equal(np.sort(_ids(a.test)), np.sort(_ids(b.test)))
    assert len(a.test) == len(b.test)


@settings(max_examples=80, deadline=None)
@given(inter=interactions(), ratios=st.sampled_from(RATIOS))
def test_temporal_split_rules(inter, ratios):
    split = temporal_split(inter, ratios)
    _check_partition(inter, split)
    parts = _parts(split)
    for early, late in zip(parts, parts[1:], strict=False):
        if len(early) and len(late):
            assert early.timestamp.max() <= late.timestamp.min()
    assert len(split.train) == int(np.floor(ratios[0] * len(inter)))
    again = temporal_split(inter, ratios)
    assert np.array_equal(_ids(again.test), _ids(split.test))


@settings(max_examples=80, deadline=None)
@given(inter=interactions(), validation=st.booleans())
def test_leave_last_out_rules(inter, validation):
    split = leave_last_out(inter, validation=validation)
    _check_partition(inter, split)
    counts = np.bincount(inter.user, minlength=inter.n_users)
    need = 3 if validation else 2
    for u in range(inter.n_users):
        t_u = inter.timestamp[inter.user == u]
        test_u = split.test.timestamp[split.test.user == u]
        if counts[u] >= need:
            assert len(test_u) == 1 and test_u[0] == t_u.max()  # the latest event
            train_u = split.train.timestamp[split.train.user == u]
            assert train_u.max() <= test_u[0]
            if validation:
                valid_u = split.valid.timestamp[split.valid.user == u]
                assert len(valid_u) == 1 and train_u.max() <= valid_u[0] <= test_u[0]
        else:
            assert len(test_u) == 0


def test_leave_last_out_ties_go_by_row_order():
    # user 0 has two events at the same time: the later row is the test item
    inter = Interactions([0, 0, 0], [5, 6, 7], 1, 8, [1, 2, 2])
    split = leave_last_out(inter, validation=False)
    assert split.test.item.tolist() == [7]


@pytest.mark.parametrize("bad", [(0.5, 0.6), (0.0, 1.0), (1.0,), (0.5, 0.2, 0.2, 0.1), (1.2, -0.2)])
def test_bad_ratios_are_config_errors(bad):
    inter = Interactions([0, 0], [0, 1], 1, 2)
    with pytest.raises(ConfigError, match="'ratios' parameter"):
        random_split(inter, bad)
