"""The dataset shipped inside the package."""

from __future__ import annotations

import numpy as np

from zenrec.datasets import load_ml100k


def test_ml100k_counts_and_titles():
    ds = load_ml100k()
    inter = ds.interactions
    assert len(inter) == 100_000
    assert inter.n_users == len(ds.users) == 943
    assert inter.n_items == len(ds.items) == 1682
    assert ds.report.dropped == {}
    assert ds.users.is_integer and ds.items.is_integer
    titles = ds.item_table["title"]
    assert len(titles) == 1682 and titles.notna().all()
    assert titles.iloc[ds.items.index([1])[0]] == "Toy Story"
    # sorted by (user, time) as every model expects
    assert np.array_equal(np.lexsort((inter.timestamp, inter.user)), np.arange(len(inter)))
    assert inter.csr.nnz == 100_000  # one rating per (user, item)


def test_ml100k_bundled_matches_shared_copy(shared):
    from zenrec.data import ColumnMap, Dataset

    ref = Dataset.from_file(shared / "ml-100k" / "ml-100k.inter",
                            ColumnMap(timestamp="timestamp", value="rating"))
    ds = load_ml100k()
    assert ref.fingerprint == ds.fingerprint
