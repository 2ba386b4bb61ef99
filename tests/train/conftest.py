"""Fixtures of the training tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


@pytest.fixture(scope="session")
def ml100k_top(ml100k) -> Callable[..., object]:
    """``ml100k_top(users, items)``: the first ``users`` users × the ``items`` most popular items of ml-100k,
    with timestamps, split per user at random 80/10/10 (seed 7)."""
    from zenrec.data import Interactions, random_split

    def make(users: int, items: int):
        inter = ml100k.interactions
        counts = np.bincount(inter.item, minlength=inter.n_items)
        top = np.sort(np.argsort(-counts, kind="stable")[:items])
        item_map = np.full(inter.n_items, -1)
        item_map[top] = np.arange(len(top))
        rows = (item_map[inter.item] >= 0) & (inter.user < users)
        small = Interactions(inter.user[rows], item_map[inter.item[rows]], users, len(top), inter.timestamp[rows])
        return random_split(small, (0.8, 0.1, 0.1), seed=7)

    return make
