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
    w = training_windows(_one_user(n), length, True, stride).items
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


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 150), min_size=1, max_size=4), length=st.integers(1, 60), data=st.data())
def test_each_transition_is_trained_once_with_its_longest_context(sizes, length, data):
    stride = data.draw(st.integers(1, length))
    all_windows = data.draw(st.booleans())
    user = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
    item = np.arange(len(user))  # every event its own item: a target item names its user and position
    inter = Interactions(user, item, len(sizes), max(len(user), 1), timestamp=np.arange(len(user)))
    w, first = training_windows(inter, length, all_windows, stride)
    assert first.shape == (len(w),) and ((first == 0) | (first == length - stride)).all()
    trained: dict[int, int] = {}  # target item -> items before it in the window that trains it
    best: dict[int, int] = {}  # the most items before it in any window
    for row, f in zip(w, first, strict=True):
        for col in range(length):
            if row[col] > 0 and row[col + 1] > 0:
                target, context = int(row[col + 1]) - 1, int((row[: col + 1] > 0).sum())
                best[target] = max(best.get(target, 0), context)
                if col >= f:
                    assert target not in trained, "a transition trained twice in one epoch"
                    trained[target] = context
    start = np.concatenate([[0], np.cumsum(sizes)])
    for u, n in enumerate(sizes):
        targets = range(1, n) if all_windows else range(max(1, n - length), n)
        for t in targets:
            context = trained.pop(int(start[u]) + t)
            assert context == best[int(start[u]) + t]
            if all_windows:  # at least the overlap of consecutive windows, or the whole past
                assert context >= min(t, length - stride + 1)
    assert not trained


def test_default_stride_is_the_length_and_last_only_keeps_one_window():
    inter = _one_user(120)
    assert np.array_equal(training_windows(inter, 50).items, training_windows(inter, 50, True, 50).items)
    assert len(training_windows(inter, 50).items) == 3  # 119 transitions in windows of 50
    assert len(training_windows(inter, 50, True, 25).items) == 4  # ends at 119, 94, 69, 44
    assert len(training_windows(inter, 50, False, 25).items) == 1
    assert training_windows(inter, 50).first.tolist() == [0, 0, 0]  # no overlap: every transition of every window
    assert training_windows(inter, 50, True, 25).first.tolist() == [25, 25, 25, 0]
    for bad in (0, 51):
        with pytest.raises(ValueError, match="stride"):
            training_windows(inter, 50, True, bad)


def test_a_stride_longer_than_the_window_is_refused_by_the_config():
    from zenrec.errors import ConfigError
    from zenrec.models.sasrec import SASRec

    with pytest.raises((ConfigError, ValueError), match="window_stride"):
        SASRec(max_len=20, window_stride=21)


def test_the_default_stride_is_a_fifth_of_the_history():
    from zenrec.models.gru4rec import GRU4Rec
    from zenrec.models.sasrec import SASRec

    assert SASRec().config.stride == 10  # history 50
    assert SASRec(max_len=20).config.stride == 4
    assert GRU4Rec(max_len=3).config.stride == 1
    assert SASRec(max_len=20, window_stride=20).config.stride == 20  # no overlap, when asked


def test_bert4rec_refuses_a_window_stride():
    from zenrec.errors import ConfigError
    from zenrec.models.bert4rec import BERT4Rec

    with pytest.raises((ConfigError, ValueError), match="window_stride does not apply to bert4rec"):
        BERT4Rec(window_stride=10)
