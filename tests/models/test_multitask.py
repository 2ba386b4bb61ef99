"""MultiTask (click + purchase): conformance, per-task scores, AUC, and the multi-task gain on a real funnel."""

from __future__ import annotations

import numpy as np
import pytest

from zenrec import testing
from zenrec.data import Interactions
from zenrec.data.synthetic import holdout_engagements, make_funnel
from zenrec.errors import ConfigError, DataError, UnknownIdError
from zenrec.evaluate.evaluator import evaluate
from zenrec.models.base import TrainOptions
from zenrec.models.multitask import MultiTask, auc, purchases_of, sampled_auc, task_labels
from zenrec.models.registry import MODELS

FAST = TrainOptions(seed=0, threads=1, validation=False)  # the toy's every event, every epoch: these tests check mechanics, not early stopping
TINY = MultiTask.test_config


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """load_model finds classes through the registry; register MultiTask for these tests."""
    monkeypatch.setitem(MODELS, "multitask", ("zenrec.models.multitask", "MultiTask"))


@pytest.fixture(scope="module")
def small_funnel():
    return make_funnel(n_users=200, n_items=100, views_per_user=15, seed=1)


@pytest.fixture(scope="module")
def funnel_split():
    """Sharp preferences, mild popularity: clicks say much about purchases (about 1 per user)."""
    data = make_funnel(n_users=600, n_items=200, views_per_user=20, dim=8, sharpness=3.0, popularity=0.3,
                       purchase_mix=0.8, click_rate=0.4, purchase_rate=0.2, seed=7)
    return holdout_engagements(data, (0.7, 0.1, 0.2), seed=0)


@pytest.fixture(scope="module")
def tiny(small_funnel):
    return MultiTask(**TINY).fit(small_funnel, options=FAST)


# ------------------------------------------------------------ conformance
def test_config_round_trip_and_unfitted():
    testing.check_config_round_trip(MultiTask)


@pytest.mark.parametrize("architecture", ["mmoe", "shared_bottom"])
def test_conformance(architecture, small_funnel):
    model = MultiTask(architecture=architecture, **TINY).fit(small_funnel, options=FAST)
    users = np.arange(0, model.n_users_, 17)
    testing.check_finite(model, users)
    testing.check_batch_equals_single(model, users)
    testing.check_save_load(model, users)
    testing.check_unknown_user(model)


def test_known_answer_on_a_purchase_only_checkerboard():
    """Without event names every event is a purchase: the model is then a plain single-task recommender."""
    model = MultiTask(factors=16, expert_size=16, epochs=40, lr=0.01, batch_size=128)
    testing.check_known_answer(model, n=30, min_hit_rate=0.5)


def test_bad_parameters_are_named():
    with pytest.raises(ConfigError, match="the 'architecture' parameter of MultiTask"):
        MultiTask(architecture="moe")
    with pytest.raises(ConfigError, match="MultiTask has no parameter 'towers'"):
        MultiTask(towers=2)
    with pytest.raises(ConfigError, match="users would have no input"):
        MultiTask(history=False, user_embedding=False)


def test_history_only_users_score_from_their_items(small_funnel):
    """Without user ids a user is its history: two users with the same items get the same scores."""
    data = small_funnel.concat(Interactions([0], [5], 200, 100, event=[1], event_names=small_funnel.event_names))
    same = data.subset(data.user == 0)
    twin = Interactions(np.full(len(same), 1), same.item, 200, 100, event=same.event,
                        event_names=same.event_names, timestamp=same.timestamp)
    data = data.subset(data.user != 1).concat(twin)
    model = MultiTask(**{**TINY, "user_embedding": False}).fit(data, options=FAST)
    np.testing.assert_allclose(model.score([0])[0], model.score([1])[0], rtol=1e-5, atol=1e-6)


def test_no_purchase_event_is_a_clear_error():
    clicks = Interactions([0, 1], [1, 0], 2, 2, event=[0, 0], event_names=("click",))
    with pytest.raises(DataError, match=r"no purchase event.*\['purchase', 'buy'\].*\['click'\]"):
        MultiTask(**TINY).fit(clicks, options=FAST)


# --------------------------------------------------------------- per task
def test_task_scores_are_probabilities_in_funnel_order(tiny):
    users = np.arange(10)
    click, buy, cvr = (tiny.score_task(users, t) for t in ("click", "purchase", "cvr"))
    for p in (click, buy, cvr):
        assert p.shape == (10, tiny.n_items_) and ((p > 0) & (p < 1)).all()
    np.testing.assert_allclose(buy, click * cvr, rtol=1e-5)
    assert (buy <= click).all()
    # the default ranking is log p(click)·p(purchase|click)
    np.testing.assert_allclose(tiny.score(users), np.log(buy), rtol=1e-4, atol=1e-5)


def test_ranking_weights_combine_the_tasks(tiny):
    only_click = MultiTask(**{**TINY, "ranking_weights": (1.0, 0.0)})
    only_click.__dict__.update({k: v for k, v in tiny.__dict__.items() if k != "config"})
    np.testing.assert_allclose(only_click.score([3]), np.log(tiny.score_task([3], "click")), rtol=1e-4, atol=1e-5)


def test_score_task_refuses_unknown_tasks_and_users(tiny):
    with pytest.raises(ConfigError, match="'task' parameter must be one of click, purchase, cvr; got 'ctr'"):
        tiny.score_task([0], "ctr")
    with pytest.raises(UnknownIdError):
        tiny.score_task([-1], "click")
    indep = MultiTask(**{**TINY, "objective": "independent"})
    indep.__dict__.update({k: v for k, v in tiny.__dict__.items() if k != "config"})
    with pytest.raises(ConfigError, match="one of click, purchase; got 'cvr'"):
        indep.score_task([0], "cvr")


def test_task_labels_take_the_strongest_event_per_pair():
    inter = Interactions([0, 0, 0, 1, 1, 2], [0, 0, 0, 1, 2, 0], 3, 3, event=[0, 1, 2, 0, 1, 0],
                         event_names=("view", "click", "purchase"))
    lab = task_labels(inter).toarray()
    # stored: exposure-only pairs are label 0 (kept in the matrix), clicks 1, purchases 2
    assert task_labels(inter).nnz == 4
    np.testing.assert_array_equal(lab, [[2, 0, 0], [0, 0, 1], [0, 0, 0]])


# -------------------------------------------------------------------- AUC
def test_auc_by_hand():
    # positives 0.9 and 0.4 against negatives 0.1 and 0.5: 3 of 4 pairs ordered right
    assert auc([1, 0, 1, 0], [0.9, 0.1, 0.4, 0.5]) == 0.75
    assert auc([1, 0], [0.5, 0.5]) == 0.5  # a tie counts one half
    assert auc([1, 1, 0], [0.2, 0.3, 0.3]) == 0.25
    assert np.isnan(auc([1, 1], [0.1, 0.2]))


def test_auc_equals_the_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = rng.integers(0, 20, 300).astype(float)  # many ties
    pos, neg = s[y][:, None], s[~y][None, :]
    brute = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)
    assert auc(y, s) == pytest.approx(brute, abs=1e-12)


def test_sampled_auc_of_a_perfect_scorer_is_one():
    truth = Interactions([0, 1], [2, 3], 2, 6)
    perfect = lambda users: np.where(np.arange(6)[None, :] == np.array([2, 3])[users, None], 1.0, 0.0)  # noqa: E731
    assert sampled_auc(perfect, truth, negatives=20) == 1.0


# ---------------------------------------------------------------- quality
def test_auxiliary_clicks_beat_purchases_alone_on_a_funnel(funnel_split):
    """Same architecture, same purchases: learning clicks too must lift purchase NDCG@10 clearly."""
    s = funnel_split
    buys, test_buys, valid_buys = purchases_of(s.train), purchases_of(s.test), purchases_of(s.valid)
    params = {"factors": 16, "expert_size": 16, "epochs": 10, "batch_size": 256, "lr": 0.005}
    multi = MultiTask(**params).fit(s.train, options=FAST)
    single = MultiTask(**params).fit(buys, options=FAST)
    pop = testing.get_model_class("pop")().fit(buys)

    def ndcg(model):
        return evaluate(model, test_buys, [buys, valid_buys], ks=(10,), metrics=("ndcg",), beyond=False)["ndcg@10"]

    n_multi, n_single, n_pop = ndcg(multi), ndcg(single), ndcg(pop)
    # measured: 0.125 vs 0.078 (purchases alone) and 0.093 (popularity)
    assert n_multi >= 1.3 * n_single and n_multi >= 1.2 * n_pop, (n_multi, n_single, n_pop)
    # per-task AUCs: both heads rank held-out engagements well above random items
    assert sampled_auc(lambda u: multi.score_task(u, "click"), s.test, [s.train, s.valid], 50) > 0.65
    assert sampled_auc(lambda u: multi.score_task(u, "purchase"), test_buys, [s.train, s.valid], 50) > 0.65


# ------------------------------------------------------------------- wide
def test_wide_click_part_is_ease_on_the_engaged_items(tiny, small_funnel):
    """The click task's wide part is EASE fitted on the engaged (non-exposure) pairs."""
    from zenrec.models.ease import EASE

    c = tiny.config
    engaged = task_labels(small_funnel).tocoo()
    keep = engaged.data >= 1
    inter = Interactions(engaged.row[keep], engaged.col[keep], tiny.n_users_, tiny.n_items_)
    ease = EASE(reg=c.wide_reg, dropout=c.wide_dropout, user_weighting=c.wide_user_weighting).fit(inter)
    np.testing.assert_allclose(tiny.wide_[0], ease.weights_, rtol=1e-3, atol=1e-5)


def test_wide_purchase_part_solves_the_zero_diagonal_ridge_regression(tiny, small_funnel):
    """KKT conditions of min ‖W½(Y − XB)‖² + Σ_j λ_j‖B_j·‖² with B_jj = 0, checked on every column.

    The gradient with respect to column j of B is (XᵀWX + Λ)B_j − XᵀWY_j; the
    constraint only frees its j-th entry, so every other entry must vanish.
    """
    from zenrec.models.ease import user_row_weights

    c = tiny.config
    x = tiny.hist_.toarray().astype(np.float64)
    lab = task_labels(small_funnel).toarray()
    y = (lab == 2).astype(np.float64)
    w = user_row_weights(tiny.hist_, c.wide_user_weighting).astype(np.float64)
    g = x.T @ (w[:, None] * x)
    lam = c.wide_reg + c.wide_dropout / (1 - c.wide_dropout) * np.diag(g)
    b = tiny.wide_[1].astype(np.float64)
    grad = (g + np.diag(lam)) @ b - x.T @ (w[:, None] * y)
    off = ~np.eye(len(b), dtype=bool)
    assert np.abs(np.diag(b)).max() == 0.0
    assert np.abs(grad[off]).max() < 1e-3 * np.abs(x.T @ (w[:, None] * y)).max()
    # and the constraint bites: the unconstrained solution would not keep a zero diagonal
    free = np.linalg.solve(g + np.diag(lam), x.T @ (w[:, None] * y))
    assert np.abs(np.diag(free)).max() > 1e-3


def test_wide_part_can_be_switched_off_and_is_refused_above_its_item_limit(small_funnel):
    deep = MultiTask(**{**TINY, "wide": False}).fit(small_funnel, options=FAST)
    assert not hasattr(deep, "wide_")
    testing.check_save_load(deep, np.arange(5))
    with pytest.raises(ConfigError, match="'wide_max_items' parameter is 50"):
        MultiTask(**{**TINY, "wide": True, "wide_max_items": 50}).fit(small_funnel, options=FAST)
    # the default ('auto') leaves the wide part out above the limit instead
    auto = MultiTask(**{**TINY, "wide_max_items": 50}).fit(small_funnel, options=FAST)
    assert not auto.uses_wide_ and not hasattr(auto, "wide_")
    testing.check_save_load(auto, np.arange(5))
    assert MultiTask(**TINY).fit(small_funnel, options=FAST).uses_wide_
