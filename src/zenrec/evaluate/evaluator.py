"""Full-ranking evaluation (and an optional, labelled sampled mode).

Every item is ranked for every test user, except the user's training items
(and validation items when testing), which are masked — the protocol of
RecBole and of the papers worth comparing with.  Scoring happens in blocks of
users; top-k uses ``argpartition``; hits are found by a sorted-key lookup, so
nothing loops over users in Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from zenrec.data.interactions import Interactions
from zenrec.data.splits import Split
from zenrec.errors import ConfigError
from zenrec.evaluate import metrics as M
from zenrec.evaluate.ranking import hits_matrix, mask_rows, topk

__all__ = ["EvalResult", "evaluate", "evaluate_split", "DEFAULT_METRICS", "BEYOND_METRICS"]

DEFAULT_METRICS: tuple[str, ...] = ("recall", "precision", "ndcg", "mrr", "map", "hit")
BEYOND_METRICS: tuple[str, ...] = ("coverage", "novelty", "diversity", "avg_pop")

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass
class EvalResult:
    """Mean metric values (``"ndcg@10"`` → value) and how they were obtained."""

    metrics: dict[str, float]
    n_users: int
    seconds: float
    mode: str = "full"
    per_user: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"metrics": self.metrics, "n_users": self.n_users, "seconds": self.seconds, "mode": self.mode}


def _batch_size(n_items: int) -> int:
    return int(np.clip((1 << 24) // max(n_items, 1), 64, 8192))


def _scorer(model: Any) -> Scorer:
    if callable(model) and not hasattr(model, "score"):
        return model
    return model.score


def _sample_candidates(
    rng: np.random.Generator, forbidden: np.ndarray, n_neg: int
) -> np.ndarray:
    """Boolean mask of ``n_neg`` uniformly drawn items per row among the allowed ones."""
    keys = rng.random(forbidden.shape, dtype=np.float32)
    keys[forbidden] = np.inf
    n_neg = min(n_neg, forbidden.shape[1])
    pick = np.argpartition(keys, n_neg - 1, axis=1)[:, :n_neg]
    mask = np.zeros(forbidden.shape, dtype=bool)
    np.put_along_axis(mask, pick, True, axis=1)
    return mask & ~forbidden


def evaluate(
    model: Any,
    truth: Interactions | sp.csr_matrix,
    exclude: Sequence[Interactions | sp.csr_matrix] = (),
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = DEFAULT_METRICS,
    train: Interactions | None = None,
    beyond: bool = True,
    sampled: int | None = None,
    seed: int = 0,
    users: np.ndarray | None = None,
    batch_size: int | None = None,
    keep_per_user: bool = False,
) -> EvalResult:
    """Evaluate a model (or any ``users → score block`` callable) by full ranking.

    ``truth`` holds the held-out items; users with none are skipped.
    ``exclude`` lists matrices whose items are masked (training, validation).
    ``train`` enables the beyond-accuracy metrics (popularity, item vectors).
    ``sampled=N`` ranks each user's held-out items among N random unseen
    items instead (reported with mode ``"sampled-N"``).
    """
    t0 = time.perf_counter()
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] <= 0:
        raise ConfigError(f"the 'ks' parameter must hold positive integers; got {list(ks)}")
    unknown = [m for m in metrics if m not in M.ACCURACY_METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; available: {', '.join(M.ACCURACY_METRICS)}")
    if sampled is not None and sampled <= 0:
        raise ConfigError(f"the 'sampled' parameter must be a positive number of negatives; got {sampled}")
    t = truth.binary if isinstance(truth, Interactions) else sp.csr_matrix(truth)
    n_users, n_items = t.shape
    ex = [e.binary if isinstance(e, Interactions) else sp.csr_matrix(e) for e in exclude]
    excl = sum(ex[1:], ex[0]).tocsr() if ex else sp.csr_matrix((n_users, n_items), dtype=np.float32)
    n_rel_all = np.diff(t.indptr)
    if users is None:
        users = np.flatnonzero(n_rel_all > 0)
    users = np.asarray(users, dtype=np.int64)
    users = users[n_rel_all[users] > 0]
    if len(users) == 0:
        raise ConfigError("no user has held-out items to evaluate")
    kmax = ks[-1]
    bs = batch_size or _batch_size(n_items)
    rng = np.random.default_rng(seed)
    score = _scorer(model)
    tops, hits = [], []
    for s in range(0, len(users), bs):
        u = users[s : s + bs]
        block = np.array(score(u), dtype=np.float32, copy=True)
        if block.shape != (len(u), n_items):
            raise ConfigError(f"scorer returned shape {block.shape}; expected {(len(u), n_items)}")
        mask_rows(block, excl, u)
        if sampled is not None:
            tb = t[u].toarray().astype(bool)
            forbidden = tb | (excl[u].toarray() > 0)
            allowed = _sample_candidates(rng, forbidden, sampled) | tb
            block[~allowed] = -np.inf
        top, _ = topk(block, kmax)
        tops.append(top)
        hits.append(hits_matrix(top, t[u]))
    top = np.concatenate(tops)
    hit = np.concatenate(hits)
    n_rel = n_rel_all[users]
    out: dict[str, float] = {}
    per_user: dict[str, np.ndarray] = {}
    for k in ks:
        for m in metrics:
            vals = M.ACCURACY_METRICS[m](hit, n_rel, k)
            out[f"{m}@{k}"] = float(vals.mean())
            if keep_per_user:
                per_user[f"{m}@{k}"] = vals
    if beyond and train is not None and sampled is None:
        item_users = train.item_counts()
        item_vectors = train.binary.T.tocsr()
        for k in ks:
            tk = top[:, :k]
            out[f"coverage@{k}"] = M.coverage(tk, n_items)
            out[f"novelty@{k}"] = M.novelty(tk, item_users, train.n_users)
            out[f"diversity@{k}"] = M.intra_list_diversity(tk, item_vectors)
            out[f"avg_pop@{k}"] = M.average_popularity(tk, item_users)
    mode = "full" if sampled is None else f"sampled-{sampled}"
    return EvalResult(out, len(users), time.perf_counter() - t0, mode, per_user)


def evaluate_split(
    model: Any,
    split: Split,
    part: Literal["valid", "test"] = "test",
    **kwargs: Any,
) -> EvalResult:
    """Evaluate on a split's validation or test part with the protocol's masking.

    Validation masks training items; test masks training and validation items.
    """
    if part == "valid":
        if split.valid is None:
            raise ConfigError("this split has no validation part")
        return evaluate(model, split.valid, [split.train], train=split.train, **kwargs)
    if part != "test":
        raise ConfigError(f"the 'part' parameter must be 'valid' or 'test'; got {part!r}")
    exclude = [split.train] if split.valid is None else [split.train, split.valid]
    return evaluate(model, split.test, exclude, train=split.train, **kwargs)
