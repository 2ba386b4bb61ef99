"""A retrained two-tower reads the product columns the base dataset declared at ingest, cold items included."""

from __future__ import annotations

from zenrec.data import ColumnMap, Dataset, ItemColumns
from zenrec.models.base import TrainOptions
from zenrec.models.bundle import ModelBundle, train_bundle
from zenrec.retrain import retrain
from zenrec.store import EventStore, ModelRegistry
from zenrec.store.events import Event

SMALL = {"factors": 16, "hidden": 32, "token_dim": 16, "text_len": 8, "epochs": 20, "min_token_count": 1}
FEATS = ItemColumns(text=("title", "description"), categorical=("brand", "category"), multi_hot={"tags": "|"},
                    numeric=("price",))
COLD = ["s8", "s9", "l8", "l9"]


def test_a_full_retrain_keeps_the_declared_content_and_the_cold_items(cluster_shop, tmp_path):
    log, items = cluster_shop
    base = Dataset.from_frame(log, ColumnMap(timestamp="ts"), name="shop").with_item_table(items, "item_id", FEATS)
    base.save(tmp_path / "base")
    served = train_bundle(base, "twotower", SMALL, TrainOptions(seed=7, threads=1)).save(tmp_path / "served")
    reg = ModelRegistry(tmp_path / "registry")
    reg.promote(reg.add(served, extra={"last_event_seq": 0}))
    t = float(log["ts"].max()) + 100
    with EventStore(reg.events_url()) as st:  # two space fans look at more space items
        st.append([Event(u, i, "view", 1.0, t + k) for k, (u, i) in enumerate([("u0", "s1"), ("u2", "s3"),
                                                                                  ("u1", "l2")])])
    rep = retrain(reg.root, base=tmp_path / "base", window=50.0, promote=False)
    assert rep.version is not None and rep.model == "twotower"
    new = ModelBundle.load(reg.path(rep.version))
    assert set(COLD) <= set(new.items.all_ids)  # cold items are still in the catalogue
    assert {"text.tokens", "cat.category.codes", "num.price"} <= set(new.model.inputs_)
    recs = new.recommend_users(["u0", "u1"], k=4)
    got = {u: set(g["item_id"]) for u, g in recs.groupby("user_id")}
    assert got["u0"] & {"s8", "s9"} and got["u1"] & {"l8", "l9"}, got
