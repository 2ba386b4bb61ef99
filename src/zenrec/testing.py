"""Fixtures and checks every registered model must pass (the conformance suite).

Shipped in the package so that a model written outside zenrec can run the
same checks: ``zenrec.testing.check_model("mymodel")``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from zenrec.data.interactions import Interactions
from zenrec.errors import NotFittedError, UnknownIdError
from zenrec.models.base import Recommender, TrainOptions
from zenrec.models.query import Query
from zenrec.models.registry import get_model_class, load_model

__all__ = [
    "checkerboard",
    "check_known_answer",
    "check_save_load",
    "check_batch_equals_single",
    "check_unknown_user",
    "check_finite",
    "check_config_round_trip",
    "check_model",
    "small_model",
    "check_vectors",
    "check_history",
    "top_items",
]


def checkerboard(n: int = 60) -> Interactions:
    """Users and items split by parity; user u saw every item of its parity but item u.

    Items of the user's parity are all it likes, so the only right first
    recommendation for user u (seen items excluded) is item u.
    """
    u, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keep = (u % 2 == i % 2) & (u != i)
    return Interactions(u[keep], i[keep], n, n)


def ring_walks(n: int = 60, steps: int = 8) -> Interactions:
    """User u walks a ring of n items from item u: u, u+1, …, u+steps-1 (mod n), in time order.

    Every transition is ``i → i+1``, so the only right next item for user u
    is ``u + steps (mod n)``: the known answer for sequence models.
    """
    u = np.repeat(np.arange(n), steps)
    t = np.tile(np.arange(steps), n)
    return Interactions(u, (u + t) % n, n, n, timestamp=t)


def known_answer_fixture(model: Recommender, n: int = 60) -> tuple[Interactions, np.ndarray]:
    """The fixture that suits the model and each user's right first item."""
    if model.sequential:
        return ring_walks(n), (np.arange(n) + 8) % n
    return checkerboard(n), np.arange(n)


def check_known_answer(model: Recommender, n: int = 60, min_hit_rate: float = 1.0) -> float:
    """Fit on the known-answer fixture; the share of users whose top-1 is right must reach ``min_hit_rate``."""
    data, answer = known_answer_fixture(model, n)
    # every epoch of the config on the whole fixture: what is checked is that the model can learn the pattern,
    # not where early stopping on a slice held out of 60 tiny histories happens to stop
    model.fit(data, options=TrainOptions(seed=1, threads=1, validation=False))
    top = top_items(model, data, k=1)
    rate = float(np.mean(top[:, 0] == answer))
    assert rate >= min_hit_rate, f"{model!r}: only {rate:.0%} of users got their known answer first"
    return rate


def top_items(model: Recommender, data: Interactions, k: int) -> np.ndarray:
    """Each user's top ``k`` item indices with its training items excluded (``-1`` where fewer remain)."""
    seen = data.binary
    lists = model.recommend_batch([
        Query(user=u, k=k, exclude=seen.indices[seen.indptr[u] : seen.indptr[u + 1]]) for u in range(data.n_users)
    ])
    out = np.full((data.n_users, k), -1, dtype=np.int64)
    for u, r in enumerate(lists):
        out[u, : len(r)] = r.items
    return out


def check_vectors(model: Recommender, users: np.ndarray) -> None:
    """A model that declares :meth:`~Recommender.vectors` scores known users by exactly that product (and link)."""
    v = model.vectors()
    if v is None:
        return
    assert v.users.shape == (model.n_users_, v.items.shape[1]), f"{model!r}: user vectors of shape {v.users.shape}"
    assert v.items.shape[0] == model.n_items_, f"{model!r}: item vectors of shape {v.items.shape}"
    dots = v.users[users] @ v.items.T + (0 if v.item_bias is None else v.item_bias[None, :])
    s = model.score(users)
    np.testing.assert_allclose(v.scores(dots), s, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(s).max())))


def check_history(model: Recommender, data: Interactions) -> None:
    """A stored history holds only items the user interacted with in training."""
    seen = data.binary
    for u in range(0, data.n_users, 7):
        h = model.history(u)
        if h is None:
            return
        row = set(seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist())
        assert set(np.asarray(h).tolist()) <= row, f"{model!r}: history of user {u} holds items it never saw"


def check_save_load(model: Recommender, users: np.ndarray) -> None:
    """A saved and reloaded model gives bit-identical scores and the same config."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m"
        model.save(path)
        loaded, manifest, _ = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert manifest["model"] == model.name
    np.testing.assert_array_equal(loaded.score(users), model.score(users))


def check_batch_equals_single(model: Recommender, users: np.ndarray) -> None:
    """Scoring users together equals scoring them one at a time."""
    batch = model.score(users)
    # float32 sums blocked differently for one row than for many differ by a few ulps of the largest terms,
    # so the absolute tolerance follows the scores' scale (a wrong row would be off by far more)
    atol = 1e-6 * max(1.0, float(np.abs(batch[np.isfinite(batch)]).max(initial=0.0)))
    for r, u in enumerate(users):
        np.testing.assert_allclose(batch[r], model.score([u])[0], rtol=1e-5, atol=atol)


def check_unknown_user(model: Recommender) -> None:
    """Unknown users get popularity scores under 'popular' and raise under 'raise'."""
    out = model.score([-1, model.n_users_])
    np.testing.assert_array_equal(out[0], model.popularity_)
    np.testing.assert_array_equal(out[1], model.popularity_)
    strict = type(model)(model.config.model_copy(update={"on_unknown_user": "raise"}))
    strict.__dict__.update({k: v for k, v in model.__dict__.items() if k != "config"})
    try:
        strict.score([-1])
    except UnknownIdError:
        return
    raise AssertionError(f"{model!r} with on_unknown_user='raise' did not raise for an unknown user")


def check_finite(model: Recommender, users: np.ndarray) -> None:
    """Every score of a known user is finite, float32, of shape users × items."""
    s = model.score(users)
    assert s.dtype == np.float32 and s.shape == (len(users), model.n_items_)
    assert np.isfinite(s).all(), f"{model!r} produced non-finite scores"


def check_config_round_trip(cls: type[Recommender]) -> None:
    """The default config survives a JSON round trip and unknown keys are refused."""
    cfg = cls.Config()
    assert cls.Config.model_validate_json(cfg.model_dump_json()) == cfg
    try:
        cls(no_such_parameter=1)
    except ValueError:
        pass
    else:
        raise AssertionError(f"{cls.__name__} accepted an unknown parameter")
    try:
        cls().score([0])
    except NotFittedError:
        pass
    else:
        raise AssertionError(f"{cls.__name__} scored before fit")


def small_model(name: str, **params: Any) -> Recommender:
    """The model registered as ``name`` with its :attr:`~zenrec.models.base.Recommender.test_config`
    (hyper-parameters small enough to fit the fixtures in seconds); ``params`` override it."""
    cls = get_model_class(name)
    return cls(**{**cls.test_config, **params})


def check_model(name: str, known_answer_rate: float = 1.0, **params: Any) -> None:
    """Run every check on the model registered as ``name``, at its ``test_config`` (``params`` override it)."""
    cls = get_model_class(name)
    check_config_round_trip(cls)
    model = small_model(name, **params)
    if name != "pop":
        check_known_answer(model, min_hit_rate=known_answer_rate)
    else:
        model.fit(checkerboard())
    users = np.arange(0, model.n_users_, 7)
    data, _ = known_answer_fixture(model)
    check_vectors(model, users)
    check_history(model, data)
    check_finite(model, users)
    check_batch_equals_single(model, users)
    check_save_load(model, users)
    check_unknown_user(model)
