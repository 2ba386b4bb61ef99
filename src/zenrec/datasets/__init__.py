"""Datasets shipped inside the package (MovieLens 100K, under its own terms)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from zenrec.data.dataset import Dataset
from zenrec.data.readers import read_recbole
from zenrec.data.schema import ColumnMap

__all__ = ["load_ml100k", "ml100k_path"]


def ml100k_path() -> Path:
    """Directory holding the bundled, gzip-compressed MovieLens 100K atomic files."""
    return Path(str(resources.files("zenrec") / "datasets" / "ml-100k"))


def load_ml100k() -> Dataset:
    """MovieLens 100K: every rating is a positive (RecBole's general protocol),
    with titles, years and genres attached as the item table.

    See ``LICENSE.md`` beside the files for the GroupLens terms.
    """
    root = ml100k_path()
    ds = Dataset.from_file(
        root / "ml-100k.inter.gz",
        ColumnMap(user="user_id", item="item_id", timestamp="timestamp", value="rating"),
        format="recbole",
        name="ml-100k",
    )
    items = read_recbole(root / "ml-100k.item.gz").rename(
        columns={"movie_title": "title", "release_year": "year", "class": "genres"}
    )
    return ds.with_item_table(items, "item_id")
