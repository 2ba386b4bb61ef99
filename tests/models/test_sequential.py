"""Sequence models: causality, order sensitivity, sessions unseen in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zenrec import testing
from zenrec.data import Interactions
from zenrec.errors import ConfigError
from zenrec.models import create_model
from zenrec.models.base import TrainOptions
from zenrec.testing import top_items

SEQUENCE_MODELS = ["transition", "gru4rec", "sasrec"]
FAST = TrainOptions(seed=3, threads=1, validation=False)  # the toy's every event, every epoch: these tests check mechanics, not early stopping


@pytest.fixture(scope="module")
def fitted():
    data = testing.ring_walks(40)
    return data, {name: testing.small_model(name).fit(data, options=FAST) for name in SEQUENCE_MODELS}


def test_sasrec_position_t_sees_only_items_up_to_t():
    """Changing the items after position t leaves the hidden states up to t unchanged."""
    model = create_model("sasrec", epochs=1, max_len=12).fit(testing.ring_walks(30), options=FAST)
    net = model.net_
    rng = np.random.default_rng(0)
    seq = torch.as_tensor(rng.integers(1, 31, (4, 12)))
    seq[0, :3] = 0  # a padded row too
    with torch.no_grad():
        base = net(seq)
        for t in range(11):
            other = seq.clone()
            other[:, t + 1 :] = torch.as_tensor(rng.integers(1, 31, (4, 11 - t)))
            changed = net(other)
            torch.testing.assert_close(changed[:, : t + 1], base[:, : t + 1], rtol=1e-5, atol=1e-5)
            assert not torch.allclose(changed[:, t + 1 :], base[:, t + 1 :])


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_the_next_item_follows_the_ring(name, fitted):
    data, models = fitted
    top = top_items(models[name], data, k=1)
    assert (top[:, 0] == (np.arange(40) + 8) % 40).mean() >= 0.95


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_appending_an_item_changes_the_recommendation(name, fitted):
    """User 0 walked 0..7; after it also takes item 20, item 21 must come first."""
    data, models = fitted
    extra = Interactions([0], [20], 40, 40, timestamp=[100])
    before = models[name].score([0])[0]
    after = models[name].score([0], history=data.concat(extra))[0]
    assert int(np.argmax(before)) == 8
    assert int(np.argmax(after)) == 21


def test_an_anonymous_session_is_scored_from_its_items(fitted):
    _, models = fitted
    sasrec = models["sasrec"]
    session = np.array([[0] * 45 + [11, 12, 13, 14, 15]])  # ids + 1: items 10..14
    assert int(np.argmax(sasrec.score_sequences(session)[0])) == 15


def test_empty_history_falls_back_to_popularity(fitted):
    _, models = fitted
    sasrec = models["sasrec"]
    np.testing.assert_array_equal(sasrec.score_sequences(np.zeros((1, 50), dtype=np.int64))[0], sasrec.popularity_)


def test_sasrec_feed_forward_width_is_a_setting():
    """``ffn_size`` widens each block's feed-forward layer (default: the embedding size, as in the paper)."""
    data = testing.ring_walks(20)
    default = create_model("sasrec", epochs=1, max_len=8, factors=16).fit(data, options=FAST)
    wide = create_model("sasrec", epochs=1, max_len=8, factors=16, ffn_size=48).fit(data, options=FAST)
    widths = [[m.linear1.out_features for m in model.net_.blocks] for model in (default, wide)]
    assert widths == [[16, 16], [48, 48]]
    with pytest.raises(ConfigError, match="ffn_size"):
        create_model("sasrec", ffn_size=0)
