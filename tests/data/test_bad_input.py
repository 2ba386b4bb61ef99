"""Bad input: each case raises DataError/EmptyDataError naming file, line/row, column and what was expected."""

from __future__ import annotations

import pandas as pd
import pytest

from zenrec.data import CleaningConfig, ColumnMap, Dataset, read_table
from zenrec.errors import DataError, EmptyDataError

CM = ColumnMap(user="user_id", item="item_id", timestamp="timestamp")


def test_missing_column(write):
    path = write("log.csv", "user,item_id,timestamp\n1,2,3\n")
    with pytest.raises(DataError) as ei:
        Dataset.from_file(path, CM)
    msg = str(ei.value)
    assert str(path) in msg and "'user_id'" in msg and "['user', 'item_id', 'timestamp']" in msg
    assert ei.value.column == "user_id" and ei.value.source == str(path)


def test_non_numeric_timestamp_strict_names_the_line(write):
    path = write("log.csv", "user_id,item_id,timestamp\n1,2,100\n1,3,abc\n2,3,300\n")
    with pytest.raises(DataError) as ei:
        Dataset.from_file(path, CM, CleaningConfig(strict=True))
    msg = str(ei.value)
    assert str(path) in msg and "line 3" in msg and "'timestamp'" in msg and "'abc'" in msg
    assert "expected epoch seconds" in msg
    assert ei.value.row == 3 and ei.value.column == "timestamp"


def test_non_numeric_timestamp_lenient_is_dropped_and_reported(write):
    path = write("log.csv", "user_id,item_id,timestamp\n1,2,100\n1,3,abc\n2,3,300\n")
    ds = Dataset.from_file(path, CM)
    assert ds.report.dropped == {"malformed_timestamp": 1}
    assert ds.report.examples["malformed_timestamp"] == ["line 3"]


def test_no_timestamp_parses_raises_without_strict(write):
    path = write("log.csv", "user_id,item_id,timestamp\n1,2,yesterday\n1,3,today\n")
    with pytest.raises(DataError) as ei:
        Dataset.from_file(path, CM)
    msg = str(ei.value)
    assert str(path) in msg and "'timestamp'" in msg and "no row has a usable timestamp" in msg
    assert "'yesterday'" in msg and "line 2" in msg and "epoch seconds or a date" in msg
    assert type(ei.value) is DataError  # a mistake in the data, not an empty input


def test_unparsable_date_string(write):
    path = write("log.csv", "user_id,item_id,timestamp\n1,2,2024-01-31\n1,3,2024-13-45\n")
    with pytest.raises(DataError) as ei:
        Dataset.from_file(path, CM, CleaningConfig(strict=True))
    msg = str(ei.value)
    assert str(path) in msg and "line 3" in msg and "'2024-13-45'" in msg and "ISO date" in msg
    assert ei.value.column == "timestamp"
    # lenient: the good date is kept with its epoch seconds
    ds = Dataset.from_file(path, CM)
    assert ds.interactions.timestamp.tolist() == [1706659200]
    assert ds.report.dropped == {"malformed_timestamp": 1}


def test_empty_file(write):
    path = write("log.csv", b"")
    with pytest.raises(EmptyDataError) as ei:
        Dataset.from_file(path, CM)
    assert str(path) in str(ei.value) and "empty" in str(ei.value)


def test_header_only_file(write):
    path = write("log.csv", "user_id,item_id,timestamp\n")
    with pytest.raises(EmptyDataError) as ei:
        Dataset.from_file(path, CM)
    msg = str(ei.value)
    assert str(path) in msg and "header but no rows" in msg and "at least one data row" in msg


def test_duplicate_header(write):
    path = write("log.csv", "user_id,item_id,user_id\n1,2,3\n")
    with pytest.raises(DataError) as ei:
        read_table(path)
    msg = str(ei.value)
    assert str(path) in msg and "row 1" in msg and "duplicate column name 'user_id'" in msg and "position 3" in msg


def test_duplicate_header_gzip(write):
    path = write("log.tsv.gz", "a\tb\ta\n1\t2\t3\n")
    with pytest.raises(DataError, match=r"duplicate column name 'a'"):
        read_table(path)


def test_ragged_line_names_its_line(write):
    path = write("log.csv", "user_id,item_id,timestamp\n1,2,3\n4,5,6\n7,8\n")
    with pytest.raises(DataError) as ei:
        read_table(path)
    msg = str(ei.value)
    assert str(path) in msg and "row 4" in msg and "expected 3 fields, got 2" in msg
    assert ei.value.row == 4


def test_missing_user_in_strict_mode_names_line_and_column(write):
    path = write("log.csv", "user_id,item_id,timestamp\n1,2,3\n,5,6\n")
    with pytest.raises(DataError) as ei:
        Dataset.from_file(path, CM, CleaningConfig(strict=True))
    assert "line 3" in str(ei.value) and "'user_id'" in str(ei.value) and "expected a user id" in str(ei.value)


def test_dataframe_rows_are_named_by_index_label():
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "timestamp": [1, "later"]}, index=[10, 20])
    with pytest.raises(DataError, match=r"row 20"):
        Dataset.from_frame(df, CM, CleaningConfig(strict=True))


def test_unknown_format(write):
    with pytest.raises(DataError, match="cannot tell the file format"):
        read_table(write("log.xlsx", "x"))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "nope.csv")


def test_times_outside_1970_to_9999_are_malformed_in_every_type():
    """Never wrapped to INT64_MIN, never a far-future time read as the earliest; the event store's range."""
    import numpy as np
    import pyarrow as pa

    from zenrec.data.schema import TIMESTAMP_MAX

    columns = {
        "float": [100.0, -1e300, 1e300, 1e23, float("inf")],
        "int": [100, -1, TIMESTAMP_MAX + 1, -(2**63), 2**63 - 1],
        "uint64": pd.array([100, 2**63 + 5, 2**64 - 1, TIMESTAMP_MAX + 1, 7], dtype="uint64[pyarrow]"),
        "text": ["100", "-1e300", "1e300", "99999999999999999999", "-5"],
        "date32": pd.Series(pa.array([0, 3_000_000, -1, 2_932_897, 5], pa.date32()), dtype=pd.ArrowDtype(pa.date32())),
        "timestamp_ns": pd.to_datetime([100, -1, -(10**9), 10, 5], unit="s"),
    }
    for kind, ts in columns.items():
        df = pd.DataFrame({"user_id": [1, 1, 1, 1, 2], "item_id": [1, 2, 3, 4, 5], "timestamp": ts})
        ds = Dataset.from_frame(df, CM)
        got = ds.interactions.timestamp
        assert ((got >= 0) & (got <= TIMESTAMP_MAX)).all(), (kind, got)
        bad = {"float": 4, "int": 4, "uint64": 3, "text": 4, "date32": 3, "timestamp_ns": 2}[kind]
        assert ds.report.dropped == {"malformed_timestamp": bad}, (kind, ds.report.dropped)
        assert np.isin(got, [0, 100, 5 * 86400, 5, 7, 10]).all(), (kind, got)
