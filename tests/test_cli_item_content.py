"""Item content from the command line: `ingest --items --item-text/--item-cat/--item-multi/--item-num`,
`train --model twotower` reading it, cold items in `recommend` and over HTTP; bad tables exit 2 naming
file, line and column."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from zenrec.cli import app

runner = CliRunner()
FLAGS = ["--item-text", "title,description", "--item-cat", "brand", "--item-cat", "category", "--item-multi", "tags",
         "--item-num", "price"]
SMALL = ["-p", "factors=16", "-p", "hidden=32", "-p", "token_dim=16", "-p", "text_len=8", "-p", "epochs=30",
         "-p", "min_token_count=1", "--seed", "7"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _bad(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.output
    text = " ".join(result.output.split())  # the console wraps long lines
    for n in needles:
        assert n in text, text


@pytest.fixture(scope="module")
def files(cluster_shop, tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    log, items = cluster_shop
    log.to_csv(root / "log.csv", index=False)
    items.to_csv(root / "items.csv", index=False)
    return root


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    """The documented flow, once: ingest with item content, train the two-tower."""
    root = tmp_path_factory.mktemp("flow")
    r = run("ingest", files / "log.csv", "--time", "ts", "--items", files / "items.csv", "--item-key", "item_id",
            *FLAGS, "-o", root / "data")
    assert r.exit_code == 0, r.output
    ingest_out = r.output
    r = run("train", root / "data", "--model", "twotower", *SMALL, "-o", root / "m")
    assert r.exit_code == 0, r.output
    return root, ingest_out, r.output


def test_ingest_stores_the_declaration_and_the_cold_items(trained):
    root, ingest_out, train_out = trained
    text = " ".join(ingest_out.split())
    assert "20 items" in text and "4 cold items (in items.csv, no events)" in text
    m = json.loads((root / "data" / "manifest.json").read_text())
    assert m["item_features"] == {"text": ["title", "description"], "categorical": ["brand", "category"],
                                  "multi_hot": {"tags": "|"}, "numeric": ["price"]}
    assert m["n_items"] == 20
    assert "item features: text title, description" in " ".join(train_out.split())
    assert "text_encoder='cnn'" in train_out


def test_recommend_shows_a_cold_item_of_the_users_taste_with_its_title(trained, cluster_shop):
    root, _, _ = trained
    _, items = cluster_shop
    out = root / "recs.csv"
    r = run("recommend", root / "m", "--users", _users(root, [f"u{u}" for u in range(20)]), "-k", "4", "-o", out)
    assert r.exit_code == 0, r.output
    recs = pd.read_csv(out)
    title = dict(zip(items["item_id"], items["title"], strict=True))
    assert (recs["title"] == recs["item_id"].map(title)).all()
    hits = 0
    for user, g in recs.groupby("user_id"):
        taste = "s" if int(user[1:]) % 2 == 0 else "l"
        hits += bool(set(g["item_id"]) & {f"{taste}8", f"{taste}9"}) and g["item_id"].str[0].eq(taste).all()
    assert hits >= 18, recs
    r = run("recommend", root / "m", "--user", "u0", "-k", "4")
    assert r.exit_code == 0 and "top-4 for user u0" in r.output
    assert any(title[c] in r.output for c in ("s8", "s9")), r.output


def _users(root, ids):
    path = root / "users.txt"
    path.write_text("\n".join(ids) + "\n")
    return path


def test_the_http_app_serves_cold_items_from_the_trained_directory(trained, tmp_path):
    from fastapi.testclient import TestClient

    from zenrec.data import Dataset
    from zenrec.serve.app import create_app

    root, _, _ = trained
    table = Dataset.load(root / "data").item_table  # as `zenrec serve --data`: attribute filters
    app_ = create_app(root / "m", store_url=f"sqlite:///{tmp_path / 'events.db'}", item_table=table)
    with TestClient(app_, raise_server_exceptions=False) as client:
        r = client.get("/users/u0/recommendations", params={"k": 4})
        assert r.status_code == 200, r.text
        got = {x["item"]: x.get("title") for x in r.json()["items"]}
        assert set(got) & {"s8", "s9"} and all(i.startswith("s") for i in got), got
        assert all(got.values())
        # an anonymous session of love items is offered the cold love items
        r = client.post("/recommendations", json={"items": ["l0", "l1", "l2", "l3", "l4", "l5"], "k": 4})
        assert r.status_code == 200, r.text
        items = [x["item"] for x in r.json()["items"]]
        assert {"l8", "l9"} & set(items) and all(i.startswith("l") for i in items), items
        # the stored table's columns filter cold items too: only l8 and l9 cost 38 or more
        r = client.get("/users/u1/recommendations", params={"k": 5, "filter": "price>=38"})
        assert sorted(x["item"] for x in r.json()["items"]) == ["l8", "l9"], r.text


def test_other_models_train_on_the_same_dataset(trained):
    root, _, _ = trained
    r = run("train", root / "data", "--model", "ease", "-o", root / "ease")
    assert r.exit_code == 0, r.output
    assert "item features" not in r.output
    r = run("recommend", root / "ease", "--user", "u0", "-k", "3")
    assert r.exit_code == 0 and "s8" not in r.output and "s9" not in r.output


# ------------------------------------------------------------------ hostile input
def _items(files, tmp_path, edit) -> str:
    df = pd.read_csv(files / "items.csv")
    df = edit(df)
    path = tmp_path / "items.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("flags", "edit", "needles"),
    [
        (["--item-cat", "colour"], None,
         ["items.csv", "no declared column 'colour' in the item table; its columns are ['item_id', 'title'"]),
        (["--item-num", "price"], lambda d: d.assign(price=d["price"].astype(object).where(d.index != 6, "cheap")),
         ["items.csv", "line 8", "'price'", "expected a number; got 'cheap'"]),
        (["--item-text", "title"], lambda d: pd.concat([d, d.iloc[[3]]]),
         ["items.csv", "duplicate item id 's3' (lines 5 and 22)"]),
        (["--item-text", "title"], lambda d: d.iloc[:0], ["items.csv", "header but no rows"]),
        (["--item-text", "title", "--item-cat", "title"], None, ["'title' is declared twice (text and categorical)"]),
        (["--item-multi", "tags", "--multi-sep", ""], None, ["separator of multi-hot item column 'tags'"]),
        (["--item-text", "title", "--item-key", "sku"], None, ["items.csv", "no id column 'sku'", "--item-key"]),
        (["--item-text", "title"], lambda d: d.assign(item_id="x" + d["item_id"]),
         ["items.csv", "none of the 20 item ids of the item table is an item of the log", "--item-key"]),
        (["--item-text", "title,", "--item-cat", "item_id"], None, ["'item_id' is the id column"]),
    ],
    ids=["absent-column", "not-a-number", "duplicate-key", "empty-table", "declared-twice", "empty-separator",
         "wrong-key", "no-overlap", "key-as-feature"],
)
def test_bad_item_tables_exit_2_naming_what_is_wrong(files, tmp_path, flags, edit, needles):
    items = _items(files, tmp_path, edit) if edit else files / "items.csv"
    out = tmp_path / "data"
    _bad(run("ingest", files / "log.csv", "--time", "ts", "--items", items, *flags, "-o", out), *needles)
    assert not out.exists()


def test_feature_flags_need_an_item_table(files, tmp_path):
    _bad(run("ingest", files / "log.csv", "--item-text", "title", "-o", tmp_path / "d"),
         "--item-text declares columns of the item table; give the table with --items FILE")
    _bad(run("ingest", files / "log.csv", "--items", files / "items.csv", "--item-num", " , ", "-o", tmp_path / "d"),
         "--item-num must be a comma-separated list")
    assert not (tmp_path / "d").exists()


def test_minilm_without_the_text_extra_names_the_pip_command(trained, tmp_path, monkeypatch):
    root, _, _ = trained
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # the import fails
    monkeypatch.setenv("ZENREC_CACHE_DIR", str(tmp_path))  # nothing cached: the encoder must load
    _bad(run("train", root / "data", "--model", "twotower", "-p", "text_encoder=minilm", "-p", "epochs=1",
             "-o", tmp_path / "m"), "pip install 'zenrec[text]'")
    assert not (tmp_path / "m").exists()
