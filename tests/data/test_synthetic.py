"""The synthetic click → purchase funnel, its leak-free hold-out, and the Tmall multi-behaviour reader."""

from __future__ import annotations

import numpy as np
import pytest

from zenrec.data.synthetic import FUNNEL_EVENTS, holdout_engagements, make_funnel
from zenrec.data.tmall import TMALL_EVENTS, read_tmall
from zenrec.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def funnel():
    return make_funnel(n_users=300, n_items=200, views_per_user=30, seed=1)


def _pairs(inter, code=None):
    keep = np.ones(len(inter), dtype=bool) if code is None else inter.event == code
    return set((inter.user[keep].astype(np.int64) * inter.n_items + inter.item[keep]).tolist())


def test_funnel_is_a_funnel(funnel):
    assert funnel.event_names == FUNNEL_EVENTS
    views, clicks, buys = (_pairs(funnel, k) for k in range(3))
    assert len(views) == 300 * 30  # each user views distinct items
    assert buys <= clicks <= views
    counts = np.bincount(funnel.event, minlength=3)
    assert counts[1] / counts[0] == pytest.approx(0.3, abs=0.03)
    assert counts[2] / counts[1] == pytest.approx(0.15, abs=0.03)


def test_funnel_is_deterministic_under_a_seed():
    a, b, c = make_funnel(50, 40, 10, seed=3), make_funnel(50, 40, 10, seed=3), make_funnel(50, 40, 10, seed=4)
    np.testing.assert_array_equal(a.item, b.item)
    np.testing.assert_array_equal(a.event, b.event)
    assert not np.array_equal(a.item, c.item)


def test_clicks_carry_purchase_signal(funnel):
    """Items a user clicked are bought far more often than items merely viewed: the signal is real."""
    lab = np.zeros((300, 200), dtype=np.int8)
    lab[funnel.user, funnel.item] = np.maximum(lab[funnel.user, funnel.item], funnel.event + 1)
    # popularity of the item among other users' clicks predicts this user's purchase
    click_pop = (lab >= 2).sum(0)
    viewed = lab >= 1
    bought = lab[viewed] == 3
    pop = np.broadcast_to(click_pop, lab.shape)[viewed]
    assert bought[pop >= np.median(pop)].mean() > 1.3 * bought[pop < np.median(pop)].mean()


def test_holdout_removes_the_whole_funnel_of_held_out_pairs(funnel):
    split = holdout_engagements(funnel, (0.8, 0.1, 0.1), seed=0)
    train, held = _pairs(split.train), _pairs(split.valid) | _pairs(split.test)
    assert not train & held
    assert not _pairs(split.valid) & _pairs(split.test)
    assert (split.test.event >= 1).all() and (split.valid.event >= 1).all()  # engagements only
    engaged = _pairs(funnel, 1)
    assert held <= engaged and 0.18 <= len(held) / len(engaged) <= 0.3
    assert len(split.train) + len(split.valid) + len(split.test) < len(funnel)  # held-out views dropped


@pytest.mark.parametrize("params, match", [
    ({"views_per_user": 0}, "'views_per_user' parameter of make_funnel must be between 1 and 500"),
    ({"click_rate": 1.5}, "'click_rate' parameter of make_funnel must lie in"),
    ({"purchase_mix": -0.1}, "'purchase_mix'"),
])
def test_bad_funnel_parameters_are_named(params, match):
    with pytest.raises(ConfigError, match=match):
        make_funnel(n_users=10, n_items=500, **params)


def test_bad_holdout_ratios_are_refused(funnel):
    with pytest.raises(ConfigError, match="'ratios' parameter"):
        holdout_engagements(funnel, (0.5, 0.1, 0.1))


# ------------------------------------------------------------------- Tmall
def _write_tmall(d, buy="1 1\n2 2\n", count='{"user": 3, "item": 4}'):
    d.mkdir()
    (d / "count.txt").write_text(count)
    for name, text in {"buy.txt": buy, "collect.txt": "1 3\n3 4\n", "cart.txt": "2 1\n",
                       "validation.txt": "1 2\n", "test.txt": "3 1\n"}.items():
        (d / name).write_text(text)
    return d


def test_tmall_reader_codes_events_and_fixed_split(tmp_path):
    split, ds = read_tmall(_write_tmall(tmp_path / "t"))
    tr = split.train
    assert tr.event_names == TMALL_EVENTS and (tr.n_users, tr.n_items) == (3, 4)
    got = sorted(zip(tr.user.tolist(), tr.item.tolist(), [TMALL_EVENTS[e] for e in tr.event], strict=False))
    assert got == [(0, 0, "purchase"), (0, 2, "favorite"), (1, 0, "cart"), (1, 1, "purchase"), (2, 3, "favorite")]
    assert list(zip(split.valid.user, split.valid.item, strict=False)) == [(0, 1)]
    assert list(zip(split.test.user, split.test.item, strict=False)) == [(2, 0)]
    assert (split.test.event == TMALL_EVENTS.index("purchase")).all()
    assert ds.items.ids(np.array([0, 3])).tolist() == [1, 4]  # back to the file's 1-based ids


@pytest.mark.parametrize("buy, match", [
    ("1 1\n2 9\n", r"buy.txt, row 2: expected 'user item' with 1 <= user <= 3 and 1 <= item <= 4"),
    ("1 1\n2 x\n", r"buy.txt.*expected"),
])
def test_tmall_reader_names_the_bad_line(tmp_path, buy, match):
    with pytest.raises(DataError, match=match):
        read_tmall(_write_tmall(tmp_path / "t", buy=buy))


def test_tmall_reader_names_a_missing_file(tmp_path):
    d = _write_tmall(tmp_path / "t")
    (d / "cart.txt").unlink()
    with pytest.raises(DataError, match="cart.txt: file not found"):
        read_tmall(d)


def test_tmall_shared_dataset_matches_its_source_notes(shared_datasets):
    folder = shared_datasets / "tmall-multibehavior"
    if not folder.is_dir():
        pytest.skip("tmall-multibehavior is not among the shared datasets")
    split, _ = read_tmall(folder)
    assert (split.train.n_users, split.train.n_items) == (41738, 11953)
    assert np.bincount(split.train.event).tolist() == [221514, 1996, 181428]
    assert (len(split.valid), len(split.test)) == (74158, 31572)
