"""Item tables with declared feature columns: checks that name file, line and column; cold items; storage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from zenrec.data import ColumnMap, Dataset, ItemColumns
from zenrec.errors import ArtifactError, ConfigError, DataError, EmptyDataError

CM = ColumnMap(user="user_id", item="item_id", timestamp="ts")
LOG = "user_id,item_id,ts\nu1,a,1\nu1,b,2\nu2,b,3\nu2,c,4\n"
FEATS = ItemColumns(text=("title",), categorical=("brand",), multi_hot={"tags": "|"}, numeric=("price",))
ITEMS = (
    "item_id,title,brand,tags,price\n"
    "a,Red rocket,Acme,space|toy,10\n"
    "b,Blue moon,Acme,space,\n"
    "c,Love letter,Zeta,romance|paper,3.5\n"
    "d,Moon base,Acme,space|toy,12\n"  # no events: a cold item
)


@pytest.fixture
def log(write):
    return Dataset.from_file(write("log.csv", LOG), CM)


def _error(exc_info) -> str:
    return str(exc_info.value)


def test_cold_items_join_the_vocabulary_after_the_logged_ones(log, write):
    events = log.interactions
    ds = log.with_item_file(write("items.csv", ITEMS), "item_id", FEATS)
    assert ds.items.all_ids.tolist() == ["a", "b", "c", "d"]
    assert ds.interactions.n_items == 4 and ds.interactions.item_counts().tolist() == [1, 2, 1, 0]
    np.testing.assert_array_equal(ds.interactions.item, events.item)  # the events keep their codes
    t = ds.item_table
    assert len(t) == 4 and t["title"].tolist() == ["Red rocket", "Blue moon", "Love letter", "Moon base"]
    assert t["price"].dtype == np.float64 and np.isnan(t["price"][1]) and t["price"][3] == 12.0
    assert t["tags"][0] == "space|toy" and ds.item_columns == FEATS


def test_without_cold_items_the_table_only_describes_logged_items(log, write):
    ds = log.with_item_file(write("items.csv", ITEMS), "item_id", FEATS, cold_items=False)
    assert len(ds.items) == 3 and len(ds.item_table) == 3


def test_integer_ids_of_the_log_and_the_table_match(write):
    ds = Dataset.from_file(write("log.csv", "user_id,item_id,ts\n1,10,1\n2,20,2\n"), CM)
    ds.with_item_file(write("items.csv", "item_id,brand\n20,x\n10,y\n30,z\n"), "item_id", ItemColumns(categorical=("brand",)))
    assert ds.items.is_integer and ds.items.all_ids.tolist() == [10, 20, 30]
    assert ds.item_table["brand"].tolist() == ["y", "x", "z"]
    # a categorical column of whole numbers reads as text without a ".0"
    ds2 = Dataset.from_file(write("log2.csv", "user_id,item_id,ts\n1,10,1\n"), CM)
    ds2.with_item_file(write("items2.csv", "item_id,shelf\n10,3\n11,\n"), "item_id", ItemColumns(categorical=("shelf",)))
    assert ds2.item_table["shelf"][0] == "3" and pd.isna(ds2.item_table["shelf"][1])


@pytest.mark.parametrize(
    ("items", "columns", "needles", "line", "column"),
    [
        ("item_id,title\na,x\n", ItemColumns(text=("title", "description")),
         ["no declared column 'description'", "['item_id', 'title']"], None, "description"),
        ("sku,title\na,x\n", FEATS, ["no id column 'item_id'", "--item-key"], None, "item_id"),
        ("item_id,price\na,10\nb,cheap\n", ItemColumns(numeric=("price",)),
         ["expected a number; got 'cheap'", "line 3"], 3, "price"),
        ("item_id,price\na,10\nb,inf\n", ItemColumns(numeric=("price",)), ["expected a number", "line 3"], 3, "price"),
        ("item_id,title\na,x\nb,y\na,z\n", ItemColumns(text=("title",)),
         ["duplicate item id 'a' (lines 2 and 4)", "one row per item"], 4, "item_id"),
        ("item_id,title\na,x\n,y\n", ItemColumns(text=("title",)), ["no item id (line 3)"], 3, "item_id"),
        ("item_id,title\nzz,x\nyy,y\n", ItemColumns(text=("title",)),
         ["none of the 2 item ids of the item table is an item of the log", "check --item-key"], None, "item_id"),
        # a title spanning two lines: the bad price is named by its own line, not its record number
        ('item_id,title,price\na,"two\nlines",1\nb,x,?\n', ItemColumns(text=("title",), numeric=("price",)),
         ["got '?'", "line 4"], 4, "price"),
    ],
    ids=["absent-column", "absent-key", "not-a-number", "infinite", "duplicate-key", "missing-key", "no-overlap",
         "multiline-value"],
)
def test_bad_item_tables_name_file_line_and_column(log, write, items, columns, needles, line, column):
    path = write("items.csv", items)
    with pytest.raises(DataError) as ei:
        log.with_item_file(path, "item_id", columns)
    msg = _error(ei)
    assert msg.startswith(str(path)), msg
    for n in needles:
        assert n in msg, msg
    assert ei.value.row == line and ei.value.column == column
    assert len(log.items) == 3 and log.item_table is None, "a failed attach leaves the dataset as it was"


def test_an_empty_item_table_is_refused(log, write):
    with pytest.raises(EmptyDataError, match="items.csv: the file has a header but no rows"):
        log.with_item_file(write("items.csv", "item_id,title\n"), "item_id", ItemColumns(text=("title",)))
    with pytest.raises(EmptyDataError, match="^shop: the item table has no rows"):
        log.with_item_table(pd.DataFrame({"item_id": [], "title": []}), "item_id", source="shop")


def test_an_integer_log_refuses_a_cold_id_that_is_not_an_integer(write):
    ds = Dataset.from_file(write("log.csv", "user_id,item_id,ts\n1,10,1\n"), CM)
    with pytest.raises(DataError, match=r"row 3.*item id 'x1' is not an integer, as the log's item ids are"):
        ds.with_item_file(write("items.csv", "item_id,title\n10,a\nx1,b\n"), "item_id", ItemColumns(text=("title",)))


def test_parquet_rows_are_named_by_position(log, tmp_path):
    path = tmp_path / "items.parquet"
    pd.DataFrame({"item_id": ["a", "b"], "price": ["1", "lots"]}).to_parquet(path)
    with pytest.raises(DataError) as ei:
        log.with_item_file(path, "item_id", ItemColumns(numeric=("price",)))
    assert "row 1" in _error(ei) and "got 'lots'" in _error(ei) and ei.value.row == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ItemColumns(text=("title",), categorical=("title",)), "'title' is declared twice (text and categorical)"),
        (lambda: ItemColumns(multi_hot={"tags": ""}), "separator of multi-hot item column 'tags' must not be empty"),
    ],
)
def test_declarations_are_checked(make, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_the_id_column_cannot_be_a_feature(log, write):
    with pytest.raises(ConfigError, match="'item_id' is the id column"):
        log.with_item_file(write("items.csv", ITEMS), "item_id", ItemColumns(categorical=("item_id",)))


def test_declared_features_round_trip_and_old_datasets_still_load(log, write, tmp_path):
    ds = log.with_item_file(write("items.csv", ITEMS), "item_id", FEATS)
    ds.save(tmp_path / "ds")
    back = Dataset.load(tmp_path / "ds")
    assert back.item_columns == FEATS and back.items == ds.items and back.interactions.n_items == 4
    pd.testing.assert_frame_equal(back.item_table, ds.item_table, check_dtype=False)
    assert back.item_table["price"].dtype == np.float64
    # a dataset written before item features: no 'item_features' in its manifest
    manifest = tmp_path / "ds" / "manifest.json"
    m = json.loads(manifest.read_text())
    del m["item_features"]
    manifest.write_text(json.dumps(m))
    old = Dataset.load(tmp_path / "ds")
    assert old.item_columns is None and old.item_table is not None and len(old.items) == 4


def test_a_plain_table_stores_no_declaration(log, write, tmp_path):
    log.with_item_table(pd.DataFrame({"item_id": ["a", "zz"], "title": ["A", "Z"]}), "item_id")
    log.save(tmp_path / "ds")
    assert "item_features" not in json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert Dataset.load(tmp_path / "ds").item_columns is None and len(log.items) == 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(item_features={"text": "title"}), "corrupted 'item_features'"),
        (lambda m: m.update(item_features={"colour": ["x"]}), "corrupted 'item_features'"),
        (lambda m: m["item_features"].update(numeric=["weight"]), "lacks the declared feature column 'weight'"),
    ],
)
def test_a_corrupted_declaration_is_an_artifact_error(log, write, tmp_path, edit, message):
    log.with_item_file(write("items.csv", ITEMS), "item_id", FEATS).save(tmp_path / "ds")
    manifest = tmp_path / "ds" / "manifest.json"
    m = json.loads(manifest.read_text())
    edit(m)
    manifest.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=message):
        Dataset.load(tmp_path / "ds")


def test_a_list_per_cell_is_a_multi_hot_value_list(log, write):
    path = write("items.jsonl", '{"item_id": "a", "tags": ["x", "y"]}\n{"item_id": "d", "tags": []}\n'
                                '{"item_id": "b", "tags": null}\n')
    ds = log.with_item_file(path, "item_id", ItemColumns(multi_hot={"tags": ";"}))
    assert ds.items.all_ids.tolist() == ["a", "b", "c", "d"]
    assert ds.item_table["tags"][0] == "x;y" and ds.item_table["tags"][3] == ""
    assert pd.isna(ds.item_table["tags"][1]) and pd.isna(ds.item_table["tags"][2])
