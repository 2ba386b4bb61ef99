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
def shared_datasets() -> Path:
    """The public datasets beside the checkout; tests using it skip when absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip("shared datasets are not present beside this checkout")
    return SHARED_DATASETS
