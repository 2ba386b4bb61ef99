"""Fixtures for the evaluation tests: the bundled ml-100k split and a small slice of it."""

from __future__ import annotations

import numpy as np
import pytest

from zenrec.data import Interactions, Split, random_split, split_dataset
from zenrec.datasets import load_ml100k


@pytest.fixture(scope="session")
def ml100k():
    return load_ml100k()


@pytest.fixture(scope="session")
def ml100k_split(ml100k) -> Split:
    """The design's 'general' protocol split of the whole bundled ml-100k."""
    return split_dataset(ml100k, "general")


@pytest.fixture(scope="session")
def ml100k_small(ml100k) -> Split:
    """A fast slice of ml-100k: the 400 most popular items, users with ≥ 10 events on
    them, ids re-coded contiguously, per-user random 80/10/10 split."""
    inter = ml100k.interactions
    counts = np.bincount(inter.item, minlength=inter.n_items)
    keep_items = np.sort(np.argsort(-counts, kind="stable")[:400])
    item_map = np.full(inter.n_items, -1)
    item_map[keep_items] = np.arange(len(keep_items))
    rows = item_map[inter.item] >= 0
    per_user = np.bincount(inter.user[rows], minlength=inter.n_users)
    keep_users = np.flatnonzero(per_user >= 10)
    user_map = np.full(inter.n_users, -1)
    user_map[keep_users] = np.arange(len(keep_users))
    rows &= user_map[inter.user] >= 0
    small = Interactions(
        user_map[inter.user[rows]],
        item_map[inter.item[rows]],
        len(keep_users),
        len(keep_items),
        inter.timestamp[rows],
    )
    return random_split(small, (0.8, 0.1, 0.1), seed=7)
