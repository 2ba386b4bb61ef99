"""Scoring from a history other than the training data (sequential protocol, fresh events)."""

from __future__ import annotations

import numpy as np
import pytest

from zenrec import testing
from zenrec.data import Interactions
from zenrec.errors import ConfigError
from zenrec.models import TrainOptions, available_models, create_model, get_model_class

HISTORY_MODELS = [n for n in available_models() if get_model_class(n).supports_history]
# item-based: the whole history counts; sequence models are covered in test_sequential.py
ITEM_BASED = [n for n in HISTORY_MODELS if not get_model_class(n).sequential]


def test_the_item_based_models_read_histories():
    assert {"ease", "itemknn"} <= set(HISTORY_MODELS)


@pytest.mark.parametrize("name", HISTORY_MODELS)
def test_training_history_reproduces_scores(name):
    data = testing.checkerboard(30)
    model = create_model(name).fit(data, options=TrainOptions(threads=1))
    users = np.arange(30)
    np.testing.assert_allclose(model.score(users, history=data), model.score(users), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ITEM_BASED)
def test_a_new_event_changes_the_next_list(name):
    """User 0 (even items) also takes odd item 1: odd items must climb in its list."""
    data = testing.checkerboard(30)
    model = create_model(name).fit(data)
    before = model.score([0])[0]
    extra = Interactions([0], [1], 30, 30, timestamp=[10**9])
    after = model.score([0], history=data.concat(extra))[0]
    odd = np.arange(3, 30, 2)
    assert (after[odd] > before[odd]).all()


def test_models_without_history_say_so():
    data = testing.checkerboard(10)
    model = create_model("pop").fit(data)
    with pytest.raises(ConfigError, match="cannot score from a new history"):
        model.score([0], history=data)
