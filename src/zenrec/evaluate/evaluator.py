"""Full-ranking evaluation (and an optional, labelled sampled mode).

Every item is ranked for every test user, except the user's training items
(and validation items when testing), which are masked — the protocol of
RecBole and of the papers worth comparing with.  Scoring happens in blocks of
users; top-k uses ``argpartition``; hits are found by a sorted-key lookup, so
nothing loops over users in Python.

**The masking rule.**  A held-out item is a *target* only if it is not
already in the user's history that is masked: the training part when
validating, training and validation when testing (in general, every
``exclude`` matrix).  Such an item can never be recommended, so counting it
would only deflate recall and NDCG; it is removed from the user's truth, and
the number removed is reported (:attr:`EvalResult.targets`).  A user left
with no target is not evaluated (counted as ``users_without_target``).  The
rule holds in full-ranking and sampled mode alike.

**Target event types.**  :func:`evaluate_split` takes the truth from
:meth:`~zenrec.data.splits.Split.targets`: with target event types (e.g.
purchases), only held-out events of those types are targets, while the
masked history keeps every type (a cart in training masks the item, so a
purchase of it in test is no target).
"""

from __future__ import annotations

import logging
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
from zenrec.evaluate.metrics import hits_matrix
from zenrec.retrieval.score import filtered_topk

__all__ = ["EvalResult", "evaluate", "evaluate_split", "validation_ndcg", "DEFAULT_METRICS", "BEYOND_METRICS"]

log = logging.getLogger(__name__)

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
    #: with ``keep_per_user`` (or ``per_user_metrics``, users only): the evaluated users, their top lists
    #: (item indices, -1 = empty slot) and scores
    users: np.ndarray | None = field(default=None, repr=False)
    top: np.ndarray | None = field(default=None, repr=False)
    top_scores: np.ndarray | None = field(default=None, repr=False)
    #: how the targets were counted, in (user, item) pairs: ``held_out`` (before the rules), ``other_type``
    #: (not of a target event type), ``seen`` (already in the masked history: the masking rule), ``kept``
    #: (the targets scored), and ``users_without_target`` (users with held-out items but no target; not evaluated)
    targets: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"metrics": self.metrics, "n_users": self.n_users, "seconds": self.seconds, "mode": self.mode,
                "targets": dict(self.targets)}


def _batch_size(n_items: int) -> int:
    return int(np.clip((1 << 24) // max(n_items, 1), 64, 8192))


def _scorer(model: Any, history: Interactions | None = None) -> Scorer:
    if callable(model) and not hasattr(model, "score"):
        return model
    if history is not None and getattr(model, "supports_history", False):
        return lambda users: model.score(users, history=history)
    return model.score


def _binary(m: Interactions | sp.spmatrix) -> sp.csr_matrix:
    """0/1 CSR matrix of the stored non-zero pairs (duplicates merged, explicit zeros dropped)."""
    if isinstance(m, Interactions):
        return m.binary
    if not (sp.issparse(m) or isinstance(m, np.ndarray)):
        raise ConfigError(f"expected Interactions or a users × items matrix; got {type(m).__name__}")
    c = sp.csr_matrix(m, dtype=np.float32, copy=True)
    c.sum_duplicates()
    c.data = (c.data != 0).astype(np.float32)
    c.eliminate_zeros()
    return c


def _union(mats: list[sp.csr_matrix], n_users: int, n_items: int) -> sp.csr_matrix:
    """Rows ``0..n_users-1`` of the union of ``mats`` (short matrices padded with empty rows)."""
    out = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    for m in mats:
        if m.shape[0] < n_users:
            m = sp.vstack([m, sp.csr_matrix((n_users - m.shape[0], n_items), dtype=np.float32)], format="csr")
        out = out + m[:n_users]
    return out.tocsr()


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
    history: Interactions | None = None,
    per_user_metrics: bool = False,
) -> EvalResult:
    """Evaluate a model (or any ``users → score block`` callable) by full ranking.

    ``truth`` holds the held-out items; users with none are skipped.
    ``exclude`` lists matrices whose items are masked (training, validation);
    by the masking rule (module docstring) a truth item that is also masked
    is no target: it is removed from the truth and counted in
    ``EvalResult.targets["seen"]``, and users left without a target are not
    evaluated.  The evaluated users (``EvalResult.users``) therefore depend on
    ``truth``, ``exclude`` and ``users`` only, never on the model: every model
    evaluated on the same data gets the same users in the same order
    (ascending, or that of ``users``).  ``per_user_metrics`` keeps one value per evaluated user for each
    accuracy metric (``EvalResult.per_user``, aligned with ``EvalResult.users``);
    ``keep_per_user`` keeps those and the top lists and scores too.
    ``train`` enables the beyond-accuracy metrics (popularity, item vectors).
    ``sampled=N`` ranks each user's held-out items among N random unseen
    items instead (reported with mode ``"sampled-N"``; no beyond-accuracy
    metrics), the candidates drawn from ``seed``.

    Masked items are never recommended: when a user has fewer than k
    unmasked items, the remaining slots stay empty (they count as misses and
    are left out of coverage, novelty, diversity and popularity).  NaN scores
    rank below every real score, with a logged warning.  Raw matrices given
    as ``truth``/``exclude`` are binarised (duplicates merged, stored zeros
    dropped).
    """
    t0 = time.perf_counter()
    ks_in = [ks] if isinstance(ks, (int, np.integer)) else list(ks)
    try:
        ks = sorted({int(k) for k in ks_in})
    except (TypeError, ValueError):
        ks = []
    if not ks or ks[0] <= 0 or any(int(k) != k for k in ks_in):
        raise ConfigError(f"the 'ks' parameter must hold positive integers; got {ks_in}")
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in M.ACCURACY_METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; available: {', '.join(M.ACCURACY_METRICS)}")
    if sampled is not None and (not isinstance(sampled, (int, np.integer)) or sampled <= 0):
        raise ConfigError(f"the 'sampled' parameter must be a positive number of negatives; got {sampled!r}")
    t = _binary(truth)
    n_users, n_items = t.shape
    ex = [_binary(e) for e in exclude]
    for e in ex:
        if e.shape[1] != n_items:
            raise ConfigError(f"an 'exclude' matrix has {e.shape[1]} items; the truth has {n_items}")
    excl = _union(ex, n_users, n_items)
    n_held = np.diff(t.indptr)
    # the masking rule: an item already in the masked history is no target
    seen = t.multiply(excl).tocsr()
    seen.eliminate_zeros()
    if seen.nnz:
        seen.data[:] = 1.0
        t = (t - seen).tocsr()
        t.eliminate_zeros()
    n_seen = np.diff(seen.indptr)
    n_rel_all = np.diff(t.indptr)
    if users is None:
        users = np.flatnonzero(n_held > 0)
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    if len(users) and (users.min() < 0 or users.max() >= n_users):
        raise ConfigError(f"the 'users' parameter must hold user indices in [0, {n_users}); "
                          f"got {users.min()}..{users.max()}")
    asked = np.unique(users[n_held[users] > 0])
    counts = {"held_out": int(n_held[asked].sum()), "other_type": 0, "seen": int(n_seen[asked].sum()),
              "kept": int(n_rel_all[asked].sum()), "users_without_target": int((n_rel_all[asked] == 0).sum())}
    users = users[n_rel_all[users] > 0]
    if len(users) == 0:
        why = (f" ({counts['users_without_target']} users' held-out items were all in their masked history, "
               "so none is a target)" if counts["users_without_target"] else "")
        raise ConfigError(f"no user has held-out items to evaluate{why}")
    kmax = ks[-1]
    bs = batch_size or _batch_size(n_items)
    rng = np.random.default_rng(seed)
    score = _scorer(model, history)
    tops, hits, top_vals = [], [], []
    n_nan = 0
    for s in range(0, len(users), bs):
        u = users[s : s + bs]
        block = np.asarray(score(u), dtype=np.float32)  # read only: filtered_topk does not write to it
        if block.shape != (len(u), n_items):
            raise ConfigError(f"scorer returned shape {block.shape}; expected {(len(u), n_items)}")
        nan = np.isnan(block)
        if nan.any():
            n_nan += int(nan.any(axis=1).sum())
            block = np.where(nan, np.float32(-np.inf), block)
        allowed = None
        if sampled is not None:
            tb = t[u].toarray().astype(bool)
            forbidden = tb | (excl[u].toarray() > 0)
            allowed = _sample_candidates(rng, forbidden, sampled) | tb
        # the one filtered top-k (the same as every recommend path); a slot whose score is -inf is left empty
        top, vals = filtered_topk(block, kmax, exclude=excl[u], allowed=allowed)
        top[np.isneginf(vals)] = -1
        tops.append(top)
        if keep_per_user:
            top_vals.append(vals)
        hits.append(hits_matrix(top, t[u]))
    if n_nan:
        log.warning("the scorer returned NaN scores for %d of %d users; NaN items were ranked last",
                    n_nan, len(users))
    top = np.concatenate(tops)
    hit = np.concatenate(hits)
    n_rel = n_rel_all[users]
    out: dict[str, float] = {}
    per_user: dict[str, np.ndarray] = {}
    for k in ks:
        for m in metrics:
            vals = M.ACCURACY_METRICS[m](hit, n_rel, k)
            out[f"{m}@{k}"] = float(vals.mean())
            if keep_per_user or per_user_metrics:
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
    res = EvalResult(out, len(users), time.perf_counter() - t0, mode, per_user, targets=counts)
    if keep_per_user or per_user_metrics:
        res.users = users
    if keep_per_user:
        res.top, res.top_scores = top, np.concatenate(top_vals)
    return res


def evaluate_split(
    model: Any,
    split: Split,
    part: Literal["valid", "test"] = "test",
    target_events: str | Sequence[str] | None = None,
    **kwargs: Any,
) -> EvalResult:
    """Evaluate on a split's validation or test part with the protocol's masking.

    Validation masks training items; test masks training and validation items
    (every event type); by the masking rule an item so masked is no target.
    The targets are :meth:`Split.targets <zenrec.data.splits.Split.targets>`:
    held-out events of the split's target event types, or of
    ``target_events`` when given here (canonical types such as
    ``"purchase"``, or a comma list).  In the sequential protocol, models that
    read histories score the test item from training *and* validation events
    (the item just before it).  Other keywords go to :func:`evaluate`.
    """
    if part not in ("valid", "test"):
        raise ConfigError(f"the 'part' parameter must be 'valid' or 'test'; got {part!r}")
    if part == "valid" and split.valid is None:
        raise ConfigError("this split has no validation part")
    if target_events is not None:
        split = split.with_target_events(target_events)
    held = split.valid if part == "valid" else split.test
    assert held is not None
    truth = split.targets(part)
    if part == "valid":
        exclude = [split.train]
    else:
        exclude = [split.train] if split.valid is None else [split.train, split.valid]
        if split.protocol == "sequential" and split.valid is not None:
            # the next-item task: the test item follows the validation item
            kwargs.setdefault("history", split.train_valid)
    try:
        res = evaluate(model, truth, exclude, train=split.train, **kwargs)
    except ConfigError as exc:
        if split.target_events is None or not str(exc).startswith("no user has held-out items"):
            raise
        raise ConfigError(f"no user has a held-out {' or '.join(split.target_events)} event in the {part} part "
                          f"that is a target (not already in the user's history); {exc}") from None
    if split.target_events is not None:
        # held-out pairs and users that are not targets only because of their event type
        users = kwargs.get("users")
        all_pairs, type_pairs = held.binary, truth.binary
        rows = np.arange(held.n_users) if users is None else np.unique(np.asarray(users, dtype=np.int64))
        n_all, n_type = np.diff(all_pairs.indptr)[rows], np.diff(type_pairs.indptr)[rows]
        res.targets["other_type"] = int((n_all - n_type).sum())
        res.targets["held_out"] += res.targets["other_type"]
        res.targets["users_without_target"] += int(((n_all > 0) & (n_type == 0)).sum())
    return res


def validation_ndcg(
    scorer: Any, valid: Interactions, seen: Interactions, k: int = 10, users: np.ndarray | None = None
) -> float:
    """NDCG@k on held-out validation items with ``seen`` items masked: the early-stopping signal."""
    res = evaluate(scorer, valid, [seen], ks=(k,), metrics=("ndcg",), beyond=False, users=users)
    return res.metrics[f"ndcg@{k}"]
