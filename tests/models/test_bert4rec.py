"""BERT4Rec: bidirectional attention, the [MASK] slot at scoring time, no special tokens in the output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zenrec import testing
from zenrec.data import Interactions
from zenrec.errors import ConfigError
from zenrec.models import Query, TrainOptions, create_model
from zenrec.testing import top_items

FAST = TrainOptions(seed=3, threads=1, validation=False)  # the toy's every event, every epoch: these tests check mechanics, not early stopping


@pytest.fixture(scope="module")
def ring():
    data = testing.ring_walks(40)
    return data, testing.small_model("bert4rec", max_len=12).fit(data, options=FAST)


def test_scores_cover_the_real_items_only(ring):
    """Pad (0) and [MASK] (n_items + 1) rows of the embedding never reach the output."""
    data, model = ring
    assert model.net_.item.weight.shape[0] == data.n_items + 2
    assert model.mask_token == data.n_items + 1
    assert model.score(np.arange(5)).shape == (5, data.n_items)
    assert model.score_sequences(np.array([[1, 2, 3]])).shape == (1, data.n_items)
    lists = model.recommend_batch([Query(user=u, k=data.n_items, exclude_seen=False) for u in range(40)])
    assert all(set(r.items.tolist()) == set(range(data.n_items)) for r in lists)


def test_scoring_reads_the_mask_slot_after_the_history(ring):
    """The input is the last max_len - 1 items followed by [MASK]."""
    _, model = ring
    seqs = np.array([[0] * 7 + [5, 6, 7, 8, 9], list(range(1, 13))])
    inp = model._scoring_input(seqs)
    np.testing.assert_array_equal(inp[:, :-1], seqs[:, 1:])
    assert (inp[:, -1] == model.mask_token).all()


def test_attention_is_bidirectional_and_blind_to_padding(ring):
    _, model = ring
    net = model.net_
    seq = torch.as_tensor([[0, 0, 0, 4, 5, 6, 7, 8, 9, 10, 11, model.mask_token]])
    with torch.no_grad():
        base = net(seq)
        later = seq.clone()
        later[0, 10] = 30  # a later item changes the state of earlier positions
        assert not torch.allclose(net(later)[0, 3:10], base[0, 3:10])
        shorter = seq.clone()
        shorter[0, :3] = 0
        torch.testing.assert_close(net(shorter)[0, 3:], base[0, 3:])


def test_the_next_item_follows_the_ring(ring):
    data, model = ring
    top = top_items(model, data, k=1)
    assert (top[:, 0] == (np.arange(40) + 8) % 40).mean() >= 0.95


def test_appending_an_item_changes_the_recommendation(ring):
    """User 0 walked 0..7 and gets item 8 first; a new event (item 20) changes the list."""
    data, model = ring
    extra = Interactions([0], [20], 40, 40, timestamp=[100])
    before = model.score([0])[0]
    after = model.score([0], history=data.concat(extra))[0]
    before[:8] = after[:8] = after[20] = -np.inf  # seen items, as recommend(exclude=...) drops them
    assert int(np.argmax(before)) == 8
    assert int(np.argmax(after)) != 8
    assert not np.allclose(before[21:], after[21:])


def test_an_anonymous_session_and_an_empty_one(ring):
    _, model = ring
    session = np.array([[0] * 7 + [11, 12, 13, 14, 15]])  # ids + 1: items 10..14
    scores = model.score_sequences(session)[0]
    scores[10:15] = -np.inf
    assert int(np.argmax(scores)) == 15
    np.testing.assert_array_equal(model.score_sequences(np.zeros((1, 12), np.int64))[0], model.popularity_)


@pytest.mark.parametrize("loss", ["bce", "sampled"])
def test_the_other_losses_train(loss):
    data = testing.ring_walks(20)
    model = create_model("bert4rec", epochs=2, max_len=10, loss=loss, negatives=8).fit(data, options=FAST)
    assert np.isfinite(model.score(np.arange(20))).all()
    assert model.train_history_[-1]["loss"] > 0


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="'max_len' parameter of BERT4Rec"):
        create_model("bert4rec", max_len=1)
    with pytest.raises(ConfigError, match="'mask_prob' parameter of BERT4Rec"):
        create_model("bert4rec", mask_prob=0)
    with pytest.raises(ConfigError, match="divisible by 'heads'"):
        create_model("bert4rec", factors=30, heads=4).fit(testing.ring_walks(10), options=FAST)


@pytest.mark.slow
def test_bert4rec_learns_next_items_on_ml100k(ml100k):
    """Sequential protocol (leave-last-out): 8 short epochs must clearly beat popularity
    (0.045 there); a model that ignored the [MASK] slot or the item order would not."""
    from zenrec.data import split_dataset
    from zenrec.evaluate.evaluator import evaluate_split

    split = split_dataset(ml100k, "sequential")
    pop = evaluate_split(create_model("pop").fit(split.train), split, ks=(10,), beyond=False)["ndcg@10"]
    model = create_model("bert4rec", epochs=8, patience=100, max_len=10, lr=5e-3, last_item_prob=0.3)
    model.fit(split.train, split.valid, TrainOptions(threads=1))
    assert model.train_history_[-1]["valid"] > model.train_history_[0]["valid"] + 0.03
    ndcg = evaluate_split(model, split, ks=(10,), beyond=False)["ndcg@10"]
    assert ndcg >= 1.3 * pop, f"BERT4Rec test NDCG@10 {ndcg:.4f} vs popularity {pop:.4f}"
