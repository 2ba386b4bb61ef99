"""Item features from the columns a dataset declared at ingest, numeric item columns included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zenrec.data import ColumnMap, Dataset, ItemColumns
from zenrec.errors import ConfigError, DataError
from zenrec.features import ItemFeatures


@pytest.fixture
def dataset(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,ts\nu1,a,1\nu1,b,2\nu2,c,3\n")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,blurb,brand,tags,price\n"
                     "a,Red rocket,fast,Acme,space|toy,10\n"
                     "b,Blue moon,,Acme,space,\n"
                     "c,Love letter,sweet,Zeta,romance,4\n"
                     "d,Moon base,big,Zeta,space|toy|base,12\n")
    ds = Dataset.from_file(log, ColumnMap(timestamp="ts"))
    cols = ItemColumns(text=("title", "blurb"), categorical=("brand",), multi_hot={"tags": "|"}, numeric=("price",))
    return ds.with_item_file(items, "item_id", cols)


def test_the_declared_columns_become_features_by_kind(dataset, tmp_path):
    dataset.save(tmp_path / "ds")
    f = ItemFeatures.from_dataset(Dataset.load(tmp_path / "ds"))  # no column names: the stored declaration
    assert f.n_items == 4
    assert f.text.tolist() == ["Red rocket. fast", "Blue moon", "Love letter. sweet", "Moon base. big"]
    brand = f.categorical["brand"]
    assert brand.values.tolist() == ["Acme", "Zeta"] and brand.codes[:, 0].tolist() == [1, 1, 2, 2]
    tags = f.categorical["tags"]
    assert [sorted(tags.values[c - 1] for c in row if c) for row in tags.codes] == [
        ["space", "toy"], ["space"], ["romance"], ["base", "space", "toy"]]
    np.testing.assert_array_equal(f.numeric["price"], np.array([10, np.nan, 4, 12], dtype=np.float32))
    sub = f.subset(np.array([3, 1]))
    np.testing.assert_array_equal(sub.numeric["price"], np.array([12, np.nan], dtype=np.float32))
    assert "price[num]" in repr(f)


def test_explicit_columns_still_win_and_a_dataset_without_a_declaration_says_so(dataset):
    f = ItemFeatures.from_dataset(dataset, text="title")
    assert f.categorical == {} and f.numeric == {} and f.text[0] == "Red rocket"
    dataset.item_columns = None
    assert ItemFeatures.declared(dataset) is None
    with pytest.raises(DataError, match="declares no item feature columns"):
        ItemFeatures.from_dataset(dataset)


def test_numeric_item_features_are_checked():
    with pytest.raises(ConfigError, match=r"ItemFeatures.numeric\['price'\] must be 3 numbers"):
        ItemFeatures(3, numeric={"price": np.zeros(2)})
    with pytest.raises(DataError, match="finite or NaN"):
        ItemFeatures(2, numeric={"price": np.array([1.0, np.inf])})
    f = ItemFeatures.from_frame(pd.DataFrame({"p": [1, None, "2.5"]}), numeric=["p"])
    np.testing.assert_array_equal(f.numeric["p"], np.array([1, np.nan, 2.5], dtype=np.float32))
