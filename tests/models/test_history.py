"""Scoring from a history other than the training data (sequential protocol, fresh events)."""

from __future__ import annotations

import numpy as np
import pytest

from zenrec import testing
from zenrec.data import Interactions
from zenrec.errors import ConfigError
from zenrec.models import TrainOptions, available_models, create_model, get_model_class

HISTORY_MODELS = [n for n in available_models() if get_model_class(n).supports_history]
# item-based: the whole history counts; sequence models are covered in test_sequential.py
ITEM_BASED = [n for n in HISTORY_MODELS if not get_model_class(n).sequential]
# factor models fold a user in: they re-solve its vector, which training only approximates
FOLD_IN = ["als", "lmf"]


def test_the_item_based_and_factor_models_read_histories():
    assert {"ease", "itemknn", *FOLD_IN} <= set(HISTORY_MODELS)


@pytest.mark.parametrize("name", [n for n in HISTORY_MODELS if n not in FOLD_IN])
def test_training_history_reproduces_scores(name):
    data = testing.checkerboard(30)
    model = testing.small_model(name).fit(data, options=TrainOptions(threads=1))
    users = np.arange(30)
    np.testing.assert_allclose(model.score(users, history=data), model.score(users), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ITEM_BASED)
def test_a_new_event_changes_the_next_list(name):
    """User 0 (even items) also takes odd item 1: odd items must climb in its list."""
    data = testing.checkerboard(30)
    model = testing.small_model(name).fit(data, options=TrainOptions(validation=False))  # all of the toy, every epoch
    before = model.score([0])[0]
    extra = Interactions([0], [1], 30, 30, timestamp=[10**9])
    after = model.score([0], history=data.concat(extra))[0]
    odd = np.arange(3, 30, 2)
    assert (after[odd] > before[odd]).all()


def test_models_without_history_say_so():
    data = testing.checkerboard(10)
    model = create_model("pop").fit(data)
    with pytest.raises(ConfigError, match="cannot score from a new history"):
        model.score([0], history=data)


@pytest.mark.parametrize("name", FOLD_IN)
def test_folding_in_the_training_rows_gives_back_the_trained_ranking(name, ml100k_split):
    """Re-solving each user from its own training items ranks as the trained user vectors do (ml-100k)."""
    train = ml100k_split.train
    params = {"epochs": 8} if name == "lmf" else {}
    # every training row in the trained vectors (no validation slice held out), as fold-in sees them
    model = create_model(name, **params).fit(train, options=TrainOptions(seed=0, threads=1, validation=False))
    users = np.arange(0, train.n_users, 5)
    seen = train.binary[users].toarray() > 0
    top_t = np.argsort(-np.where(seen, -np.inf, model.score(users)), 1)[:, :10]
    top_f = np.argsort(-np.where(seen, -np.inf, model.score(users, history=train)), 1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_t, top_f, strict=True)])
    # measured: ALS 0.99 (its training solves the same system inexactly), LMF 0.8 (SGD vs Newton)
    assert overlap >= (0.95 if name == "als" else 0.6), overlap


def test_als_fold_in_is_the_training_user_step():
    """ALS's fold-in solves the same normal equations as its training sweep: the vectors agree closely."""
    data = testing.checkerboard(40)
    model = create_model("als", factors=8, iterations=30).fit(data, options=TrainOptions(threads=1))
    folded = model.fold_in(data.binary)
    cos = (folded * model.user_factors_).sum(1) / (
        np.linalg.norm(folded, axis=1) * np.linalg.norm(model.user_factors_, axis=1))
    assert cos.min() > 0.99, cos.min()
    np.testing.assert_allclose(np.linalg.norm(folded, axis=1), np.linalg.norm(model.user_factors_, axis=1),
                               rtol=0.05)


@pytest.mark.parametrize("name", FOLD_IN)
def test_a_user_unseen_in_training_is_folded_in_from_its_events(name):
    """A brand-new user row (index n_users) with even items gets even items first."""
    data = testing.checkerboard(30)
    model = testing.small_model(name).fit(data, options=TrainOptions(threads=1))
    new = Interactions([30, 30, 30], [0, 2, 4], 31, 30, timestamp=[1, 2, 3])
    scores = model.score([30], history=new)[0]
    scores[[0, 2, 4]] = -np.inf
    assert set(np.argsort(-scores)[:5]) <= set(range(0, 30, 2))


def test_padded_row_blocks_give_back_every_nonempty_row():
    """The batched fold-ins read rows through padded blocks: each row's items and values, in order, once."""
    import scipy.sparse as sp

    from zenrec.data.sparse import padded_row_blocks

    m = sp.random(50, 30, density=0.1, format="lil", random_state=0)
    m[7] = 0  # an empty row is skipped
    m = m.tocsr()
    m.eliminate_zeros()
    seen = []
    for r, idx, val, mask in padded_row_blocks(m, block=8):
        assert len(r) <= 8 and idx.shape == val.shape == mask.shape
        for k, row in enumerate(r):
            np.testing.assert_array_equal(idx[k][mask[k]], m[row].indices)
            np.testing.assert_allclose(val[k][mask[k]], m[row].data)
            assert (val[k][~mask[k]] == 0).all()
        seen += list(r)
    assert seen == [i for i in range(50) if m[i].nnz]
