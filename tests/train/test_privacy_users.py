"""User-level DP-SGD by per-example gradients (torch.func) for the two-tower and the sequence models.

The per-example step is checked against per-example gradients taken one
example at a time by autograd, clipped and summed by hand; the two-tower's
examples against their definition (one row per user, every target one of the
user's own items, left out of its history); and every model against the
accountant (ε spent within the target, saved with the model).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from zenrec.errors import ConfigError
from zenrec.evaluate.evaluator import validation_ndcg
from zenrec.models import TrainOptions, create_model, load_model

pytest.importorskip("opacus")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def tiny(ml100k_top):
    """300 users × the 150 most popular items of ml-100k, per-user random 80/10/10, with timestamps."""
    return ml100k_top(300, 150)


def fit(name, split, **params):
    base = {"twotower": {"factors": 16, "hidden": 32, "history_len": 20, "text_encoder": "none", "lr": 0.01},
            "sasrec": {"factors": 16, "max_len": 20, "blocks": 1},
            "gru4rec": {"factors": 16, "max_len": 20}}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_model(name, **{**base, "epochs": 3, "batch_size": 64, **params}).fit(
            split.train, options=TrainOptions(validation=False, threads=1, seed=3))


# ------------------------------------------------------------- the step itself
class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(7, 3)
        self.lin = torch.nn.Linear(3, 1)


def _row_loss(net, idx, target, scale):
    return scale * (net.lin(net.emb(idx)).squeeze() - target) ** 2


def test_the_per_example_step_clips_each_example_and_adds_them_up(monkeypatch):
    """Noise off: the update is exactly −lr · Σ clip(g_i) / expected batch, whatever the chunking."""
    import zenrec.train.privacy as privacy

    net = _Tiny()
    rows = (torch.tensor([0, 1, 2, 3, 1, 5, 6]), torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0, 1.0, -1.0]),
            torch.tensor([1.0, 100.0, 1.0, 0.01, 1.0, 50.0, 1.0]))  # examples 1 and 5 have huge gradients
    clip, batch = 0.5, 4
    expected = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    norms = []
    for i in range(len(rows[0])):
        net.zero_grad()
        _row_loss(net, *(r[i] for r in rows)).backward()
        g = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
        norm = float(torch.sqrt(sum((v ** 2).sum() for v in g.values())))
        norms.append(norm)
        for n in g:
            expected[n] += g[n] * min(1.0, clip / (norm + 1e-6))
    assert max(norms) > 10 * clip > min(norms)  # some examples are clipped, some are not
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    monkeypatch.setattr(privacy, "PER_EXAMPLE_BYTES", 3 * 4 * sum(p.numel() for p in net.parameters()))  # 3 a chunk
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    private = privacy.make_private(net, opt, n_examples=20, batch_size=batch, epochs=1, target_epsilon=8,
                                   delta=1e-5, max_grad_norm=clip, row_loss=_row_loss, unit="one row")
    private.optimizer.noise_multiplier = 0.0
    loss = private.step(rows)
    assert loss == pytest.approx(float(np.mean([_row_loss(_Tiny(), *(r[i] for r in rows)).item()
                                                for i in range(7)])), rel=1e-5)
    for n, p in net.named_parameters():
        torch.testing.assert_close(before[n] - p.detach(), expected[n] / batch, rtol=1e-5, atol=1e-7)
    assert len(private.accountant.history) == 1  # one noisy step for the whole Poisson batch, not one per chunk
    assert private.spent(1)["unit"] == "one row"


def test_with_noise_the_update_moves_by_the_calibrated_noise():
    """The noise is added once per batch: σ·C/B per coordinate, on top of the clipped sum."""
    import zenrec.train.privacy as privacy

    net = _Tiny()
    torch.nn.init.zeros_(net.lin.weight)
    torch.nn.init.zeros_(net.lin.bias)
    rows = (torch.zeros(1, dtype=torch.long), torch.zeros(1), torch.zeros(1))  # a zero gradient: noise only
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    private = privacy.make_private(net, opt, n_examples=1000, batch_size=100, epochs=1, target_epsilon=1,
                                   delta=1e-5, max_grad_norm=2.0, row_loss=_row_loss)
    before = net.emb.weight.detach().clone()
    torch.manual_seed(1)
    private.step(rows)
    moved = (before - net.emb.weight.detach()).ravel()
    std = private.noise_multiplier * 2.0 / 100
    assert float(moved.std()) == pytest.approx(std, rel=0.5)


# ------------------------------------------------------- the two-tower's examples
def test_a_two_tower_example_is_one_user_predicting_some_of_their_own_items(tiny):
    model = create_model("twotower", factors=8, hidden=8, history_len=50, text_encoder="none", dp_epsilon=8,
                         dp_user_items=5, epochs=1, batch_size=64)
    model.side_ = None
    model.popularity_ = np.ones(tiny.train.n_items) / tiny.train.n_items
    model.n_items_, model.n_users_ = tiny.train.n_items, tiny.train.n_users
    model.net_ = model._build(tiny.train, torch.device("cpu"), 0)
    users = model._dp_users[:40]
    u, hist, targets, weights, other, keep = model._user_rows(users)
    csr = tiny.train.binary.tocsr()
    assert len(set(u.tolist())) == len(u) == 40  # one example per user
    for r, user in enumerate(u.tolist()):
        own = set(csr.indices[csr.indptr[user]:csr.indptr[user + 1]].tolist())
        picked = {int(t) for t, w in zip(targets[r], weights[r], strict=True) if w > 0}
        assert picked <= own and len(picked) == min(5, len(own)) == int(weights[r].sum())
        assert set(targets[r].tolist()) <= own  # padding repeats one of the user's own targets
        assert not picked & {int(h) - 1 for h in hist[r] if h > 0}  # a target is not its own evidence
        assert set(np.flatnonzero(other[r].numpy()).tolist()) == own - picked
    assert keep.shape == (40, tiny.train.n_items)


# --------------------------------------------------------------- models end to end
@pytest.mark.parametrize("name", ["twotower", "sasrec", "gru4rec"])
def test_user_level_models_report_the_epsilon_spent_and_save_it(tiny, tmp_path, name):
    model = fit(name, tiny, dp_epsilon=4, dp_max_grad_norm=0.5)
    p = model.privacy_
    assert 0.9 * 4 <= p["epsilon"] <= 4 * 1.01, p
    assert p["unit"].startswith("one user") and p["max_grad_norm"] == 0.5 and p["epochs"] == 3
    users_with_examples = int((np.diff(tiny.train.binary.tocsr().indptr) >= (2 if name != "twotower" else 1)).sum())
    assert p["examples"] == users_with_examples
    assert p["sample_rate"] == pytest.approx(64 / users_with_examples)
    assert model.training_["best_epoch"] is None
    model.save(tmp_path / name)
    again, _, _ = load_model(tmp_path / name)
    assert again.privacy_ == p
    np.testing.assert_allclose(again._score(np.arange(5)), model._score(np.arange(5)), rtol=1e-5, atol=1e-5)


def test_the_private_two_tower_path_learns_when_its_noise_is_off(tiny, monkeypatch):
    """A broken per-user path (wrong targets, gradients not applied) would stay near random; with the noise
    turned off and no clipping the same steps reach most of what ordinary training does."""
    import zenrec.train.privacy as privacy

    real = privacy.make_private

    def no_noise(*args, **kwargs):
        out = real(*args, **kwargs)
        out.optimizer.noise_multiplier = 0.0
        return out

    monkeypatch.setattr(privacy, "make_private", no_noise)
    quiet = fit("twotower", tiny, dp_epsilon=8, dp_max_grad_norm=1e6, epochs=12, batch_size=64)
    monkeypatch.undo()
    rand = create_model("pop").fit(tiny.train)
    learnt = validation_ndcg(quiet._score, tiny.valid, tiny.train)
    random_scores = np.random.default_rng(0).random((tiny.train.n_users, tiny.train.n_items))
    chance = validation_ndcg(lambda u: random_scores[u], tiny.valid, tiny.train)
    assert learnt > 3 * chance, (learnt, chance)
    assert learnt > 0.8 * validation_ndcg(rand._score, tiny.valid, tiny.train), learnt


@pytest.mark.parametrize(("name", "params"), [
    ("twotower", {"dp_epsilon": 8, "loss": "sampled"}),
    ("twotower", {"dp_epsilon": 8, "batch_size": 16}),
    ("twotower", {"dp_epsilon": 8, "dp_user_items": 0}),
    ("sasrec", {"dp_epsilon": 8, "loss": "sampled"}),
    ("gru4rec", {"dp_epsilon": 8, "loss": "bpr"}),
])
def test_bad_user_level_settings_are_config_errors(name, params):
    with pytest.raises(ConfigError):
        create_model(name, **params)


def test_bert4rec_says_it_has_no_differential_privacy(tiny):
    with pytest.raises(ConfigError, match="bert4rec does not train with differential privacy"):
        fit_bert = create_model("bert4rec", factors=16, max_len=20, epochs=1, batch_size=64, dp_epsilon=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_bert.fit(tiny.train, options=TrainOptions(validation=False, threads=1))
