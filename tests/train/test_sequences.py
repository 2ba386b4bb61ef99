"""Training windows cut from time-ordered histories: every transition covered, strides overlap as asked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zenrec.data.interactions import Interactions
from zenrec.train.sequences import training_windows


def _one_user(n: int) -> Interactions:
    return Interactions(np.zeros(n, np.int32), np.arange(n), 1, n, timestamp=np.arange(n))


def _transitions(windows: np.ndarray) -> list[tuple[int, int]]:
    out = []
    for w in windows:
        for a, b in zip(w[:-1], w[1:], strict=True):
            if a > 0 and b > 0:
                out.append((int(a) - 1, int(b) - 1))
    return out


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 200), length=st.integers(1, 60), data=st.data())
def test_windows_cover_every_transition_in_order(n, length, data):
    stride = data.draw(st.integers(1, length))
    w = training_windows(_one_user(n), length, True, stride)
    assert w.shape[1] == length + 1
    trans = _transitions(w)
    assert set(trans) == {(i, i + 1) for i in range(n - 1)}  # all of them, nothing else
    # the first window ends at the last item; each next one ends `stride` items earlier
    ends = [int(row[-1]) - 1 for row in w]
    assert ends[0] == n - 1 and all(a - b == stride for a, b in zip(ends, ends[1:], strict=False))
    if stride == length:
        assert len(trans) == n - 1  # no transition twice
    # left padding only: the items of a window are consecutive
    for row in w:
        items = row[row > 0] - 1
        assert np.array_equal(items, np.arange(items[0], items[0] + len(items)))


def test_default_stride_is_the_length_and_last_only_keeps_one_window():
    inter = _one_user(120)
    assert np.array_equal(training_windows(inter, 50), training_windows(inter, 50, True, 50))
    assert len(training_windows(inter, 50)) == 3  # 119 transitions in windows of 50
    assert len(training_windows(inter, 50, True, 25)) == 4  # ends at 119, 94, 69, 44
    assert len(training_windows(inter, 50, False, 25)) == 1
    for bad in (0, 51):
        with pytest.raises(ValueError, match="stride"):
            training_windows(inter, 50, True, bad)


def test_a_stride_longer_than_the_window_is_refused_by_the_config():
    from zenrec.errors import ConfigError
    from zenrec.models.sasrec import SASRec

    with pytest.raises((ConfigError, ValueError), match="window_stride"):
        SASRec(max_len=20, window_stride=21)
