"""Shared fixtures: the bundled ml-100k dataset and its general-protocol split."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# implicit asks for a single-threaded BLAS in its process
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def ml100k():
    from zenrec.datasets import load_ml100k

    return load_ml100k()


@pytest.fixture(scope="session")
def ml100k_split(ml100k):
    from zenrec.data import split_dataset

    return split_dataset(ml100k, "general", seed=2020)


@pytest.fixture(scope="session")
def ml100k_small(ml100k):
    """A fast slice of ml-100k: the 400 most popular items, users with ≥ 10 events on
    them, ids re-coded contiguously, per-user random 80/10/10 split."""
    import numpy as np

    from zenrec.data import Interactions, random_split

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


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The public datasets beside the checkout; tests using it skip when absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip("shared datasets are not present beside this checkout")
    return SHARED_DATASETS
