"""Models that early-stop hold out validation when fitted without it, and still know every event."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zenrec.data import Interactions
from zenrec.models.base import TrainOptions
from zenrec.models.query import Query
from zenrec.models.registry import create_model
from zenrec.testing import checkerboard, ring_walks
from zenrec.train.sequences import last_items

pytest.importorskip("torch")

FAST = TrainOptions(seed=1, threads=1)


def _sasrec(**kw):
    return create_model("sasrec", factors=16, max_len=10, batch_size=32, **kw)


def test_sequence_model_stops_on_its_held_out_last_items_and_scores_from_every_event():
    data = ring_walks(60)
    m = _sasrec(epochs=200, patience=3).fit(data, options=FAST)
    t = m.training_
    assert t["stopped_early"] and t["epochs"] < 200 and t["epochs"] == t["best_epoch"] + 3
    assert t["validation"].startswith("each user's last event: 60 events")
    assert len(m.train_history_) == t["epochs"] and all("valid" in r for r in m.train_history_)
    np.testing.assert_array_equal(m.sequences_, last_items(data, np.arange(60), 10))  # not the training part's
    assert [m.history(u)[-1] for u in (0, 5)] == [7, 12]  # each user's last (held-out) item
    # the next item after the whole walk, which the held-out item leads to
    top = [m.recommend(Query(user=u, k=1, exclude=data.sequence(u))).items[0] for u in range(60)]
    assert np.mean(np.asarray(top) == (np.arange(60) + 8) % 60) >= 0.9


def test_validation_false_trains_every_epoch_on_everything():
    m = _sasrec(epochs=4, patience=1).fit(ring_walks(60), options=TrainOptions(seed=1, threads=1, validation=False))
    assert m.training_["epochs"] == 4 and m.training_["best_epoch"] is None
    assert m.training_["validation"] == "none (validation=False)"
    assert all("valid" not in r for r in m.train_history_)


def test_a_given_validation_part_is_used_as_it_is():
    data = ring_walks(60)
    last = data.seq_indptr[1:] - 1
    mask = np.zeros(len(data), dtype=bool)
    mask[last] = True
    m = _sasrec(epochs=3).fit(data.subset(~mask), data.subset(mask), FAST)
    assert m.training_["validation"] == "given"
    assert [m.history(u)[-1] for u in (0, 5)] == [6, 11]  # fitted on the training part only: nothing added


def test_lmf_holds_out_a_share_and_keeps_the_best_weights():
    data = checkerboard(60)
    m = create_model("lmf", factors=16, epochs=40, patience=2, batch_size=256, lr=0.02)
    m.fit(data, options=TrainOptions(seed=1, threads=1, validation=0.2))
    t = m.training_
    assert t["validation"].startswith("a random 20% of each user's events")
    assert t["best_epoch"] is not None and t["epochs"] <= 40 and t["valid_ndcg@10"] > 0


def test_twotower_scores_from_every_event():
    data = ring_walks(60)
    m = create_model("twotower", factors=16, hidden=32, history_len=8, epochs=3, batch_size=256)
    m.fit(data, options=FAST)
    assert m.training_["best_epoch"] is not None
    np.testing.assert_array_equal(m.sequences_, last_items(data, np.arange(60), 8))


def test_multitask_history_input_covers_every_event():
    from zenrec.data.synthetic import FUNNEL_EVENTS, make_funnel

    data = make_funnel(n_users=150, n_items=60, views_per_user=12, purchase_rate=0.4, seed=0)
    assert data.event_names == FUNNEL_EVENTS
    m = create_model("multitask", factors=8, experts=2, expert_size=8, epochs=3, batch_size=256, wide=True)
    m.fit(data, options=FAST)
    assert m.training_["validation"].startswith("a random 10%")
    clicked = np.isin(data.event, [1, 2])  # click and purchase events: the engaged pairs
    engaged = Interactions(data.user[clicked], data.item[clicked], data.n_users, data.n_items).binary
    assert (m.hist_ != engaged).nnz == 0 and m.hist_.nnz > 0


def test_a_bundle_knows_and_masks_the_held_out_events():
    from zenrec.data.dataset import Dataset
    from zenrec.data.schema import ColumnMap
    from zenrec.models.bundle import train_bundle

    walks = ring_walks(40)
    df = pd.DataFrame({"user_id": [f"u{u}" for u in walks.user], "item_id": [f"i{i}" for i in walks.item],
                       "timestamp": walks.timestamp})
    ds = Dataset.from_frame(df, ColumnMap(timestamp="timestamp"))
    b = train_bundle(ds, "sasrec", {"factors": 16, "max_len": 10, "epochs": 30, "patience": 2, "batch_size": 32},
                     FAST)
    assert b.model.training_["validation"].startswith("each user's last event")
    full: Interactions = ds.interactions
    assert (b.seen != full.binary).nnz == 0
    u = int(b.users.index(["u3"])[0])
    last = str(b.items.ids(full.sequence(u)[-1:])[0])
    assert last == "i10" and b.items.ids(b.stored_history(u)[-1:])[0] == "i10"
    recs = b.recommend_users(["u3"], k=len(b.items) - 8)
    assert "i10" not in set(recs["item_id"])  # a held-out event is still a seen item: masked
