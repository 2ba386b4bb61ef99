"""Differentially private training (DP-SGD with Opacus): ε spent, the quality cost, config errors."""

from __future__ import annotations

import warnings

import pytest

from zenrec.errors import ConfigError
from zenrec.evaluate.evaluator import validation_ndcg
from zenrec.models import TrainOptions, create_model
from zenrec.models.lmf import LogisticMF

pytest.importorskip("opacus")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FAST = {"factors": 16, "epochs": 4, "batch_size": 256, "lr": 0.02}


@pytest.fixture(scope="module")
def tiny(ml100k_top):
    """200 users × the 120 most popular items of ml-100k, per-user random 80/10/10 (≈ 8k training pairs)."""
    return ml100k_top(200, 120)


def fit(split, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_model("lmf", **{**FAST, **params}).fit(
            split.train, options=TrainOptions(validation=False, threads=1, seed=3))


def test_reported_epsilon_is_within_the_target_and_saved(tiny, tmp_path):
    model = fit(tiny, dp_epsilon=8, dp_delta=1e-5, dp_max_grad_norm=1.0)
    p = model.privacy_
    assert 0 < p["epsilon"] <= 8 * 1.01, p
    assert p["delta"] == 1e-5 and p["max_grad_norm"] == 1.0 and p["noise_multiplier"] > 0
    assert p["epochs"] == FAST["epochs"] == model.epochs_trained_  # fixed epochs: no early stop under DP
    assert p["sample_rate"] == pytest.approx(FAST["batch_size"] / len(tiny.train.binary.nonzero()[0]))
    assert model.training_["best_epoch"] is None  # no epoch picked by (private) validation data
    model.save(tmp_path / "m")
    assert LogisticMF.load(tmp_path / "m").privacy_ == p
    assert fit(tiny).privacy_ is None


def test_a_tiny_epsilon_costs_quality(tiny):
    plain = validation_ndcg(fit(tiny)._score, tiny.valid, tiny.train)
    private = fit(tiny, dp_epsilon=0.5)
    assert private.privacy_["epsilon"] <= 0.5 * 1.01
    noisy = validation_ndcg(private._score, tiny.valid, tiny.train)
    assert noisy < plain, (noisy, plain)


@pytest.mark.parametrize("params", [
    {"dp_epsilon": 0},
    {"dp_epsilon": -1},
    {"dp_epsilon": 8, "dp_delta": 0},
    {"dp_epsilon": 8, "dp_delta": 1.0},
    {"dp_epsilon": 8, "dp_max_grad_norm": 0},
    {"dp_epsilon": 8, "sampler": "popularity"},
    {"dp_epsilon": 8, "batch_size": 16},
])
def test_bad_privacy_settings_are_config_errors(params):
    with pytest.raises(ConfigError):
        create_model("lmf", **params)


def test_models_without_dp_reject_the_parameter():
    with pytest.raises(ConfigError, match="dp_epsilon"):
        create_model("ease", dp_epsilon=8)


def test_zenrec_train_prints_the_epsilon_spent():
    from zenrec.cli.main import _training_summary

    line = _training_summary("lmf", {"epochs": 2, "max_epochs": 2, "best_epoch": None, "validation": "none",
                                     "privacy": {"epsilon": 7.99, "delta": 1e-5, "target_epsilon": 8.0,
                                                 "noise_multiplier": 0.55, "max_grad_norm": 1.0, "epochs": 2}})
    assert "ε = 7.990 spent at δ = 1e-05" in line and "event level" in line
