"""The out-of-core ingest gives what reading the whole file gives, in bounded memory.

``Dataset.from_file`` reads CSV/TSV/Parquet a chunk at a time (``zenrec.data.ingest``);
the reference is the whole-file path: ``read_table`` then ``Dataset.from_frame``.
Dirty rows, aliases, duplicates, strict mode and errors must come out the same,
whatever the chunk size and however pyarrow's blocks cut the file.
"""

from __future__ import annotations

import csv
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zenrec.data import CleaningConfig, ColumnMap, Dataset, read_table, readers, split_dataset
from zenrec.data.readers import record_lines
from zenrec.data.splits import _shuffled_by_user
from zenrec.data.synthetic_log import EVENT_TYPES, event_log_chunks, write_event_log
from zenrec.errors import ConfigError, DataError

COLS = ColumnMap(user="u", item="i", timestamp="t", event="e", value="v")
ALIASES = {"buy": "purchase", "basket": "cart"}


def _whole(path: Path, columns: ColumnMap, config: CleaningConfig) -> Dataset:
    """The reference: the whole file read into a DataFrame, then cleaned in one piece."""
    fmt = "parquet" if path.suffix == ".parquet" else "csv"
    df = read_table(path, fmt, columns=columns.required())
    lines = functools.partial(record_lines, path, fmt) if fmt == "csv" else None
    return Dataset.from_frame(df, columns, config, name=path.name.split(".")[0], source=str(path),
                              first_line=None if fmt == "parquet" else 2, lines=lines)


def _outcome(fn) -> object:
    try:
        return fn()
    except DataError as exc:
        # --strict fails at once, on the value as typed so far: a column that turns out to hold
        # decimals later shows its integers as 0, a whole-file read as 0.0
        msg = re.sub(r"got (-?\d+)\.0 \(", r"got \1 (", str(exc))
        return (type(exc).__name__, msg, exc.row, exc.column)


def _same(a: object, b: object) -> None:
    """Two outcomes agree: the same error, or datasets with equal arrays, vocabularies, report and splits."""
    if not isinstance(a, Dataset) or not isinstance(b, Dataset):
        assert a == b
        return
    for field in ("user", "item", "timestamp", "weight", "event"):
        x, y = getattr(a.interactions, field), getattr(b.interactions, field)
        assert x.dtype == y.dtype and np.array_equal(x, y), field
    assert a.interactions.event_names == b.interactions.event_names
    for vocab in ("users", "items"):
        x, y = getattr(a, vocab).all_ids, getattr(b, vocab).all_ids
        assert x.dtype.kind == y.dtype.kind and x.tolist() == y.tolist(), vocab
    assert a.report.to_dict() == b.report.to_dict()
    assert a.fingerprint == b.fingerprint
    for protocol in ("general", "sequential"):
        sa, sb = split_dataset(a, protocol), split_dataset(b, protocol)
        for part in ("train", "valid", "test"):
            assert np.array_equal(getattr(sa, part).item, getattr(sb, part).item), (protocol, part)
            assert np.array_equal(getattr(sa, part).user, getattr(sb, part).user), (protocol, part)


def _write_csv(path: Path, rows: list[tuple[str, ...]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["u", "i", "t", "e", "v"])
        w.writerows(rows)
    return path


# values of each column, dirty ones included: blank and spaced ids, a control character, times that are
# not times or out of range, dates, event names that need an alias or are unknown, values that are not numbers
USERS = ["1", "2", "3", "10", " 2 ", "", "u7", "007", "a\tb"]
INT_USERS = ["1", "2", "3", "10", "", "4"]
ITEMS = ["5", "6", "7", "x", "", " x"]
TIMES = ["100", "200", "200", "300", "", "soon", "-5", "1e300", "2024-01-01", "2024-01-01T10:00:00", "150.5"]
INT_TIMES = ["100", "200", "300", "", "400"]
EVENTS = ["view", "click", "buy", "Basket", "hover", "", "VIEW ", "purchase"]
VALUES = ["1", "2.5", "", "x", "5", "0"]


@st.composite
def logs(draw):
    ints = draw(st.booleans())  # integer columns (pyarrow types them) or text ones
    pool = st.tuples(st.sampled_from(INT_USERS if ints else USERS), st.sampled_from(ITEMS[:3] if ints else ITEMS),
                     st.sampled_from(INT_TIMES if ints else TIMES), st.sampled_from(EVENTS), st.sampled_from(VALUES))
    base = draw(st.lists(pool, min_size=1, max_size=25))
    # repeat some rows: duplicates
    picks = draw(st.lists(st.integers(0, len(base) - 1), max_size=10))
    rows = base + [base[k] for k in picks]
    order = draw(st.permutations(range(len(rows))))
    return [rows[k] for k in order]


@st.composite
def configs(draw):
    return CleaningConfig(
        event_aliases=ALIASES,
        max_unknown_event_share=draw(st.sampled_from([0.01, 0.5, 1.0])),
        strict=draw(st.booleans()),
        min_value=draw(st.sampled_from([None, 1.0])),
        rating_threshold=draw(st.sampled_from([None, None, 2.0])),
        value_as_weight=draw(st.booleans()),
        min_user_interactions=draw(st.integers(0, 2)),
        drop_duplicates=draw(st.booleans()),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=logs(), config=configs(), chunk=st.sampled_from([1, 3, 8]), block=st.sampled_from([32, 64, 4096]))
def test_chunked_ingest_equals_the_whole_file(tmp_path_factory, monkeypatch, rows, config, chunk, block):
    """Same arrays, ids, report, errors and splits, for chunks of 1 to 8 rows and pyarrow blocks of 32 bytes
    up (column types inferred from a few rows, then widened midway; rows longer than a block)."""
    path = _write_csv(tmp_path_factory.mktemp("log") / "log.csv", rows)
    whole = _outcome(lambda: _whole(path, COLS, config))
    monkeypatch.setattr(readers, "_STREAM_BLOCK", block)
    chunked = _outcome(lambda: Dataset.from_file(path, COLS, config, chunk_rows=chunk))
    _same(chunked, whole)


def test_chunked_ingest_of_parquet_equals_the_whole_file(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000
    user = pa.array(rng.integers(0, 80, n), mask=rng.random(n) < 0.01)
    table = pa.table({"u": user, "i": [f"p{k}" for k in rng.integers(0, 40, n)],
                      "t": rng.integers(0, 500, n), "e": rng.choice(["view", "click", "buy", "hover"], n, p=[.7, .2, .09, .01]),
                      "v": rng.random(n)})
    path = tmp_path / "log.parquet"
    pq.write_table(table, path, row_group_size=700)
    config = CleaningConfig(event_aliases=ALIASES, max_unknown_event_share=1.0, min_item_interactions=3)
    whole = _whole(path, COLS, config)
    assert whole.report.dropped["missing_user_id"] > 0 and whole.report.dropped["unknown_event"] > 0
    for chunk in (97, 999, 5000):
        _same(Dataset.from_file(path, COLS, config, chunk_rows=chunk), whole)
    assert whole.report.examples["missing_user_id"][0].startswith("row ")  # Parquet rows: positions


def test_a_column_that_changes_kind_after_the_first_blocks_is_read_again_as_text(tmp_path, monkeypatch):
    """Integer ids for many blocks, then text ids; integer times, then dates; many event names after few:
    the streaming reader starts over with the wider types and agrees with a whole-file read."""
    lines = ["u,i,t,e,v"] + [f"{k % 50},{k % 7},{1000 + k},{'view' if k % 2 else 'click'},{k % 5}" for k in range(3000)]
    lines += ["u-last,9,2024-05-01T10:00:00,purchase,2.5", "51,8,1e300,hover,x"]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    config = CleaningConfig(max_unknown_event_share=1.0)
    whole = _whole(path, COLS, config)
    assert not whole.users.is_integer and "u-last" in whole.users
    monkeypatch.setattr(readers, "_STREAM_BLOCK", 4096)
    _same(Dataset.from_file(path, COLS, config, chunk_rows=500), whole)


def test_strict_names_the_first_malformed_row_of_the_file_in_any_chunking(tmp_path):
    """--strict fails on the first malformed row in file order, at once (not after reading the rest)."""
    rows = [("1", "5", "100", "view", "1")] * 5 + [("2", "5", "later", "view", "1"), ("", "6", "200", "view", "1")]
    rows += [("3", "7", "300", "view", "1")] * 20
    path = _write_csv(tmp_path / "log.csv", rows)
    config = CleaningConfig(strict=True)
    for chunk in (1, 3, 100):
        with pytest.raises(DataError) as err:
            Dataset.from_file(path, COLS, config, chunk_rows=chunk)
        assert err.value.row == 7 and "malformed timestamp" in str(err.value) and "'later'" in str(err.value)
    # rows with no usable time so far do not fail yet: the whole log may have none (another error)
    only_bad = _write_csv(tmp_path / "bad.csv", [("1", "5", "soon", "view", "1"), ("2", "5", "later", "view", "1")])
    for chunk in (1, 5):
        with pytest.raises(DataError, match="no row has a usable timestamp.*'soon' \\(line 2\\)"):
            Dataset.from_file(only_bad, COLS, config, chunk_rows=chunk)
    late = _write_csv(tmp_path / "late.csv", [("1", "5", "soon", "view", "1"), ("2", "5", "100", "view", "1")])
    with pytest.raises(DataError, match="malformed timestamp.*'soon' \\(line 2\\)"):
        Dataset.from_file(late, COLS, config, chunk_rows=1)


def test_unknown_events_over_the_share_count_the_whole_file(tmp_path):
    """The 1 % rule is the share of the whole log: unknown rows spread over chunks add up."""
    rows = [("1", str(k), str(k), "view", "1") for k in range(300)]
    for k in range(0, 300, 60):
        rows[k] = ("1", str(k), str(k), "wishlist", "1")  # 5 of 300: 1.7 %
    path = _write_csv(tmp_path / "log.csv", rows)
    for chunk in (7, 1000):
        with pytest.raises(DataError, match=r"5 of 300 rows \(1.7%\).*'wishlist' \(5 rows\)"):
            Dataset.from_file(path, COLS, chunk_rows=chunk)
    ds = Dataset.from_file(path, COLS, CleaningConfig(max_unknown_event_share=1.0), chunk_rows=7)
    assert ds.report.dropped == {"unknown_event": 5}
    assert ds.report.examples["unknown_event"] == ["line 2", "line 62", "line 122"]


def test_record_lines_of_some_rows_match_the_full_scan(tmp_path, monkeypatch):
    """Lines of chosen rows, found by counting where a stretch has no quotes, CR or blank lines, and by a
    full scan elsewhere, agree with the full scan, for 7-byte to 16 MiB reads."""
    rng = np.random.default_rng(3)
    parts = ["h1,h2\n"]
    for k in range(400):
        kind = rng.integers(0, 6)
        parts.append({0: f"{k},a\n", 1: f'{k},"two\nlines"\n', 2: f"{k},b\r\n", 3: "\n", 4: f"{k},c\r", 5: f"{k},d\n"}[kind])
    path = tmp_path / "log.csv"
    path.write_text("".join(parts) + "9,last")
    full = record_lines(path, "csv")
    assert full is not None and len(full) == len(read_table(path, "csv"))
    rows = rng.permutation(len(full))[:50]
    for scan in (7, 64, 1 << 24):
        monkeypatch.setattr(readers, "_SCAN", scan)
        assert np.array_equal(record_lines(path, "csv", rows=rows), full[rows])
        assert record_lines(path, "csv", rows=[len(full)]) is None  # no such row


def test_the_user_shuffle_of_the_random_split_is_lexsort():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 400))
        user = rng.integers(0, 9, n)
        key = rng.integers(0, 4, n) / 4 if rng.random() < 0.5 else rng.random(n)  # with and without ties
        assert np.array_equal(_shuffled_by_user(user, key), np.lexsort((key, user)))


# ---------------------------------------------------------------- the synthetic log


def test_synthetic_log_has_sessions_power_laws_funnels_and_dirt():
    t = pa.concat_tables(event_log_chunks(60_000, chunk_rows=25_000, seed=2)).to_pandas()
    assert len(t) == 60_000
    ts = t["timestamp"].dropna().to_numpy()
    assert (np.diff(ts) >= 0).all()  # in time order, across chunks too
    assert set(t["event"]) == {*EVENT_TYPES, "hover"}
    assert (t["event"] == "view").mean() > 0.6
    assert t["user_id"].isna().sum() >= 1 and t["item_id"].isna().sum() >= 1 and t["timestamp"].isna().sum() >= 1
    assert t.duplicated().sum() >= 0.005 * 60_000
    items = t["item_id"].value_counts()
    assert items.iloc[: len(items) // 100].sum() > 0.1 * items.sum()  # the top 1 % of items: over 10 % of events
    # sessions: a user's consecutive events are mostly minutes apart in a year-long log
    by_user = t.dropna().sort_values(["user_id", "timestamp"], kind="stable")
    gaps = by_user.groupby("user_id")["timestamp"].diff().dropna()
    assert (gaps < 600).mean() > 0.6
    # a click, cart or purchase acts on the item its session viewed last
    acts = by_user[by_user["event"].isin(["click", "cart", "purchase"])]
    prev_item = by_user.groupby("user_id")["item_id"].shift()
    assert (acts["item_id"] == prev_item.loc[acts.index]).mean() > 0.8
    again = pa.concat_tables(event_log_chunks(60_000, chunk_rows=25_000, seed=2)).to_pandas()
    pd.testing.assert_frame_equal(t, again)  # the same arguments, the same log


def test_a_flatter_item_exponent_touches_more_of_the_catalogue():
    def distinct(exponent: float) -> tuple[int, float]:
        t = pa.concat_tables(event_log_chunks(50_000, n_items=50_000, item_exponent=exponent, seed=3)).to_pandas()
        counts = t["item_id"].value_counts()
        return len(counts), counts.iloc[: len(counts) // 100].sum() / counts.sum()

    (steep, steep_top), (flat, flat_top) = distinct(1.0), distinct(0.5)
    # expected distinct items of about 35k views (1 - exp(-draws * p) summed): 12.1k at 1.0, 22.4k at 0.5
    assert steep < 15_000 < 19_000 < flat
    assert flat_top < steep_top  # the head's share of events shrinks
    with pytest.raises(ConfigError, match="'item_exponent' parameter .* between 0 and 4; got -1"):
        next(event_log_chunks(100, item_exponent=-1))


def test_synthetic_log_as_csv_and_parquet_ingests_the_same(tmp_path):
    a = write_event_log(tmp_path / "log.csv", 20_000, chunk_rows=6_000, seed=1)
    b = write_event_log(tmp_path / "log.parquet", 20_000, chunk_rows=6_000, seed=1)
    assert a == b == 20_000
    cm = ColumnMap(timestamp="timestamp", event="event")
    from_csv = Dataset.from_file(tmp_path / "log.csv", cm)
    from_parquet = Dataset.from_file(tmp_path / "log.parquet", cm)
    assert from_csv.report.dropped == from_parquet.report.dropped
    assert {"duplicate", "missing_user_id", "missing_item_id", "missing_timestamp", "unknown_event"} <= set(
        from_csv.report.dropped)
    assert from_csv.fingerprint == from_parquet.fingerprint


# ---------------------------------------------------------------- memory

# the peak is the process's own VmHWM: ru_maxrss would start at the parent's RSS when it forked (Linux keeps
# it across exec), and pytest's RSS after writing the log is larger than what is measured here
_MEASURE = """
import json, sys
import psutil
from zenrec.data import ColumnMap, Dataset
def hwm():
    return next(int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM:"))
cm = ColumnMap(timestamp="timestamp", event="event")
Dataset.from_file(sys.argv[2], cm, chunk_rows=int(sys.argv[3]))  # warm up: imports, pools, the reader's buffers
before = psutil.Process().memory_info().rss
ds = Dataset.from_file(sys.argv[1], cm, chunk_rows=int(sys.argv[3]))
print(json.dumps({"rows": ds.report.rows_in, "kept": len(ds.interactions), "growth": hwm() - before}))
"""


@pytest.mark.slow
def test_two_million_events_ingest_in_less_memory_than_python_objects_per_row_would_take(tmp_path):
    """Peak RSS grows by under 120 bytes per event ingested.  One Python object per row costs more
    than that alone (a 4-tuple is 72 bytes and its three boxed integers 28 each: 156 bytes), before
    the arrays every model needs; the out-of-core path keeps 21 bytes per event plus its chunk.
    Measured in a fresh process, after a small ingest has warmed up imports and buffers."""
    log, small = tmp_path / "log.csv", tmp_path / "small.csv"
    write_event_log(log, 2_000_000, seed=3)
    write_event_log(small, 20_000, seed=4)
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(log), str(small), "250000"], capture_output=True,
                         text=True, timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rows"] == 2_000_000 and got["kept"] > 1_950_000
    assert got["growth"] / got["rows"] < 120, got
    print(f"peak RSS growth: {got['growth'] / got['rows']:.0f} bytes per event")


def test_dataset_loads_back_writable_arrays_without_a_dataframe(tmp_path):
    path = tmp_path / "log.csv"
    write_event_log(path, 5_000, seed=7)
    ds = Dataset.from_file(path, ColumnMap(timestamp="timestamp", event="event"), chunk_rows=1_000)
    ds.save(tmp_path / "d")
    back = Dataset.load(tmp_path / "d")
    _same(back, ds)
    for field in ("user", "item", "timestamp", "weight", "event"):
        assert getattr(back.interactions, field).flags.writeable


def test_ingest_cli_reads_in_chunks_and_reports_like_before(tmp_path):
    from typer.testing import CliRunner

    from zenrec.cli import app

    path = tmp_path / "log.csv"
    write_event_log(path, 3_000, seed=5)
    base = ["ingest", str(path), "--time", "timestamp", "--event", "event"]
    r = CliRunner().invoke(app, [*base, "--chunk-rows", "400", "-o", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    _same(Dataset.load(tmp_path / "d"), _whole(path, ColumnMap(timestamp="timestamp", event="event"), CleaningConfig()))
    assert "missing_user_id" in r.output and "kept" in r.output
    r = CliRunner().invoke(app, [*base, "--chunk-rows", "0", "-o", str(tmp_path / "e")])
    assert r.exit_code == 2 and "--chunk-rows must be a positive number of rows; got 0" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "e").exists()
