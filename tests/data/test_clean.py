"""Cleaning: every dropped row is counted by reason; what survives is right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zenrec.data import CleaningConfig, ColumnMap, Dataset, clean_events
from zenrec.errors import EmptyDataError

CM = ColumnMap(user="user", item="item", timestamp="ts", event="event", value="value")


def _frame(rows):
    return pd.DataFrame(rows, columns=["user", "item", "ts", "event", "value"])


def test_each_reason_is_counted_with_its_line():
    rows = [
        ("a", "x", 1, "view", 1.0),       # line 2: kept
        ("a", "x", 1, "view", 1.0),       # line 3: duplicate of line 2
        (None, "x", 2, "view", 1.0),      # line 4: missing user
        ("b", "  ", 3, "view", 1.0),      # line 5: missing item (blank)
        ("b", "y", None, "view", 1.0),    # line 6: missing timestamp
        ("b", "y", "soon", "view", 1.0),  # line 7: malformed timestamp
        ("b", "y", 4, "hover", 1.0),      # line 8: unknown event
        ("b", "y", 5, "click", "lots"),   # line 9: malformed value
        ("b", "y", 6, "click", 99.0),     # line 10: out of range
        ("b", "z", 7, "cart", 2.0),       # line 11: kept
    ]
    ev = clean_events(_frame(rows), CM, CleaningConfig(min_value=0, max_value=5, max_unknown_event_share=1.0),
                      source="log.csv", first_line=2)
    r = ev.report
    assert r.rows_in == 10 and r.rows_out == 2
    assert r.dropped == {
        "duplicate": 1,
        "missing_user_id": 1,
        "missing_item_id": 1,
        "missing_timestamp": 1,
        "malformed_timestamp": 1,
        "unknown_event": 1,
        "malformed_value": 1,
        "out_of_range_value": 1,
    }
    assert r.examples["duplicate"] == ["line 3"]
    assert r.examples["missing_user_id"] == ["line 4"]
    assert r.examples["malformed_timestamp"] == ["line 7"]
    assert r.examples["out_of_range_value"] == ["line 10"]
    assert sum(r.dropped.values()) + r.rows_out == r.rows_in
    assert r.to_dict()["dropped"] == r.dropped


def test_rating_threshold_keeps_only_high_ratings():
    df = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 2], "rating": [5, 3, 4, 1]})
    ds = Dataset.from_frame(df, ColumnMap(user="user", item="item", value="rating"), CleaningConfig(rating_threshold=4))
    assert ds.report.dropped == {"below_rating_threshold": 2}
    kept = set(zip(ds.users.ids(ds.interactions.user).tolist(), ds.items.ids(ds.interactions.item).tolist(), strict=False))
    assert kept == {(1, 1), (2, 1)}


def test_event_weights_are_ordered_view_click_cart_purchase():
    df = pd.DataFrame({"user": [1, 1, 1, 1], "item": [1, 2, 3, 4], "ts": [1, 2, 3, 4],
                       "event": [" View", "CLICK", "cart", "purchase"]})
    ds = Dataset.from_frame(df, ColumnMap(user="user", item="item", timestamp="ts", event="event"))
    inter = ds.interactions
    w = dict(zip(ds.items.ids(inter.item).tolist(), inter.weight.tolist(), strict=False))
    assert w[1] < w[2] < w[3] < w[4]
    assert [inter.event_names[e] for e in inter.event] == ["view", "click", "cart", "purchase"]
    # weights reach the matrix models train on
    assert inter.csr[0].toarray().ravel().tolist() == [w[1], w[2], w[3], w[4]]


def test_value_as_weight_multiplies():
    df = pd.DataFrame({"user": [1, 1], "item": [1, 2], "event": ["click", "view"], "qty": [3, 2]})
    ds = Dataset.from_frame(df, ColumnMap(user="user", item="item", event="event", value="qty"),
                            CleaningConfig(value_as_weight=True, event_weights={"click": 2.0, "view": 1.0}))
    assert sorted(ds.interactions.weight.tolist()) == [2.0, 6.0]


def test_float_ids_that_are_whole_numbers_stay_integers_others_are_malformed():
    df = pd.DataFrame({"user": [1.0, 2.0, 2.5, np.nan], "item": [1, 1, 1, 1]})
    ds = Dataset.from_frame(df, ColumnMap(user="user", item="item"))
    assert ds.users.is_integer and sorted(ds.users.all_ids.tolist()) == [1, 2]
    assert ds.report.dropped == {"malformed_user_id": 1, "missing_user_id": 1}


def test_everything_dropped_is_an_empty_data_error():
    df = pd.DataFrame({"user": [1], "item": [1], "event": ["hover"]})
    with pytest.raises(EmptyDataError, match="every row was dropped.*unknown_event"):
        Dataset.from_frame(df, ColumnMap(user="user", item="item", event="event"),
                           CleaningConfig(max_unknown_event_share=1.0))


def _is_k_core(u, i, k_u, k_i):
    return (np.bincount(u)[u] >= k_u).all() and (np.bincount(i)[i] >= k_i).all()


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=150),
    k_u=st.integers(0, 4),
    k_i=st.integers(0, 4),
)
def test_k_core_result_is_a_k_core_and_maximal(pairs, k_u, k_i):
    df = pd.DataFrame(pairs, columns=["user", "item"])
    df["ts"] = np.arange(len(df))  # distinct times: no duplicates
    cfg = CleaningConfig(min_user_interactions=k_u, min_item_interactions=k_i)
    # the maximal k-core, by the slow obvious fixpoint
    alive = np.ones(len(df), bool)
    u, i = df["user"].to_numpy(), df["item"].to_numpy()
    while True:
        cu = np.bincount(u[alive], minlength=13)
        ci = np.bincount(i[alive], minlength=13)
        bad = alive & ((cu[u] < k_u) | (ci[i] < k_i))
        if not bad.any():
            break
        alive &= ~bad
    if not alive.any():
        with pytest.raises(EmptyDataError):
            clean_events(df, ColumnMap(user="user", item="item", timestamp="ts"), cfg)
        return
    ev = clean_events(df, ColumnMap(user="user", item="item", timestamp="ts"), cfg)
    assert _is_k_core(ev.user, ev.item, k_u, k_i)
    assert ev.report.rows_out == alive.sum()
    assert ev.report.dropped.get("k_core", 0) == (~alive).sum()
    got = sorted(zip(ev.users.ids(ev.user).tolist(), ev.items.ids(ev.item).tolist(), ev.timestamp.tolist(), strict=False))
    assert got == sorted(zip(u[alive].tolist(), i[alive].tolist(), df["ts"].to_numpy()[alive].tolist(), strict=False))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 3),
                               st.sampled_from(["view", "click"])), min_size=1, max_size=60))
def test_duplicates_match_pandas_and_output_is_sorted(rows):
    df = pd.DataFrame(rows, columns=["user", "item", "ts", "event"])
    ev = clean_events(df, ColumnMap(user="user", item="item", timestamp="ts", event="event"))
    expected = df.drop_duplicates()
    assert ev.report.dropped.get("duplicate", 0) == len(df) - len(expected)
    got = sorted(zip(ev.users.ids(ev.user).tolist(), ev.items.ids(ev.item).tolist(), ev.timestamp.tolist(),
                     [ev.event_names[e] for e in ev.event], strict=False))
    assert got == sorted(map(tuple, expected.itertuples(index=False)))
    # sorted by (user index, time), ties in input order
    order = np.lexsort((ev.timestamp, ev.user))
    assert np.array_equal(order, np.arange(len(order)))


def test_time_ordered_input_takes_counting_sort_and_matches_lexsort():
    rng = np.random.default_rng(1)
    n = 5000
    df = pd.DataFrame({"user": rng.integers(0, 300, n), "item": rng.integers(0, 50, n),
                       "ts": np.sort(rng.integers(0, 1000, n))})
    ev = clean_events(df, ColumnMap(user="user", item="item", timestamp="ts"), CleaningConfig(drop_duplicates=False))
    raw_u = ev.users.ids(ev.user)
    order = np.lexsort((np.arange(n), df["ts"].to_numpy(), pd.factorize(df["user"])[0]))
    np.testing.assert_array_equal(raw_u, df["user"].to_numpy()[order])
    np.testing.assert_array_equal(ev.items.ids(ev.item), df["item"].to_numpy()[order])
