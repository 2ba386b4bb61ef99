"""The validation slice held out when a model that early-stops gets no validation part."""

from __future__ import annotations

import numpy as np
import pytest

from zenrec.data import Interactions
from zenrec.errors import ConfigError
from zenrec.models.base import TrainOptions
from zenrec.train.holdout import check_validation, hold_out


def _log(counts: list[int]) -> Interactions:
    """User u has ``counts[u]`` events on items u, u+1, … in time order."""
    user = np.repeat(np.arange(len(counts)), counts)
    pos = np.concatenate([np.arange(c) for c in counts])
    return Interactions(user, (user + pos) % 50, len(counts), 50, timestamp=pos * 10)


def _rows(inter: Interactions) -> set[tuple[int, int, int]]:
    return set(zip(inter.user.tolist(), inter.item.tolist(), inter.timestamp.tolist(), strict=True))


def test_sequence_models_hold_out_each_users_last_event():
    data = _log([5, 1, 3, 2, 0])
    h = hold_out(data, sequential=True)
    assert sorted(zip(h.valid.user.tolist(), h.valid.timestamp.tolist(), strict=True)) == [(0, 40), (2, 20), (3, 10)]
    assert _rows(h.train) | _rows(h.valid) == _rows(data) and not _rows(h.train) & _rows(h.valid)
    assert np.bincount(h.train.user, minlength=5).tolist() == [4, 1, 2, 1, 0]  # the one-event user keeps it
    assert "3 events of 3 users" in h.description


def test_other_models_hold_out_a_seeded_share_of_each_users_events():
    data = _log([40, 20, 2, 1, 11])
    h = hold_out(data, sequential=False, share=0.1, seed=3)
    held = np.bincount(h.valid.user, minlength=5).tolist()
    assert held == [4, 2, 1, 0, 1]  # floor(10%), at least one, only users with two events or more
    assert _rows(h.train) | _rows(h.valid) == _rows(data) and not _rows(h.train) & _rows(h.valid)
    again, other = hold_out(data, False, 0.1, seed=3), hold_out(data, False, 0.1, seed=4)
    assert _rows(again.valid) == _rows(h.valid) and _rows(other.valid) != _rows(h.valid)
    assert np.bincount(hold_out(data, False, 0.5, seed=3).valid.user, minlength=5).tolist() == [20, 10, 1, 0, 5]


def test_at_most_max_users_give_validation_events():
    data = _log([3] * 30)
    h = hold_out(data, sequential=True, seed=0, max_users=7)
    assert len(h.valid) == 7 and len(np.unique(h.valid.user)) == 7
    assert "(a random sample)" in h.description


@pytest.mark.parametrize("bad", [0, 0.0, 1, 1.5, -0.1, "yes", None])
def test_a_bad_validation_option_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="'validation' training option"):
        check_validation(bad)
    with pytest.raises(ConfigError):
        TrainOptions(validation=bad)


def test_validation_option_values():
    assert TrainOptions().validation is True
    assert TrainOptions(validation=False).validation is False
    assert TrainOptions(validation=0.25).validation == 0.25
