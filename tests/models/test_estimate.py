"""Cost estimates before a large closed-form fit (EASE, ItemKNN): formula, measured rates, announcement."""

from __future__ import annotations

import logging
import tracemalloc

import numpy as np
import pytest

from zenrec.data import Interactions
from zenrec.models.base import TrainOptions
from zenrec.models.ease import EASE
from zenrec.models.estimate import (
    ease_estimate,
    itemknn_estimate,
    lapack_rate,
    similarity_rates,
    worth_telling,
)
from zenrec.models.itemknn import ItemKNN


def _random(n_users: int, n_items: int, per_user: int, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_users), per_user)
    return Interactions(u, rng.integers(0, n_items, len(u)), n_users, n_items)


def test_ease_estimate_follows_its_formula():
    n, users, nnz = 24_500, 30_000, 2_000_000
    est = ease_estimate(users, n, nnz, flops_rate=50e9, pair_rate=1e7)
    g = min(n * n, nnz * nnz / users)
    assert est.peak_bytes == int(max(8 * n * n, 4 * n * n + 8 * g) + 12 * nnz)
    assert est.peak_bytes / 1e9 == pytest.approx(4.8, abs=0.05)  # two float32 24,500² matrices
    assert est.seconds == pytest.approx(n**3 / 50e9 + nnz**2 / users / 1e7)
    line = est.line()
    assert line.startswith("ease on 24,500 items: about 4.8 GB peak memory and 5m") and "50.0 GFLOP/s" in line
    dense_gram = ease_estimate(1_000, 3_000, 1_000_000, flops_rate=1e9, pair_rate=1e7)
    assert dense_gram.peak_bytes == 12 * 3_000**2 + 12 * 1_000_000  # the sparse Gram is full: 4n² + 8n²


def test_itemknn_estimate_follows_its_formula():
    est = itemknn_estimate(50_000, 100_000, 5_000_000, k=200, block_size=2048, rates=(1e8, 1e7))
    assert est.peak_bytes == 28 * 2048 * 100_000 + 40 * 100_000 * 200 + 24 * 5_000_000
    assert est.seconds == pytest.approx(1e10 / 1e8 + 5e6**2 / 5e4 / 1e7)


def test_measured_rates_are_positive_and_cached():
    assert lapack_rate() > 1e7 and lapack_rate() is lapack_rate()
    cells, pairs = similarity_rates()
    assert cells > 1e4 and pairs > 1e4


@pytest.mark.parametrize(("model", "items", "low"), [(EASE, 1500, 0.7), (ItemKNN, 2500, 0.6)])
def test_the_memory_formula_matches_a_real_fit(model, items, low):
    data = _random(3000, items, 30)
    est = model().estimate_fit(data.n_users, data.n_items, data.binary.nnz)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        model().fit(data)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert low * est.peak_bytes <= peak <= 1.3 * est.peak_bytes, (peak, est.peak_bytes)


def test_a_large_fit_is_announced_to_the_callback_and_the_logger(monkeypatch, caplog):
    data = _random(400, 1200, 10)
    events = []
    EASE().fit(data, options=TrainOptions(callback=events.append))
    assert events == []  # 1,200 items: well under the default thresholds
    monkeypatch.setenv("ZENREC_ESTIMATE_SECONDS", "0")
    with caplog.at_level(logging.INFO, logger="zenrec.train"):
        EASE().fit(data, options=TrainOptions(callback=events.append))
    assert [e.kind for e in events] == ["estimate"]
    assert events[0].message.startswith("ease on 1,200 items: about ") and "measured by a 1536×1536" in events[0].message
    assert any(r.getMessage() == events[0].message for r in caplog.records)


def test_thresholds(monkeypatch):
    big = ease_estimate(30_000, 24_500, 2_000_000, flops_rate=1e12, pair_rate=1e12)
    small = ease_estimate(1_000, 1_500, 20_000, flops_rate=1e10, pair_rate=1e8)
    assert worth_telling(big) and not worth_telling(small)  # 4.8 GB; 18 MB in a third of a second
    monkeypatch.setenv("ZENREC_ESTIMATE_MB", "10")
    assert worth_telling(small)
    assert EASE().estimate_fit(100, 999, 5000) is None and ItemKNN().estimate_fit(100, 1999, 5000) is None
