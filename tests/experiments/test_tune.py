"""Tuning: equal budgets, defaults as trial 0 (never worse than defaults), valid search spaces."""

from __future__ import annotations

import logging

import numpy as np
import optuna
import pytest

from zenrec.errors import ConfigError, UnknownModelError
from zenrec.evaluate.evaluator import evaluate_split
from zenrec.experiments.leaderboard import Leaderboard
from zenrec.experiments.tune import (
    SEARCH_SPACES,
    TuneResult,
    get_search_space,
    parse_metric,
    register_search_space,
    tune,
    tuned_leaderboard,
)
from zenrec.models import TrainOptions, available_models, create_model, get_model_class


def _default_valid_value(split, name, metric="ndcg@10", **params):
    m, k = parse_metric(metric)
    model = create_model(name, **params).fit(split.train, split.valid, TrainOptions(seed=3))
    return evaluate_split(model, split, "valid", ks=(k,), metrics=(m,), beyond=False)[metric]


@pytest.fixture(scope="module")
def tuned(ml100k_small):
    calls = []
    res = tune(ml100k_small, ["pop", "itemknn", "ease"], n_trials=5, seed=3,
               progress=lambda *a: calls.append(a))
    return res, calls


def test_tuned_ease_is_never_worse_than_its_defaults(tuned, ml100k_small):
    res, _ = tuned
    r = res["ease"]
    assert isinstance(r, TuneResult) and r.model == "ease" and r.metric == "ndcg@10"
    default = _default_valid_value(ml100k_small, "ease")
    # trial 0 is the defaults, evaluated exactly as a direct evaluation would
    assert r.default_value == pytest.approx(default)
    assert r.trials.loc[0, "params_reg"] == create_model("ease").config.reg
    assert r.trials.loc[0, "params_dropout"] == create_model("ease").config.dropout
    assert r.best_value >= default
    assert r.best_value == r.trials["value"].max()
    # the best parameters reproduce the best value when refitted
    refit = _default_valid_value(ml100k_small, "ease", **r.best_params)
    assert refit == pytest.approx(r.best_value)


def test_every_model_gets_the_same_trial_budget(tuned):
    res, calls = tuned
    assert list(res) == ["pop", "itemknn", "ease"]
    assert {r.n_trials for r in res.values()} == {5}
    assert all(len(r.trials) == 5 for r in res.values())
    assert all((r.trials["state"] == "COMPLETE").all() for r in res.values())
    per_model = {label: sum(1 for c in calls if c[0] == label) for label in res}
    assert per_model == {"pop": 5, "itemknn": 5, "ease": 5}
    assert all(stage == "trial" and total == 5 for _, stage, _, total in calls)


def test_search_spaces_are_explored(tuned):
    res, _ = tuned
    # the sampler explores: trials after the defaults try other parameters
    assert res["ease"].trials["params_reg"].nunique() == 5
    assert res["itemknn"].trials["params_k"].nunique() > 1
    # popularity has nothing to tune: every trial is the same value
    assert res["pop"].trials["value"].nunique() == 1 and res["pop"].best_params == {}
    # reg is sampled log-uniformly within 10..5000, dropout within 0..0.5
    assert res["ease"].trials["params_reg"].between(10, 5000).all()
    assert res["ease"].trials["params_dropout"].between(0, 0.5).all()


def test_seeded_tuning_is_reproducible(tuned, ml100k_small):
    res, _ = tuned
    again = tune(ml100k_small, ["ease"], n_trials=3, seed=3)
    np.testing.assert_allclose(again["ease"].trials["params_reg"], res["ease"].trials["params_reg"][:3])
    np.testing.assert_allclose(again["ease"].trials["value"], res["ease"].trials["value"][:3])
    other = tune(ml100k_small, ["ease"], n_trials=2, seed=4)
    assert other["ease"].trials.loc[1, "params_reg"] != res["ease"].trials.loc[1, "params_reg"]


def test_tuned_leaderboard_refits_best_params(tuned, ml100k_small):
    res, _ = tuned
    board = tuned_leaderboard(ml100k_small, res, ks=(10,))
    assert isinstance(board, Leaderboard)
    assert board.labels == ["pop", "itemknn", "ease"]
    for label, r in res.items():
        row = board[label]
        assert {k: row.params[k] for k in r.best_params} == pytest.approx(r.best_params)
        # refit on train, evaluated on valid: the tuned value again
        assert row.valid["ndcg@10"] == pytest.approx(r.best_value)
        assert "ndcg@10" in row.test
    d = res["ease"].to_dict()
    assert d["best_value"] == res["ease"].best_value and len(d["trials"]) == 5


def test_optuna_logging_is_quiet_during_tuning_and_restored(ml100k_small, caplog):
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        optuna.logging.enable_propagation()
        with caplog.at_level(logging.INFO, logger="optuna"):
            tune(ml100k_small, ["pop"], n_trials=2)
        assert not [r for r in caplog.records if r.name.startswith("optuna") and r.levelno < logging.WARNING]
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.disable_propagation()
        optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("name", sorted(SEARCH_SPACES))
def test_each_search_space_contains_the_defaults_and_yields_valid_configs(name):
    cls = get_model_class(name)
    defaults = cls().config.model_dump()
    space = get_search_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(30):
        trial = study.ask()
        params = space(trial)
        cls(**params)  # a bad name or out-of-range value raises ConfigError
        for pname, dist in trial.distributions.items():
            assert dist._contains(dist.to_internal_repr(defaults[pname])), (name, pname, defaults[pname])
        study.tell(trial, float(i))


def test_the_requested_spaces():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    expected = {
        "pop": set(),
        "itemknn": {"k", "shrink", "alpha"},
        "ease": {"reg", "dropout", "user_weighting"},
        "als": {"factors", "regularization", "alpha", "iterations"},
        "lmf": {"factors", "lr", "negatives", "embedding_l2"},
    }
    for name, keys in expected.items():
        trial = optuna.create_study().ask()
        assert set(SEARCH_SPACES[name](trial)) == keys, name
    ease = study.ask()
    SEARCH_SPACES["ease"](ease)
    reg = ease.distributions["reg"]
    assert (reg.low, reg.high, reg.log) == (10.0, 5000.0, True)
    assert (ease.distributions["dropout"].low, ease.distributions["dropout"].high) == (0.0, 0.5)


def test_fixed_params_are_not_tuned_and_class_spaces_win(ml100k_small, monkeypatch):
    res = tune(ml100k_small, [("itemknn", {"k": 7})], n_trials=3, seed=1)
    r = res["itemknn"]
    assert r.best_params["k"] == 7
    assert "params_k" not in r.trials and "params_shrink" in r.trials  # k is not searched
    cls = get_model_class("ease")
    monkeypatch.setattr(cls, "search_space", staticmethod(lambda t: {"reg": t.suggest_float("reg", 200, 300)}),
                        raising=False)
    r = tune(ml100k_small, ["ease"], n_trials=3, seed=1)["ease"]
    assert r.trials["params_reg"].iloc[1:].between(200, 300).all()


def test_bad_arguments(ml100k_small, monkeypatch):
    with pytest.raises(ConfigError, match="'metric' parameter"):
        tune(ml100k_small, ["pop"], n_trials=1, metric="ndcg")
    with pytest.raises(ConfigError, match="'metric' parameter"):
        tune(ml100k_small, ["pop"], n_trials=1, metric="coverage@10")
    with pytest.raises(ConfigError, match="'n_trials' parameter"):
        tune(ml100k_small, ["pop"], n_trials=0)
    with pytest.raises(UnknownModelError):
        tune(ml100k_small, ["nope"], n_trials=1)
    with pytest.raises(ConfigError, match="validation part"):
        from zenrec.data import Split

        tune(Split(ml100k_small.train, None, ml100k_small.test), ["pop"], n_trials=1)
    monkeypatch.delitem(SEARCH_SPACES, "pop")
    with pytest.raises(ConfigError, match="no search space"):
        tune(ml100k_small, ["pop"], n_trials=1)
    with pytest.raises(ConfigError, match="callable"):
        register_search_space("ease", 5)
    with pytest.raises(ConfigError, match="no tuning result"):
        tuned_leaderboard(ml100k_small, {})


def test_every_registered_baseline_has_a_space():
    for name in ("pop", "itemknn", "ease", "als", "lmf"):
        assert name in available_models()
        get_search_space(name)


@pytest.mark.slow
def test_tuning_ease_on_the_full_ml100k_split(ml100k_split):
    default = _default_valid_value(ml100k_split, "ease")
    r = tune(ml100k_split, ["ease"], n_trials=5, seed=3)["ease"]
    assert r.n_trials == 5
    assert r.default_value == pytest.approx(default)
    assert r.best_value >= default


def test_every_registered_model_can_be_tuned():
    """The tuning command works for every model in the registry, neural ones included."""
    missing = [name for name in available_models() if name not in SEARCH_SPACES
               and not callable(getattr(get_model_class(name), "search_space", None))]
    assert missing == []
