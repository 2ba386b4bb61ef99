"""Recommender.item_embeddings: the vectors serving uses for similar items and ANN retrieval."""

from __future__ import annotations

import numpy as np
import pytest

from zenrec import testing
from zenrec.models import TrainOptions, create_model
from zenrec.models.registry import load_model

FAST = TrainOptions(seed=0, threads=1)
SMALL = {"als": {}, "lmf": {"epochs": 3}, "sasrec": {"epochs": 2, "max_len": 10},
         "bert4rec": {"epochs": 2, "max_len": 10}, "twotower": {"epochs": 2}}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_embedding_models_give_one_vector_per_item_that_survives_save_load(name, tmp_path):
    model = create_model(name, **SMALL[name])
    data = testing.ring_walks(30) if model.sequential else testing.checkerboard(30)
    model.fit(data, options=FAST)
    emb = model.item_embeddings()
    assert emb.shape[0] == 30 and emb.ndim == 2 and np.isfinite(emb).all()
    model.save(tmp_path / "m")
    loaded, _, _ = load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.item_embeddings(), emb, rtol=1e-6)


def test_factor_scores_are_dot_products_with_the_item_embeddings():
    data = testing.checkerboard(30)
    als = create_model("als", factors=8).fit(data, options=FAST)
    np.testing.assert_allclose(als.score([0, 3]), als.user_factors_[[0, 3]] @ als.item_embeddings().T, rtol=1e-5)
    seq = create_model("sasrec", epochs=2, max_len=10).fit(testing.ring_walks(30), options=FAST)
    # the last hidden state · item embeddings = the scores (the pad row is not among them)
    import torch

    with torch.no_grad():
        h = seq.net_(torch.as_tensor(seq.sequences_[[1]].astype(np.int64)))[:, -1].numpy()
    np.testing.assert_allclose(seq.score([1]), h @ seq.item_embeddings().T, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["pop", "ease", "itemknn", "transition"])
def test_models_without_item_vectors_say_none(name):
    model = create_model(name)
    data = testing.ring_walks(20) if model.sequential else testing.checkerboard(20)
    assert model.fit(data, options=FAST).item_embeddings() is None
