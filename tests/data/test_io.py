"""Saving and loading: round trips, and no half-written artifact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from zenrec.data import ColumnMap, Dataset, leave_last_out, load_split, random_split, save_split
from zenrec.errors import ArtifactError


def _dataset(ids="text"):
    rng = np.random.default_rng(3)
    n = 400
    users = rng.integers(0, 30, n)
    items = rng.integers(0, 40, n)
    df = pd.DataFrame({
        "user": [f"u{u:03d}" for u in users] if ids == "text" else users * 7,
        "item": [f"00{i}" for i in items] if ids == "text" else items + 1000,
        "ts": rng.integers(0, 10_000, n),
        "event": rng.choice(["view", "click", "purchase"], n),
    })
    return Dataset.from_frame(df, ColumnMap(user="user", item="item", timestamp="ts", event="event"), name="toy")


def _rows(inter, users, items):
    return sorted(zip(users.ids(inter.user).tolist(), items.ids(inter.item).tolist(), inter.timestamp.tolist(), strict=False))


@pytest.mark.parametrize("ids", ["text", "int"])
def test_save_split_load_split_same_rows_by_raw_id(tmp_path, ids):
    ds = _dataset(ids)
    split = random_split(ds.interactions, seed=5)
    (tmp_path / "keep.txt").write_text("other files survive")
    written = save_split(split, ds, tmp_path)
    assert sorted(p.name for p in written) == ["toy.test.inter", "toy.train.inter", "toy.valid.inter"]
    assert (tmp_path / "keep.txt").read_text() == "other files survive"
    split2, ds2 = load_split(tmp_path)
    for part in ("train", "valid", "test"):
        a, b = getattr(split, part), getattr(split2, part)
        assert _rows(a, ds.users, ds.items) == _rows(b, ds2.users, ds2.items), part
    # raw ids keep their type: integers stay integers, "007" keeps its zeros
    assert ds2.users.is_integer == (ids == "int")


def test_save_split_without_validation(tmp_path):
    ds = _dataset()
    split = leave_last_out(ds.interactions, validation=False)
    save_split(split, ds, tmp_path, name="seq")
    split2, _ = load_split(tmp_path, "seq")
    assert split2.valid is None and len(split2.test) == len(split.test)


def test_save_split_failure_leaves_nothing(tmp_path, monkeypatch):
    ds = _dataset()
    split = random_split(ds.interactions)
    calls = {"n": 0}
    real = pd.DataFrame.to_csv

    def failing(self, path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_csv", failing)
    with pytest.raises(OSError, match="disk full"):
        save_split(split, ds, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_dataset_save_load_round_trip(tmp_path):
    ds = _dataset()
    ds.with_item_table(pd.DataFrame({"item": ["001", "002", "nope"], "title": ["One", "Two", "X"]}), "item")
    ds.save(tmp_path / "ds")
    back = Dataset.load(tmp_path / "ds")
    a, b = ds.interactions, back.interactions
    for field in ("user", "item", "timestamp", "weight", "event"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert (a.n_users, a.n_items, a.event_names) == (b.n_users, b.n_items, b.event_names)
    assert back.users == ds.users and back.items == ds.items
    assert back.fingerprint == ds.fingerprint
    assert back.report.to_dict() == ds.report.to_dict()
    assert back.name == "toy"
    assert back.item_table["title"].iloc[ds.items.index(["002"])[0]] == "Two"
    assert back.item_table["title"].isna().sum() == len(ds.items) - 2


def test_dataset_save_failure_leaves_no_target_and_keeps_old(tmp_path, monkeypatch):
    ds = _dataset()
    target = tmp_path / "ds"
    calls = {"n": 0}
    real = pq.write_table

    def failing(table, where, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(table, where, *a, **k)

    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(OSError, match="disk full"):
        ds.save(target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left behind either
    # an existing dataset is kept intact when overwriting fails
    monkeypatch.setattr(pq, "write_table", real)
    ds.save(target)
    before = sorted(p.name for p in target.iterdir())
    calls["n"] = 0
    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(OSError):
        ds.save(target)
    assert sorted(p.name for p in target.iterdir()) == before
    assert len(Dataset.load(target).interactions) == len(ds.interactions)


def test_load_of_corrupt_dataset_is_an_artifact_error(tmp_path):
    ds = _dataset()
    ds.save(tmp_path / "ds")
    (tmp_path / "ds" / "interactions.parquet").write_bytes(b"not parquet")
    with pytest.raises(ArtifactError, match="corrupted dataset"):
        Dataset.load(tmp_path / "ds")
