"""The event names a log declares at ingest (buy=purchase…) travel with the model: the server maps or refuses
posted types by them, retraining weighs stored events by them and carries them on, and the online report
counts a `buy` as a conversion."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from zenrec.cli import app
from zenrec.data import CleaningConfig, ColumnMap, Dataset
from zenrec.data.events import EventTypes
from zenrec.errors import ArtifactError
from zenrec.evaluate.online import online_report
from zenrec.models.base import TrainOptions
from zenrec.models.bundle import ModelBundle, train_bundle
from zenrec.retrain import TRAINING_LOG_FILE, TrainingLog, retrain
from zenrec.store import EventStore, ModelRegistry
from zenrec.store.events import Event

runner = CliRunner()
ALIASES = {"buy": "purchase", "basket": "cart", "fav": "favorite"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A small shop log in its own words (40 users × 30 items), ingested with aliases, and EASE trained on it."""
    rng = np.random.default_rng(3)
    n = 1200
    df = pd.DataFrame({"u": [f"c{x}" for x in rng.integers(0, 40, n)], "i": [f"sku-{x}" for x in rng.integers(0, 30, n)],
                       "e": rng.choice(["buy", "basket", "fav", "view"], n, p=[0.1, 0.2, 0.2, 0.5]),
                       "t": 1_700_000_000 + np.arange(n)})
    root = tmp_path_factory.mktemp("shop")
    ds = Dataset.from_frame(df, ColumnMap(user="u", item="i", event="e", timestamp="t"),
                            CleaningConfig(event_aliases=ALIASES), name="shop")
    ds.save(root / "data")
    model = train_bundle(ds, "ease", {"reg": 50.0}, TrainOptions(threads=1)).save(root / "model")
    return root / "data", model


def test_the_vocabulary_reads_names_and_refuses_a_corrupt_manifest():
    ev = EventTypes(aliases={"buy": "purchase"})
    assert [ev.canonical(x) for x in ("Buy ", "purchase", "favourite", "wishlist")] == [
        "purchase", "purchase", "favorite", None]
    assert ev.weight("buy") == 8.0 and ev.weight("wishlist") is None
    assert "buy→purchase" in ev.accepted() and ev.accepted().startswith("view, click")
    assert EventTypes.from_dict(ev.to_dict()) == ev and EventTypes.from_dict(None) == EventTypes()
    for bad in ({"aliases": {"buy": "order"}}, {"weights": {"view": -1}}, ["view"], {"weights": {"view": "x"}}):
        with pytest.raises(ArtifactError, match="corrupted 'events'"):
            EventTypes.from_dict(bad, "m/manifest.json")


def test_the_model_bundle_carries_the_datasets_vocabulary(shop):
    data_dir, model_dir = shop
    bundle = ModelBundle.load(model_dir)
    assert dict(bundle.events.aliases) == ALIASES and bundle.events == Dataset.load(data_dir).events
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["events"]["aliases"] == ALIASES


def test_the_server_stores_an_alias_as_its_type_and_refuses_an_unknown_name(shop, tmp_path, serve_app):
    _, model_dir = shop
    store = tmp_path / "events.db"
    with serve_app(model_dir, store) as client:
        r = client.post("/events", json={"user": "c1", "item": "sku-3", "type": " BUY"})
        assert r.status_code == 200, r.text
        r = client.post("/events", json={"user": "c1", "item": "sku-4", "type": "wishlist"})
        assert r.status_code == 422
        body = r.json()
        assert "unknown event type 'wishlist'" in body["error"]["message"] and "buy→purchase" in body["error"]["message"], body
        # a batch with one unknown name stores none of its events
        r = client.post("/events", json={"events": [{"user": "c2", "item": "sku-1", "type": "fav"},
                                                    {"user": "c2", "item": "sku-2", "type": "like"}]})
        assert r.status_code == 422 and "events[1]: unknown event type 'like'" in r.json()["error"]["message"]
    with EventStore(f"sqlite:///{store}") as st:
        frame = st.frame()
    assert frame[["user", "item", "event"]].values.tolist() == [["c1", "sku-3", "purchase"]]


def test_the_online_report_counts_a_buy_as_a_conversion(shop, tmp_path, serve_app):
    _, model_dir = shop
    store = tmp_path / "events.db"
    with serve_app(model_dir, store) as client:
        lists = [client.get(f"/users/c{u}/recommendations").json() for u in range(4)]
        for body in lists[:2]:  # two of four lists lead to a purchase, in the log's own word
            ev = {"user": body["user"], "item": body["items"][0]["item"], "type": "buy", "list_id": body["list_id"]}
            assert client.post("/events", json=ev).status_code == 200
        ev = {"user": "c2", "item": lists[2]["items"][0]["item"], "type": "basket", "list_id": lists[2]["list_id"]}
        assert client.post("/events", json=ev).status_code == 200
        assert client.app.state.zenrec.served_log.flush()
    r = runner.invoke(app, ["report", "online", str(model_dir), "--store", f"sqlite:///{store}",
                            "--json", str(tmp_path / "rep.json")])
    assert r.exit_code == 0, r.output
    (row,) = json.loads((tmp_path / "rep.json").read_text())["rows"]
    assert row["lists"] == 4 and row["conversion"] == pytest.approx(0.5) and row["click_through"] == pytest.approx(0.75)


def test_a_raw_name_in_the_store_counts_through_the_vocabulary():
    """Events stored before the server mapped names (or by the library) are read through the vocabulary too."""
    lists = pd.DataFrame({"list_id": ["l1", "l2"], "user": ["a", "b"], "model_version": ["v1", "v1"],
                          "kind": ["user", "user"], "fallback": [None, None], "items": [["x"], ["y"]],
                          "catalogue": [2, 2], "latency_ms": [1.0, 1.0], "created": [1.0, 2.0]})
    events = pd.DataFrame({"list_id": ["l1", "l2"], "event": ["Buy", "view"], "user": ["a", "b"],
                           "item": ["x", "y"]})
    vocab = EventTypes(aliases={"buy": "purchase"})
    assert online_report(lists, events, events_types=vocab).rows[0].conversion == pytest.approx(0.5)
    assert online_report(lists, events).rows[0].conversion == 0.0  # without it, "Buy" is no purchase


def test_retrain_weighs_stored_aliases_drops_unknown_names_and_carries_the_vocabulary(shop, tmp_path):
    data_dir, model_dir = shop
    reg = ModelRegistry(tmp_path / "registry")
    reg.promote(reg.add(model_dir, extra={"last_event_seq": 0}), reason="first")
    t = 1_800_000_000.0
    with EventStore(reg.events_url()) as st:  # the library stores any name; retraining reads them by the vocabulary
        st.append([Event(f"c{k}", f"sku-{k + 1}", "buy", 1.0, t + k) for k in range(10)]
                  + [Event("c1", "sku-9", "wishlist", 1.0, t + 20), Event("c2", "sku-9", "wishlist", 1.0, t + 21)])
    rep = retrain(reg.root, "ease", {"reg": 50.0}, base=data_dir, window=30 * 86400.0)
    assert any("'wishlist' ×2" in n and "buy→purchase" in n for n in rep.notes), rep.notes
    assert rep.version is not None
    new = ModelBundle.load(reg.path(rep.version))
    assert dict(new.events.aliases) == ALIASES
    log = TrainingLog.load(reg.path(rep.version) / TRAINING_LOG_FILE)
    stored = log.seq > 0
    assert stored.sum() == 10 and set(log.event[stored]) == {"purchase"}
    np.testing.assert_array_equal(log.weight[stored], 8.0)
