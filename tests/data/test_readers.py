"""Every supported input layout reads into the same events."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zenrec.data import ColumnMap, Dataset, read_movielens, read_recbole, read_table

ROWS = [("u1", "i1", 100, "view"), ("u1", "i2", 200, "click"), ("u2", "i1", 150, "purchase")]
CM = ColumnMap(user="user_id", item="item_id", timestamp="timestamp", event="event")


def _events(ds: Dataset) -> set[tuple]:
    inter = ds.interactions
    names = inter.event_names
    return {
        (str(u), str(i), int(t), names[e])
        for u, i, t, e in zip(ds.users.ids(inter.user), ds.items.ids(inter.item), inter.timestamp, inter.event, strict=False)
    }


def _delimited(sep: str) -> str:
    return f"user_id{sep}item_id{sep}timestamp{sep}event\n" + "".join(
        f"{u}{sep}{i}{sep}{t}{sep}{e}\n" for u, i, t, e in ROWS
    )


@pytest.mark.parametrize("name,sep", [("log.csv", ","), ("log.tsv", "\t"), ("log.csv.gz", ","), ("log.tsv.gz", "\t")])
def test_delimited(write, name, sep):
    ds = Dataset.from_file(write(name, _delimited(sep)), CM)
    assert _events(ds) == set(ROWS)
    assert ds.name == "log"


@pytest.mark.parametrize("sep", [";", "|"])
@pytest.mark.parametrize("chunk_rows", [None, 1])
def test_other_delimiters_read_the_same_events_in_memory_and_streamed(write, sep, chunk_rows):
    ds = Dataset.from_file(write("log.csv", _delimited(sep)), CM, delimiter=sep, chunk_rows=chunk_rows)
    assert _events(ds) == set(ROWS)
    assert read_table(write("log2.csv", _delimited(sep)), delimiter=sep).shape == (3, 4)


def test_an_item_table_with_semicolons_attaches_each_title_to_its_item(write):
    ds = Dataset.from_file(write("log.csv", _delimited(";")), CM, delimiter=";")
    items = write("items.csv", 'item_id;title\ni2;"Zwei; das Buch"\ni1;Eins\n')
    ds = ds.with_item_file(items, "item_id", delimiter=";")
    titles = dict(zip(map(str, ds.items.all_ids), ds.item_table["title"], strict=True))
    assert titles == {"i1": "Eins", "i2": "Zwei; das Buch"}


def test_parquet(tmp_path):
    path = tmp_path / "log.parquet"
    cols = list(zip(*ROWS, strict=False))
    pq.write_table(pa.table({"user_id": cols[0], "item_id": cols[1], "timestamp": cols[2], "event": cols[3],
                             "extra": [1.0, 2.0, 3.0]}), path)
    assert _events(Dataset.from_file(path, CM)) == set(ROWS)
    # only the mapped columns are read
    assert list(read_table(path, columns=CM.required()).columns) == ["user_id", "item_id", "timestamp", "event"]


def test_jsonl(write):
    text = "".join(json.dumps(dict(zip(["user_id", "item_id", "timestamp", "event"], r, strict=False))) + "\n" for r in ROWS)
    assert _events(Dataset.from_file(write("log.jsonl", text), CM)) == set(ROWS)


def test_dataframe_numpy_and_object_columns():
    df = pd.DataFrame(ROWS, columns=["user_id", "item_id", "timestamp", "event"])
    assert _events(Dataset.from_frame(df, CM)) == set(ROWS)
    # a mixed object column (ints and strings) is compared as text
    df2 = pd.DataFrame({"user_id": pd.Series([1, "1", "x"], dtype=object), "item_id": [1, 2, 3]})
    ds = Dataset.from_frame(df2, ColumnMap())
    assert sorted(ds.users.all_ids.tolist()) == ["1", "x"]
    assert ds.report.dropped == {}  # (1, item 1) and ("1", item 2) are distinct events of user "1"


def test_movielens_udata_tab_no_header(write):
    df = read_movielens(write("u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"))
    assert list(df.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert df["user_id"].tolist() == [196, 186] and df["timestamp"].tolist() == [881250949, 891717742]


@pytest.mark.parametrize("name", ["ratings.dat", "ratings.dat.gz"])
def test_movielens_dat_double_colon(write, name):
    df = read_movielens(write(name, "1::1193::5::978300760\n1::661::3::978302109\n"))
    assert df["item_id"].tolist() == [1193, 661] and df["rating"].tolist() == [5, 3]
    ds = Dataset.from_file(write(name, "1::1193::5::978300760\n1::661::3::978302109\n"),
                           ColumnMap(timestamp="timestamp", value="rating"))
    assert len(ds.interactions) == 2


def test_movielens_ratings_csv(write):
    df = read_movielens(write("ratings.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n"))
    assert df["user_id"].tolist() == [1] and df["item_id"].tolist() == [31] and df["rating"].tolist() == [2.5]


def test_movielens_latest_small_real_file(shared):
    df = read_movielens(shared / "ml-latest-small" / "ratings.csv")
    assert len(df) == 100_836
    assert df["user_id"].nunique() == 610


def test_recbole_atomic_files(write):
    path = write("x.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t007\t4\t10\n8\t9\t5\t11\n")
    df = read_recbole(path)
    assert list(df.columns) == ["user_id", "item_id", "rating", "timestamp"]
    # tokens can be kept as text so that leading zeros survive
    assert read_recbole(path, tokens_as_text=True)["item_id"].tolist() == ["007", "9"]
    ds = Dataset.from_file(path, ColumnMap(timestamp="timestamp", value="rating"))
    assert len(ds.interactions) == 2


def test_recbole_real_ml100k(shared):
    df = read_recbole(shared / "ml-100k" / "ml-100k.inter")
    assert len(df) == 100_000 and list(df.columns) == ["user_id", "item_id", "rating", "timestamp"]


def test_timestamp_kinds_agree():
    secs = [1704067200, 1704153600]
    expect = np.array(secs, dtype=np.int64)
    frames = {
        "int": secs,
        "float": [float(s) for s in secs],
        "text": [str(s) for s in secs],
        "iso": ["2024-01-01T00:00:00Z", "2024-01-02"],
        "datetime_ns": pd.to_datetime(secs, unit="s"),
        "datetime_s": pd.to_datetime(secs, unit="s").as_unit("s"),
        "arrow_ms": pd.Series(pd.to_datetime(secs, unit="s")).astype("timestamp[ms][pyarrow]"),
    }
    for kind, ts in frames.items():
        df = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "timestamp": ts})
        got = Dataset.from_frame(df, ColumnMap(timestamp="timestamp")).interactions.timestamp
        np.testing.assert_array_equal(np.sort(got), expect, err_msg=kind)
