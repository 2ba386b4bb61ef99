"""Explanations are computed from each model's own scoring: the faithfulness checks of issue 16."""

from __future__ import annotations

import numpy as np
import pytest

from zenrec.models.base import TrainOptions
from zenrec.models.bundle import ModelBundle
from zenrec.models.explain import Explanation
from zenrec.models.query import Query
from zenrec.models.registry import create_model

USERS = range(0, 943, 47)  # 21 users spread over ml-100k


@pytest.fixture(scope="module")
def fitted(ml100k):
    made: dict[str, object] = {}

    def get(name: str, **params):
        if name not in made:
            made[name] = create_model(name, **params).fit(ml100k.interactions, None, TrainOptions(threads=1))
        return made[name]

    return get


def _history(ml100k, u: int) -> np.ndarray:
    return np.flatnonzero(ml100k.interactions.binary[u].toarray()[0])


@pytest.mark.parametrize("name", ["ease", "itemknn"])
def test_item_item_contributions_sum_to_the_score(fitted, ml100k, name):
    model = fitted(name)
    checked = 0
    for u in USERS:
        for q in (Query(user=u, k=10), Query(history=_history(ml100k, u)[::2], k=10)):
            recs = model.recommend(q)
            exps = model.explain(q, recs.items)
            assert [e.item for e in exps] == recs.items.tolist()
            for e, s in zip(exps, recs.scores, strict=True):
                assert e.method == "weights" and e.baseline == 0
                assert {c.item for c in e.contributions} <= set(np.asarray(q.history if q.history is not None
                                                                          else model.history(u)).tolist())
                # float32 scores: 1e-5 relative to the score's size (ItemKNN sums reach tens)
                assert e.total == pytest.approx(float(s), rel=1e-5, abs=1e-5)
                checked += 1
    assert checked == 2 * len(USERS) * 10


def test_als_contributions_through_the_users_solve_sum_to_its_score(fitted, ml100k):
    model = fitted("als", factors=32, iterations=8)
    for u in USERS:
        q = Query(history=_history(ml100k, u), k=10)
        recs = model.recommend(q)
        own = model.score_queries([q])[0][0]
        for e in model.explain(q, recs.items):
            assert e.method == "als-solve"
            assert e.total == pytest.approx(float(own[e.item]), abs=1e-4)
            assert abs(e.residual) < 1e-4
    # a known user without a history: its trained vector, split by factor, exactly
    e = model.explain(Query(user=3), np.asarray([10, 20]))[0]
    assert e.method == "factors" and e.total == pytest.approx(float(model.score([3])[0, 10]), abs=1e-4)


def test_als_bundle_reconciles_with_the_served_score(fitted, ml100k):
    model = fitted("als", factors=32, iterations=8)
    bundle = ModelBundle(model, ml100k.users, ml100k.items, ml100k.interactions.binary)
    user = ml100k.users.ids([5])[0].item()
    recs = bundle.recommend(Query(user=user, k=3))
    for e, s in zip(bundle.explain(Query(user=user), recs.items), recs.scores, strict=True):
        assert e.method == "als-solve" and e.score == pytest.approx(float(s), abs=1e-5)
        assert e.baseline + e.total + e.residual == pytest.approx(float(s), abs=1e-4)


def test_lmf_is_split_by_factors_honestly_labelled(ml100k_small):
    model = create_model("lmf", factors=8, epochs=2, batch_size=1024)
    model.fit(ml100k_small.train, None, TrainOptions(threads=1, validation=False))
    for q in (Query(user=1), Query(history=np.asarray([1, 2, 3]))):
        own = model.score_queries([q])[0][0]
        for e in model.explain(q, np.asarray([0, 5, 7])):
            assert e.method == "factors" and all(c.item is None for c in e.contributions)
            assert e.baseline + e.total == pytest.approx(float(own[e.item]), abs=1e-4)


def test_sasrec_top_attributed_item_matters_more_than_the_least(ml100k):
    inter = ml100k.interactions
    part = inter.subset(inter.user < 300)
    model = create_model("sasrec", epochs=3, max_len=20, factors=32, batch_size=256, dropout=0.1, lr=3e-3)
    model.fit(part, None, TrainOptions(threads=1, validation=False))
    rng = np.random.default_rng(0)
    wins = total = 0
    for u in rng.choice(300, 150, replace=False):
        hist = model.history(int(u))
        q = Query(history=hist, k=1)
        item = model.recommend(q).items[:1]
        e = model.explain(q, item)[0]
        assert e.method == "integrated-gradients"
        weights = {c.item: c.weight for c in e.contributions}
        if len(weights) < 2:
            continue
        top, least = max(weights, key=weights.get), min(weights, key=weights.get)
        base = model.score_queries([q])[0][0, item[0]]

        def without(x: int, hist: np.ndarray = hist, target: int = int(item[0])) -> float:
            return float(model.score_queries([Query(history=hist[hist != x])])[0][0, target])

        wins += (base - without(top)) > (base - without(least))
        total += 1
    assert total >= 140
    assert wins / total >= 0.8, f"{wins}/{total}"
    print(f"sasrec leave-one-out: {wins}/{total}")


def test_fallbacks_are_labelled_and_carry_no_weights(fitted, ml100k):
    pop = fitted("pop")
    e = pop.explain(Query(user=1), np.asarray([0]))[0]
    assert e.method == "popular" and e.contributions == () and "Popular" in e.sentence
    ease = fitted("ease")
    e = ease.explain(Query(user=None), np.asarray([0]))[0]  # unknown user: the popular fallback
    assert e.method == "popular" and e.contributions == ()
    trans = fitted("transition")
    e = trans.explain(Query(history=np.asarray([3, 7])), np.asarray([0, 1]))[0]
    assert e.method == "transition" and [c.item for c in e.contributions] == [7]


def test_bundle_explanations_have_titles_a_sentence_and_json(fitted, ml100k):
    bundle = ModelBundle(fitted("ease"), ml100k.users, ml100k.items, ml100k.interactions.binary,
                         ml100k.item_table["title"].astype(str).to_numpy())
    user = ml100k.users.ids([0])[0].item()
    recs = bundle.recommend(Query(user=user, k=2, reasons=True))
    e = bundle.explain(Query(user=user), recs.items[:1])[0]
    assert isinstance(e, Explanation) and e.title == recs.titles[0]
    top = e.contributions[0]
    assert top.title and top.title in e.sentence and e.sentence.startswith("Because of")
    d = e.to_dict()
    assert d["method"] == "weights" and d["item"] == recs.items[0]
    assert sum(c["share"] for c in d["contributions"]) == pytest.approx(1.0, abs=1e-4)
    assert recs.reasons[0][0]["method"] == "weights" and "share" in recs.reasons[0][0]


def test_two_tower_parts_add_up_on_both_sides():
    from zenrec import testing

    model = testing.small_model("twotower").fit(testing.checkerboard(20))
    for q in (Query(user=2), Query(history=np.asarray([1, 3, 5])), Query(user=4, history=np.asarray([0, 2]))):
        own = model.score_queries([q])[0][0]
        for e in model.explain(q, np.asarray([0, 1, 6])):
            assert e.method == "parts" and e.additive
            assert e.total == pytest.approx(float(own[e.item]), abs=1e-4)
            assert sum(e.extra["item_side"].values()) == pytest.approx(float(own[e.item]), abs=1e-4)
            names = {c.name for c in e.contributions if c.name}
            assert ("user id" in names) == (q.user is not None)
            if q.history is not None:
                assert {c.item for c in e.contributions if c.item is not None} <= set(q.history.tolist())


def test_multi_task_splits_the_ranking_into_click_and_purchase():
    from zenrec import testing

    model = testing.small_model("multitask").fit(testing.checkerboard(20))
    own = model.score([1])[0]
    for e in model.explain(Query(user=1), np.asarray([0, 3])):
        assert e.method == "tasks" and {c.name for c in e.contributions} <= {"click", "purchase",
                                                                           "purchase after click"}
        assert e.total == pytest.approx(float(own[e.item]), abs=1e-5)


@pytest.mark.parametrize("name", ["gru4rec", "bert4rec"])
def test_other_sequence_models_attribute_to_their_history(name):
    from zenrec import testing

    model = testing.small_model(name, epochs=3).fit(testing.checkerboard(20), None,
                                                    TrainOptions(threads=1, validation=False))
    q = Query(history=np.asarray([1, 3, 5, 7]))
    own = model.score_queries([q])[0][0]
    for e in model.explain(q, np.asarray([0, 2, 9])):
        assert e.method == "integrated-gradients"
        assert {c.item for c in e.contributions} <= {1, 3, 5, 7}
        assert e.score == pytest.approx(float(own[e.item]), abs=1e-5)
        # completeness of integrated gradients: the contributions carry score − baseline up to a small error
        assert abs(e.residual) <= 0.05 * abs(e.score - e.baseline) + 1e-3
