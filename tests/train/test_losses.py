"""Shared losses and negative samplers: hand-computed values and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zenrec.train.losses import bce_loss, bpr_loss, sampled_softmax_loss, softmax_loss
from zenrec.train.negatives import MixtureLogQ, NegativeSampler, in_batch_candidates


def _nll_sigmoid(x: float) -> float:
    return math.log1p(math.exp(-x))


def test_bce_by_hand():
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([[1.0, -1.0], [0.0, 3.0]])
    pos_part = (_nll_sigmoid(2.0) + _nll_sigmoid(0.0)) / 2
    neg_terms = [_nll_sigmoid(-1.0), _nll_sigmoid(1.0), _nll_sigmoid(0.0), _nll_sigmoid(-3.0)]
    assert float(bce_loss(pos, neg)) == pytest.approx(pos_part + sum(neg_terms) / 4, rel=1e-6)
    joint = (2 * pos_part + sum(neg_terms)) / 6
    assert float(bce_loss(pos, neg, balanced=False)) == pytest.approx(joint, rel=1e-6)


def test_bpr_by_hand_and_its_direction():
    pos, neg = torch.tensor([1.0, 0.5]), torch.tensor([[0.0, 2.0], [0.5, -0.5]])
    want = np.mean([_nll_sigmoid(1.0), _nll_sigmoid(-1.0), _nll_sigmoid(0.0), _nll_sigmoid(1.0)])
    assert float(bpr_loss(pos, neg)) == pytest.approx(want, rel=1e-6)
    # one negative per positive (no trailing dimension) works too
    assert float(bpr_loss(pos, neg[:, 0])) == pytest.approx((_nll_sigmoid(1.0) + _nll_sigmoid(0.0)) / 2)
    # raising the positive lowers the loss
    assert float(bpr_loss(pos + 1, neg)) < float(bpr_loss(pos, neg))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(2, 12), st.integers(0, 10_000))
def test_sampled_softmax_over_every_item_with_constant_q_is_the_full_softmax(m, n, seed):
    g = torch.Generator().manual_seed(seed)
    h, items = torch.randn(m, 4, generator=g), torch.randn(n, 4, generator=g)
    tgt = torch.randint(0, n, (m,), generator=g)
    cand = torch.randperm(n, generator=g)
    log_q = torch.full((n,), math.log(1.0 / n))
    full = softmax_loss(h, items, tgt)
    # the loss is log-sum-exp minus the target's logit, both O(1) in float32: when it is tiny the difference
    # keeps only an absolute precision of a few float32 ulps of 1 (hypothesis found m=1, n=3, seed=5008: 6.29e-4)
    tol = {"rel": 1e-5, "abs": 1e-6}
    assert float(sampled_softmax_loss(h, items, tgt, cand, log_q)) == pytest.approx(float(full), **tol)
    assert float(sampled_softmax_loss(h, items, tgt, cand, None)) == pytest.approx(float(full), **tol)


def test_logq_correction_lowers_the_weight_of_frequently_drawn_items():
    """Item 1 drawn 90 % of the time: its logit is reduced by log 0.9 − log 0.1 against item 2."""
    h, items = torch.tensor([[1.0]]), torch.tensor([[0.0], [1.0], [1.0]])
    tgt, cand = torch.tensor([0]), torch.tensor([0, 1, 2])
    log_q = torch.log(torch.tensor([0.5, 0.9, 0.1]))
    logits = torch.tensor([0.0 - log_q[0], 1.0 - log_q[1], 1.0 - log_q[2]])
    want = -torch.log_softmax(logits, 0)[0]
    assert float(sampled_softmax_loss(h, items, tgt, cand, log_q)) == pytest.approx(float(want), rel=1e-6)


def test_in_batch_candidates_hold_every_target_once_plus_the_draws():
    torch.manual_seed(0)
    tgt = torch.tensor([3, 3, 5, 1])
    sampler = NegativeSampler(10, "uniform")
    cand = in_batch_candidates(tgt, sampler, 7)
    assert len(cand) == 3 + 7
    assert set(cand[:3].tolist()) == {1, 3, 5}
    assert in_batch_candidates(tgt).tolist() == [1, 3, 5]


def test_mixture_log_q_is_how_often_each_item_is_a_candidate():
    """Simulated batches of ``in_batch_candidates``: a head item in every batch counts once, not T · p times."""
    counts = np.array([600.0, 200.0, 50.0, 10.0, 3.0, 1.0, 0.5, 0.0])
    n, draws, negatives, batches = len(counts), 40, 5, 4000
    gen = torch.Generator().manual_seed(3)
    sampler = NegativeSampler(n, "uniform", generator=gen)
    probs = torch.as_tensor(counts / counts.sum())
    seen = np.zeros(n)
    for _ in range(batches):
        tgt = torch.multinomial(probs, draws, replacement=True, generator=gen)
        seen += np.bincount(in_batch_candidates(tgt, sampler, negatives).numpy(), minlength=n)
    want = seen / batches
    log_q = MixtureLogQ(counts, negatives)
    got = np.exp(log_q(draws).numpy())
    subset = torch.tensor([5, 0, 5])
    np.testing.assert_array_equal(log_q(draws, subset).numpy(), log_q(draws).numpy()[[5, 0, 5]])
    np.testing.assert_allclose(got, want, rtol=0.05)
    assert got[0] == pytest.approx(1 + negatives / n, rel=1e-6)  # always a target: once per batch
    assert got[-1] == pytest.approx(negatives / n, rel=1e-6)  # never a target: the uniform draws only
    # a rare item: about T · p, the linear approximation
    p = counts[5] / counts.sum()
    assert got[5] - negatives / n == pytest.approx(draws * p, rel=0.05)


def test_uniform_sampler_covers_the_catalogue_evenly():
    s = NegativeSampler(5, "uniform", generator=torch.Generator().manual_seed(1))
    draws = s.sample((20_000,)).numpy()
    freq = np.bincount(draws, minlength=5) / len(draws)
    assert draws.min() >= 0 and draws.max() < 5
    assert np.abs(freq - 0.2).max() < 0.02
    np.testing.assert_allclose(s.log_q().numpy(), np.log(0.2), rtol=1e-6)


def test_popularity_sampler_follows_count_to_the_power():
    counts = np.array([0, 1, 15, 80])
    s = NegativeSampler(4, "popularity", counts, power=0.75, generator=torch.Generator().manual_seed(2))
    want = (counts + 1.0) ** 0.75
    want /= want.sum()
    draws = s.sample((40, 1000)).numpy()
    assert draws.shape == (40, 1000)
    freq = np.bincount(draws.ravel(), minlength=4) / draws.size
    assert np.abs(freq - want).max() < 0.01
    np.testing.assert_allclose(np.exp(s.log_q().numpy()), want, rtol=1e-5)


def test_sampler_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="one count per item"):
        NegativeSampler(3, "popularity", np.array([1, 2]))
    with pytest.raises(ValueError, match="'uniform' or 'popularity'"):
        NegativeSampler(3, "zipf")
    with pytest.raises(ValueError, match="at least one item"):
        NegativeSampler(0)


# ------------------------------------------------- the models that use them
@pytest.mark.parametrize("params", [{"loss": "bpr"}, {"sampler": "popularity"}])
def test_logistic_mf_learns_the_checkerboard_with_either_loss_and_sampler(params):
    from zenrec import testing
    from zenrec.models.registry import create_model

    testing.check_known_answer(create_model("lmf", epochs=60, lr=0.02, **params), n=30, min_hit_rate=0.9)


@pytest.mark.parametrize(("name", "loss", "epochs"), [("sasrec", "bpr", 60), ("sasrec", "sampled", 60),
                                                     ("gru4rec", "sampled", 60), ("bert4rec", "sampled", 200)])
def test_sequence_models_learn_the_ring_walks_with_sampled_losses(name, loss, epochs):
    """BERT4Rec (lr 2e-3, 20 % of items masked) needs more epochs for the same pattern, with either loss."""
    from zenrec import testing
    from zenrec.models.registry import create_model

    model = create_model(name, epochs=epochs, loss=loss, negatives=16, max_len=12)
    testing.check_known_answer(model, n=30, min_hit_rate=0.9)


def test_softmax_loss_by_hand_with_and_without_gradients():
    """h = (1, 0) against items (1, 0), (0, 1), (0, 0), target 0: log(e + 2) − 1; ∂h = Σ p_i v_i − v_0."""
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], requires_grad=True)
    h = torch.tensor([[1.0, 0.0]], requires_grad=True)
    want = math.log(math.e + 2) - 1
    loss = softmax_loss(h, items, torch.tensor([0]))
    assert float(loss.detach()) == pytest.approx(want, rel=1e-6)
    loss.backward()
    p = np.array([math.e, 1.0, 1.0]) / (math.e + 2)
    assert h.grad[0].numpy() == pytest.approx([p[0] - 1, p[1]], abs=1e-6)
    with torch.no_grad():  # the plain path (no gradient wanted) gives the same value
        assert float(softmax_loss(h, items, torch.tensor([0]))) == pytest.approx(want, rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 150), st.integers(2, 40), st.floats(0.1, 30.0), st.integers(0, 10_000))
def test_fused_cpu_softmax_loss_matches_cross_entropy_and_its_gradients(m, n, scale, seed):
    """The chunked CPU path (several chunks when m > 64, large logits) equals autograd through cross_entropy,
    including gradients reaching a table the item vectors are a slice of."""
    g = torch.Generator().manual_seed(seed)
    table = (torch.randn(n + 1, 8, generator=g) * scale).requires_grad_()
    h = torch.randn(m, 8, generator=g).requires_grad_()
    tgt = torch.randint(0, n, (m,), generator=g)
    w = torch.randn((), generator=g)  # a scale on the loss reaches the gradients
    (w * softmax_loss(h, table[1:], tgt)).backward()
    got = (float(softmax_loss(h, table[1:], tgt).detach()), h.grad.clone(), table.grad.clone())
    h.grad, table.grad = None, None
    want = torch.nn.functional.cross_entropy(h @ table[1:].T, tgt)
    (w * want).backward()
    assert got[0] == pytest.approx(float(want.detach()), rel=1e-5, abs=1e-5)
    assert torch.allclose(got[1], h.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(got[2], table.grad, rtol=1e-4, atol=1e-5)
    assert float(got[2][0].abs().sum()) == 0.0  # the row outside the slice gets no gradient
