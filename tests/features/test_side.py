"""ItemFeatures: building from tables aligned by position or by raw id, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zenrec.data import Vocabulary
from zenrec.errors import ConfigError, DataError
from zenrec.features import ItemFeatures, MultiHot


def test_from_frame_aligns_rows_to_the_item_vocabulary():
    items = Vocabulary(np.array([10, 20, 30]), "item")
    table = pd.DataFrame({
        "movieId": [30, 10, 99],  # 99 is not in the vocabulary; 20 has no row
        "title": ["Alien (1979)", "Heat (1995)", "Ghost"],
        "tags": [None, "heist", "x"],
        "genres": ["Horror|Sci-Fi", "Action|Crime|Thriller", "Drama"],
        "studio": ["Fox", "WB", "Para"],
        "img": [[1.0, 0.0], [0.5, 0.5], [9.0, 9.0]],
    })
    f = ItemFeatures.from_frame(table, text=["title", "tags"], multi_hot={"genres": "|"}, categorical=["studio"],
                                vectors=["img"], id_column="movieId", items=items)
    assert f.n_items == 3
    assert f.text.tolist() == ["Heat (1995). heist", "", "Alien (1979)"]
    g = f.categorical["genres"]
    assert g.values.tolist() == ["Action", "Crime", "Horror", "Sci-Fi", "Thriller"]
    assert [sorted(g.values[c - 1] for c in row if c) for row in g.codes] == [
        ["Action", "Crime", "Thriller"], [], ["Horror", "Sci-Fi"]]
    assert f.categorical["studio"].codes[:, 0].tolist() == [2, 0, 1]
    np.testing.assert_array_equal(f.vectors["img"], [[0.5, 0.5], [0, 0], [1, 0]])
    assert "genres[5]" in repr(f)
    sub = f.subset(np.array([2, 0]))
    assert sub.text.tolist() == ["Alien (1979)", "Heat (1995). heist"] and sub.vectors["img"].shape == (2, 2)


def test_positional_tables_must_have_one_row_per_item():
    with pytest.raises(DataError, match="has 2 rows; expected one per item"):
        ItemFeatures.from_frame(pd.DataFrame({"title": ["a", "b"]}), 3, text="title")


def test_errors_name_the_column():
    t = pd.DataFrame({"title": ["a", "b"], "v": [[1.0], [1.0, 2.0]]})
    with pytest.raises(DataError, match="column 'genre'.*no such column"):
        ItemFeatures.from_frame(t, text="title", categorical=["genre"])
    with pytest.raises(DataError, match="column 'v'.*one length"):
        ItemFeatures.from_frame(t, vectors=["v"])
    with pytest.raises(DataError, match="'vecs'.*finite"):
        ItemFeatures(2, vectors={"vecs": np.array([[np.nan], [1.0]], dtype=np.float32)})
    with pytest.raises(ConfigError, match="unicode array of 3 strings"):
        ItemFeatures(3, text=np.array(["a", "b"]))
    with pytest.raises(ConfigError, match="codes must lie in"):
        MultiHot(np.array([[3]]), np.array(["a"]))
