"""Online metrics: hand-computed rates per version, and the A/B interval's behaviour on simulated experiments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zenrec.errors import ConfigError
from zenrec.evaluate.online import compare_versions, online_report


def _lists(rows: list[tuple]) -> pd.DataFrame:
    cols = ["list_id", "user", "model_version", "kind", "fallback", "items", "catalogue", "latency_ms", "created"]
    return pd.DataFrame([(lid, u, v, "user", None, items, cat, lat, t) for lid, u, v, items, cat, lat, t in rows],
                        columns=cols)


def _events(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "item", "event", "list_id"])


def test_rates_coverage_latency_by_hand():
    lists = _lists([
        ("a1", "u1", "v1", ["i1", "i2"], 10, 1.0, 100.0),
        ("a2", "u1", "v1", ["i2", "i3"], 10, 3.0, 101.0),
        ("a3", "u2", "v1", ["i1", "i4"], 10, 5.0, 102.0),
        ("a4", "u3", "v1", ["i1", "i2"], 10, 7.0, 103.0),
        ("b1", "u4", "v2", ["i5", "i6"], 10, 2.0, 104.0),
        ("b2", "u5", "v2", ["i5", "i7"], 10, 4.0, 105.0),
    ])
    events = _events([
        ("u1", "i1", "click", "a1"),
        ("u1", "i1", "purchase", "a1"),  # same list: one clicked list, one converted list
        ("u2", "i4", "purchase", "a3"),
        ("u2", "i4", "view", "a4"),  # a view is not a click
        ("u4", "i5", "click", "b1"),
        ("u9", "i5", "click", "zz"),  # a list not logged
        ("u1", "i9", "click", None),  # not attributed
    ])
    rep = online_report(lists, events, draws=200)
    a, b = rep.rows
    assert (a.model_version, b.model_version) == ("v1", "v2")
    assert (a.lists, a.users, a.events_attributed) == (4, 3, 4)
    assert a.click_through == pytest.approx(2 / 4) and a.conversion == pytest.approx(2 / 4)
    assert a.coverage == pytest.approx(4 / 10)  # i1..i4
    assert a.latency_p50_ms == pytest.approx(4.0)
    assert a.latency_p99_ms == pytest.approx(np.percentile([1, 3, 5, 7], 99))
    assert (b.lists, b.users, b.click_through, b.conversion) == (2, 2, 0.5, 0.0)
    assert b.coverage == pytest.approx(3 / 10)
    assert rep.unmatched_events == 1
    ctr = next(c for c in rep.comparisons if c.metric == "click_through")
    assert (ctr.control, ctr.treatment) == ("v1", "v2")
    assert ctr.difference == pytest.approx(0.0) and ctr.ci_low <= 0 <= ctr.ci_high
    conv = next(c for c in rep.comparisons if c.metric == "conversion")
    assert conv.difference == pytest.approx(-0.5)


def test_buckets_split_rows_by_serving_time():
    lists = _lists([("a", "u1", "v1", ["i1"], 5, 1.0, 10.0), ("b", "u2", "v1", ["i2"], 5, 1.0, 70.0),
                    ("c", "u3", "v1", ["i2"], 5, 1.0, 75.0)])
    rep = online_report(lists, _events([("u2", "i2", "click", "b")]), bucket_seconds=60)
    assert [(r.window_start, r.lists, r.click_through) for r in rep.rows] == [(0.0, 1, 0.0), (60.0, 2, 0.5)]
    with pytest.raises(ConfigError, match="bucket_seconds"):
        online_report(lists, _events([]), bucket_seconds=0)


def _simulate(rng: np.random.Generator, p_a: float, p_b: float, users: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users split between versions, 1–5 lists each, each user with its own click propensity around p."""
    rows, ev = [], []
    for u in range(users):
        v, p = ("a", p_a) if u % 2 else ("b", p_b)
        pu = min(max(rng.normal(p, 0.1), 0.0), 1.0)  # lists of one user are correlated
        for j in range(int(rng.integers(1, 6))):
            lid = f"{u}-{j}"
            rows.append((lid, f"u{u}", v, ["x"], 1, 1.0, float(u)))
            if rng.random() < pu:
                ev.append((f"u{u}", "x", "click", lid))
    return _lists(rows), _events(ev)


def test_interval_covers_zero_in_aa_tests_and_detects_a_real_difference():
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(60):
        lists, events = _simulate(rng, 0.3, 0.3)
        c = compare_versions(_flags(lists, events), "a", "b", draws=400, seed=int(rng.integers(1 << 30)))
        covered += c.ci_low <= 0 <= c.ci_high
    assert covered >= 52  # nominal 95 % of 60 = 57; a list-level interval ignoring clustering covers less
    lists, events = _simulate(rng, 0.2, 0.5)
    c = compare_versions(_flags(lists, events), "a", "b", draws=400)
    assert c.significant and c.ci_low > 0.15 and c.difference == pytest.approx(c.treatment_value - c.control_value)


def _flags(lists: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    from zenrec.evaluate.online import CLICK_TYPES, CONVERSION_TYPES, _list_flags

    return _list_flags(lists, events, CLICK_TYPES, CONVERSION_TYPES)[0]


def test_compare_needs_both_versions():
    lists = _lists([("a", "u1", "v1", ["i1"], 5, 1.0, 10.0)])
    with pytest.raises(ConfigError, match="no served lists"):
        compare_versions(_flags(lists, _events([])), "v1", "v2")
    with pytest.raises(ConfigError, match="metric"):
        compare_versions(_flags(lists, _events([])), "v1", "v1", metric="ndcg")
    empty = online_report(lists.iloc[:0], _events([]))
    assert empty.rows == [] and empty.comparisons == []
