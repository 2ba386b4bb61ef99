"""Multi-task click + purchase model: shared-bottom or MMoE towers, ESMM-style ranking.

Two tasks are learnt from logs with several event types:

* **click** — the user engaged with the item: any event that is not a mere
  exposure (``exposure_events``, e.g. ``view``), purchases included;
* **purchase** — the user bought it (``purchase_events``).

Training samples are every (user, item) pair of the log (exposed-only pairs
are click negatives) plus ``negatives`` uniformly drawn items per pair
(negatives of both tasks).  With ``objective="esmm"`` (Ma et al., 2018) the
second head predicts the conversion rate ``p(purchase | click)`` and the
purchase label is fitted by ``p(click) · p(purchase | click)`` over all
samples, so the sparse purchase task borrows the dense click task's
structure; ``objective="independent"`` fits ``p(purchase)`` directly.

The network has a user side and an item side, each an MMoE (``experts``
small MLPs, one softmax gate per task) or a shared bottom MLP, followed by a
tower per task.  The user side reads the user's id embedding plus the mean
embedding of the items the user engaged with in training (the target item
left out while training).  A task's logit is the dot product of its user
and item tower outputs plus an item bias, so full ranking over every item
is one matrix product per task.

With ``wide=True`` (the default) each task's logit also gets a *wide*,
item-item part, as in Wide & Deep (Cheng et al., 2016): ``a_t · x_u B_t``,
where ``x_u`` is the user's engaged items and ``B_t`` the closed-form,
zero-diagonal ridge regression from engaged items to task t's labels (for
the click task this is exactly EASE; for purchases it regresses the
purchase matrix on every behaviour, sharing one Gram inverse).  The deep
towers and the scales ``a_t`` are then trained around it, so sparse users
get the item-to-item evidence a factorised model alone misses.

The ranking score is the configurable combination
``w_click · log p(click) + w_purchase · log p(second head)``
(``ranking_weights``); the default ``(1, 1)`` ranks by ``log p(click) ·
p(purchase | click)``, the ESMM click-and-purchase probability (a log keeps
tiny probabilities apart).  :meth:`MultiTask.score_task` gives each task's
probability.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from zenrec.data.interactions import Interactions
from zenrec.data.sparse import pack_csr, unpack_csr
from zenrec.errors import ConfigError, DataError
from zenrec.models.base import ModelConfig
from zenrec.models.explain import Contribution, Explanation, explain_scores
from zenrec.models.neural import TorchRecommender
from zenrec.models.query import Query, Vectors
from zenrec.train.negatives import SamplerKind
from zenrec.train.params import BatchSize, EmbeddingL2, Epochs, LearningRate, Optimizer, Patience

__all__ = ["MultiTask", "MultiTaskConfig", "TASKS", "auc", "sampled_auc", "task_labels"]

log = logging.getLogger(__name__)

#: Tasks :meth:`MultiTask.score_task` answers: p(click), p(purchase) and, with
#: ``objective="esmm"``, the conversion rate p(purchase | click).
TASKS: tuple[str, ...] = ("click", "purchase", "cvr")


class MultiTaskConfig(ModelConfig):
    """Hyper-parameters of :class:`MultiTask`."""

    architecture: Literal["shared_bottom", "mmoe"] = Field(
        "mmoe", description="shared_bottom: one MLP under the task towers; mmoe: experts mixed by a gate per task"
    )
    factors: int = Field(64, ge=1, description="embedding size and tower output size")
    experts: int = Field(4, ge=1, description="experts per side (mmoe)")
    expert_size: int = Field(64, ge=1, description="hidden width of each expert / of the shared bottom")
    history: bool = Field(True, description="add the mean embedding of the user's training items to the user input")
    user_embedding: bool = Field(
        True, description="learn an id embedding per user (False: a user is the mean of its history, as in FISM)"
    )
    objective: Literal["esmm", "independent"] = Field(
        "esmm", description="esmm: purchase = p(click)·p(purchase|click) on every sample; independent: p(purchase) "
        "from its own head"
    )
    purchase_events: tuple[str, ...] = Field(
        ("purchase", "buy"), description="event names that count as a purchase (those present are used)"
    )
    exposure_events: tuple[str, ...] = Field(
        ("view", "impression"), description="event names that only expose an item (click negatives when alone)"
    )
    ranking_weights: tuple[float, float] = Field(
        (1.0, 1.0), description="score = w0·log p(click) + w1·log p(second head: cvr for esmm, purchase otherwise)"
    )
    wide: bool | Literal["auto"] = Field(
        "auto", description="add a closed-form item-item part to each task's logit (wide & deep): a zero-diagonal "
        "ridge regression from the user's engaged items to the task's labels, scaled by a learned weight; "
        "auto: on up to 'wide_max_items' items"
    )
    wide_reg: float = Field(300.0, gt=0, description="L2 regularisation of the wide part (as EASE's 'reg')")
    wide_dropout: float = Field(0.2, ge=0, lt=1, description="EDLAE emphasis of the wide part (as EASE's 'dropout')")
    wide_user_weighting: float = Field(
        0.5, ge=0, le=2, description="heavy-user damping of the wide part (as EASE's 'user_weighting')"
    )
    wide_init_scale: float = Field(
        100.0, description="initial weight of the wide part in each task's logit (learned from there)"
    )
    wide_max_items: int = Field(
        20_000, ge=1, description="largest catalogue for the wide part (it holds three float32 n×n matrices "
        "while fitting and two after): wide='auto' leaves it out above, wide=True refuses"
    )
    click_loss_weight: float = Field(1.0, ge=0, description="weight of the click loss against the purchase loss")
    negatives: int = Field(4, ge=1, description="sampled negative items per training pair")
    sampler: SamplerKind = Field(
        "popularity", description="how negatives are drawn: uniformly, or in proportion to item popularity^0.75 "
        "(harder negatives: popularity alone no longer separates them)"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside experts and towers")
    optimizer: Optimizer = "adam"
    lr: LearningRate = 2e-3
    embedding_l2: EmbeddingL2 = 1e-6
    batch_size: BatchSize = 1024
    epochs: Epochs = 40
    patience: Patience = 3  # on purchase NDCG@10
    init_std: float = Field(0.05, gt=0, description="std of the initial embeddings")
    valid_users: int = Field(
        0, ge=0, description="early-stop on at most this many random validation users (0 = all; speeds up large data)"
    )

    @model_validator(mode="after")
    def _some_user_input(self) -> MultiTaskConfig:
        if not (self.history or self.user_embedding):
            raise ValueError("history and user_embedding cannot both be False: users would have no input")
        return self


# ----------------------------------------------------------------------- labels
def _event_codes(inter: Interactions, names: tuple[str, ...]) -> np.ndarray:
    return np.flatnonzero(np.isin(np.asarray(inter.event_names, dtype=object), list(names)))


def task_labels(inter: Interactions, purchase_events: tuple[str, ...] = ("purchase", "buy"),
                exposure_events: tuple[str, ...] = ("view", "impression")) -> sp.csr_matrix:
    """users × items matrix of per-pair labels: 0 exposed only, 1 clicked, 2 purchased.

    A purchase implies a click.  Interactions without event names count
    every event as a purchase (a purchase-only log).
    """
    if not inter.event_names:
        code = np.full(len(inter), 2, dtype=np.int8)
    else:
        purchase = np.isin(inter.event, _event_codes(inter, purchase_events))
        exposure = np.isin(inter.event, _event_codes(inter, exposure_events))
        code = np.where(purchase, 2, np.where(exposure, 0, 1)).astype(np.int8)
    key = inter.user.astype(np.int64) * inter.n_items + inter.item
    order = np.lexsort((-code, key))
    key, code = key[order], code[order]
    first = np.concatenate([[True], key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=bool)
    key, code = key[first], code[first]
    out = sp.csr_matrix((code.astype(np.float32) + 1, (key // inter.n_items, key % inter.n_items)),
                        shape=(inter.n_users, inter.n_items))
    out.data -= 1  # stored label + 1, so that exposed-only pairs (0) stay stored
    return out


def purchases_of(inter: Interactions, purchase_events: tuple[str, ...] = ("purchase", "buy")) -> Interactions:
    """The purchase events of ``inter`` (all of them when it has no event names)."""
    if not inter.event_names:
        return inter
    return inter.subset(np.isin(inter.event, _event_codes(inter, purchase_events)))


# ------------------------------------------------------------------------- AUC
def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with mid-ranks for ties); NaN without both classes."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    # mid-ranks (1-based) of tied runs
    starts = np.concatenate([[True], s[1:] != s[:-1]])
    run = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.concatenate([first[1:], [len(s)]]) - 1
    mid = (first + last) / 2.0 + 1.0
    ranks = np.empty(len(s))
    ranks[order] = mid[run]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def sampled_auc(score_fn: Any, truth: Interactions, exclude: list[Interactions] | tuple = (),
                negatives: int = 100, seed: int = 0, batch_size: int = 1024) -> float:
    """AUC of held-out pairs against ``negatives`` random items per user.

    Negatives are drawn uniformly among the items neither in the user's
    ``truth`` nor in ``exclude``; ``score_fn(users)`` returns users × items
    scores.  One AUC over all pooled (positive, negative) samples.
    """
    t = truth.binary
    ex = t.copy()
    for e in exclude:
        ex = ex + e.binary
    ex = ex.tocsr()
    users = np.flatnonzero(np.diff(t.indptr) > 0)
    rng = np.random.default_rng(seed)
    labs, vals = [], []
    for s in range(0, len(users), batch_size):
        u = users[s : s + batch_size]
        block = np.asarray(score_fn(u), dtype=np.float64)
        pos = t[u].tocoo()
        labs.append(np.ones(pos.nnz, dtype=bool))
        vals.append(block[pos.row, pos.col])
        neg = rng.integers(0, t.shape[1], (len(u), negatives))
        seen = np.asarray(ex[u][np.repeat(np.arange(len(u)), negatives), neg.ravel()]).ravel() > 0
        r = np.repeat(np.arange(len(u)), negatives)[~seen]
        labs.append(np.zeros(len(r), dtype=bool))
        vals.append(block[r, neg.ravel()[~seen]])
    return auc(np.concatenate(labs), np.concatenate(vals))


# ------------------------------------------------------------------------ model
def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


class MultiTask(TorchRecommender):
    """Click and purchase learnt together; ranks by a combination of both (see the module docstring)."""

    name = "multitask"
    Config = MultiTaskConfig
    test_config = {"factors": 8, "experts": 2, "expert_size": 8, "epochs": 3, "batch_size": 256}

    default_threads = 1  # a step is a few thousand embedding look-ups: thread hand-offs cost more than they save

    # -------------------------------------------------------------------- fit
    def _build(self, train: Interactions, device: Any, seed: int) -> Any:
        import torch

        from zenrec.models.nets.multitask import MultiTaskNet
        from zenrec.train.negatives import NegativeSampler

        c = self.config
        labels = task_labels(train, c.purchase_events, c.exposure_events).tocoo()
        if not (labels.data == 2).any():
            raise DataError(
                f"no purchase event in the training data: MultiTask needs events named one of "
                f"{list(c.purchase_events)}; the event names are {list(train.event_names)}"
            )
        self.task_rates_ = np.array([(labels.data >= 1).mean(), (labels.data == 2).mean()], dtype=np.float32)
        hist = self._engaged(train, labels)  # the user's engaged items feed the history input
        self.hist_ = hist.tocsr().astype(np.float32)
        self.hist_.sort_indices()
        self._wide = None
        self.uses_wide_ = c.wide is True or (c.wide == "auto" and train.n_items <= c.wide_max_items)
        if c.wide == "auto" and not self.uses_wide_:
            log.info("multitask: %d items > wide_max_items=%d, training without the wide part",
                     train.n_items, c.wide_max_items)
        if self.uses_wide_:
            self.wide_ = self._fit_wide(self.hist_, labels)
            self._wide = torch.as_tensor(self.wide_, device=device)
        net = MultiTaskNet(train.n_users, train.n_items, architecture=c.architecture, factors=c.factors,
                           experts=c.experts, expert_size=c.expert_size, dropout=c.dropout,
                           user_embedding=c.user_embedding, history=c.history, init_std=c.init_std,
                           wide_init_scale=c.wide_init_scale).to(device)
        self._gen = torch.Generator(device=device).manual_seed(seed)
        self._samples = tuple(torch.as_tensor(a, dtype=torch.long, device=device)
                              for a in (labels.row, labels.col, labels.data))
        self._hist = (torch.as_tensor(hist.indptr, dtype=torch.long, device=device),
                      torch.as_tensor(hist.indices, dtype=torch.long, device=device))
        counts = np.bincount(labels.col, minlength=train.n_items) if c.sampler == "popularity" else None
        self._sampler = NegativeSampler(train.n_items, c.sampler, counts, device=device, generator=self._gen)
        return net

    def _batches(self, epoch: int) -> Iterator[Any]:
        """Every labelled pair once, in random order, each with ``negatives`` sampled items."""
        import torch

        c, (users, items, labels) = self.config, self._samples
        for b in self._epoch_batches(len(users), c.batch_size, users.device):
            neg = self._sampler.sample((len(b), c.negatives))
            yield users[b], torch.cat([items[b][:, None], neg], dim=1), labels[b]

    def _loss(self, batch: Any) -> Any:
        import torch

        from zenrec.models.nets.multitask import wide_pairs

        c, net = self.config, self.net_
        u, items, y = batch
        uvecs, ue = net.users(u, *self._hist, leave_out=items[:, 0] if c.history else None)
        ivecs, ie = net.items(items)
        logits = [(uv[:, None, :] * iv).sum(-1) + net.ibias(items)[..., t] + net.bias[t]
                  for t, (uv, iv) in enumerate(zip(uvecs, ivecs, strict=False))]  # 2 × (B × (1+n))
        if self._wide is not None:
            part = wide_pairs(self._wide, u, items, *self._hist)
            logits = [lg + net.wide_scale[t] * part[t] for t, lg in enumerate(logits)]
        y_click = torch.zeros_like(logits[0])
        y_buy = torch.zeros_like(logits[0])
        y_click[:, 0] = (y >= 1).float()
        y_buy[:, 0] = (y == 2).float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        loss_click = bce(logits[0], y_click)
        if c.objective == "esmm":
            logp = torch.nn.functional.logsigmoid(logits[0]) + torch.nn.functional.logsigmoid(logits[1])
            log1m = torch.log(-torch.expm1(logp.clamp(max=-1e-6)))
            loss_buy = -(y_buy * logp + (1 - y_buy) * log1m).mean()
        else:
            loss_buy = bce(logits[1], y_buy)
        reg = c.embedding_l2 * (ue.pow(2).sum() + ie.pow(2).sum()) / len(u)
        return c.click_loss_weight * loss_click + loss_buy + reg

    def _validation(self, train: Interactions, valid: Interactions | None,
                    seed: int) -> tuple[Interactions, Interactions, np.ndarray | None] | None:
        """Purchase NDCG@10: held-out purchases, training purchases masked, on ``valid_users`` random users."""
        c = self.config
        if valid is None or not len(valid):
            return None
        valid_buys = purchases_of(valid, c.purchase_events)
        if not len(valid_buys):
            return None
        users = np.flatnonzero(np.diff(valid_buys.binary.indptr) > 0)
        if c.valid_users and len(users) > c.valid_users:
            users = np.sort(np.random.default_rng(seed).choice(users, c.valid_users, replace=False))
        return valid_buys, purchases_of(train, c.purchase_events), users

    def _after_fit(self) -> None:
        del self.net_, self._wide, self._gen, self._samples, self._hist, self._sampler

    def _engaged(self, inter: Interactions, labels: sp.coo_matrix | None = None) -> sp.csr_matrix:
        """The items each user engaged with (the history input and the wide part's input): every pair, or the
        click-labelled ones when the log has event types."""
        if not inter.event_names:
            return inter.binary
        c = self.config
        labels = labels if labels is not None else task_labels(inter, c.purchase_events, c.exposure_events).tocoo()
        engaged = labels.data >= 1
        return sp.csr_matrix((np.ones(int(engaged.sum()), dtype=np.float32),
                              (labels.row[engaged], labels.col[engaged])), shape=labels.shape)

    def _remember(self, full: Interactions) -> None:
        """Score from every event: the history input and the wide part read the held-out validation events too."""
        import torch

        hist = self._engaged(full)
        self.hist_ = hist.tocsr().astype(np.float32)
        self.hist_.sort_indices()
        device = self._hist[0].device
        self._hist = (torch.as_tensor(hist.indptr, dtype=torch.long, device=device),
                      torch.as_tensor(hist.indices, dtype=torch.long, device=device))

    def _n_batches(self) -> int:
        return -(-len(self._samples[0]) // self.config.batch_size)

    def _fit_wide(self, x: sp.csr_matrix, labels: sp.coo_matrix) -> np.ndarray:
        """``2 × n × n`` float32: the zero-diagonal ridge regressions of clicks and purchases on ``x``.

        With ``P = (XᵀWX + Λ)⁻¹`` (as EASE), task t's unconstrained solution is
        ``P XᵀW Y_t``; the zero-diagonal constraint subtracts ``P diag(γ)``
        with ``γ_j`` chosen so that ``B_jj = 0`` (an item never predicts
        itself).  For clicks ``Y = X`` and this is EASE's ``I − P diag(1/P_jj)``.
        """
        from zenrec.models.ease import ease_memory_bytes, regularised_gram_inverse, user_row_weights

        c = self.config
        n = x.shape[1]
        if n > c.wide_max_items:
            raise ConfigError(
                f"MultiTask's wide part on {n:,} items needs about {1.5 * ease_memory_bytes(n) / 2**30:.1f} GiB; "
                f"the 'wide_max_items' parameter is {c.wide_max_items:,}. Raise it, set wide='auto' or False, "
                "or filter rare items first."
            )
        p = regularised_gram_inverse(x, c.wide_reg, c.wide_dropout, c.wide_user_weighting)
        d = np.diag(p).astype(np.float64)
        buy = labels.data == 2
        y = sp.csr_matrix((np.ones(int(buy.sum()), dtype=np.float32), (labels.row[buy], labels.col[buy])),
                          shape=x.shape)
        w = user_row_weights(x, c.wide_user_weighting) if c.wide_user_weighting else np.ones(x.shape[0], np.float32)
        s = (x.T @ sp.diags(w) @ y).tocsr().astype(np.float32)  # n × n, sparse
        out = np.empty((2, n, n), dtype=np.float32)
        out[1] = (s.T @ p).T  # P·S, P symmetric
        gamma = np.diag(out[1]) / d
        out[1] -= p * gamma[None, :].astype(np.float32)
        np.divide(p, -d[None, :].astype(np.float32), out=out[0])
        for t in range(2):
            out[t][np.diag_indices(n)] = 0.0
        log.info("multitask: wide part on %d items fitted", n)
        return out

    def _publish(self) -> None:
        """Per-task user and item vectors of every id, for scoring."""
        import torch

        net = self.net_
        was_training = net.training
        net.eval()
        with torch.no_grad():
            dev = self._hist[0].device
            iv = net.item_side(net.item.weight)
            uvs: list[list[Any]] = [[], []]
            for s in range(0, int(self.n_users_), 8192):
                u = torch.arange(s, min(int(self.n_users_), s + 8192), device=dev)
                vecs, _ = net.users(u, *self._hist)
                for t in range(2):
                    uvs[t].append(vecs[t])
            self.user_vecs_ = np.stack([torch.cat(x).cpu().numpy() for x in uvs]).astype(np.float32)
            self.item_vecs_ = np.stack([x.cpu().numpy() for x in iv]).astype(np.float32)
            self.item_bias_ = (net.ibias.weight + net.bias).T.cpu().numpy().astype(np.float32).copy()
            self.wide_scale_ = net.wide_scale.detach().cpu().numpy().astype(np.float32).copy()
        net.train(was_training)

    # ---------------------------------------------------------------- scoring
    def _logits(self, users: np.ndarray, t: int) -> np.ndarray:
        out = self.user_vecs_[t][users] @ self.item_vecs_[t].T + self.item_bias_[t][None, :]
        if self.uses_wide_:
            out += self.wide_scale_[t] * np.asarray(self.hist_[users] @ self.wide_[t], dtype=np.float32)
        return out

    def _score(self, users: np.ndarray) -> np.ndarray:
        w = self.config.ranking_weights
        out = np.zeros((len(users), self.n_items_), dtype=np.float32)
        for t in range(2):
            if w[t]:
                out += np.float32(w[t]) * _log_sigmoid(self._logits(users, t))
        return out

    def explain(self, query: Query, items: np.ndarray) -> list[Explanation]:
        """The ranking score split into its task terms ``w_t · log σ(logit_t)``: the ``click`` part and the
        ``purchase`` part (``purchase after click`` with ``objective="esmm"``); they sum to the score."""
        items, scores, popular = explain_scores(self, query, items)
        if popular is not None:
            return popular
        u = np.asarray([int(query.user)])
        w = self.config.ranking_weights
        names = ("click", "purchase after click" if self.config.objective == "esmm" else "purchase")
        terms = [np.float32(w[t]) * _log_sigmoid(self._logits(u, t))[0, items] if w[t] else np.zeros(len(items))
                 for t in range(2)]
        out = []
        for j, i in enumerate(items):
            parts = tuple(sorted((Contribution(float(terms[t][j]), name=names[t]) for t in range(2) if w[t]),
                                 key=lambda c: -abs(c.weight)))
            total = float(sum(c.weight for c in parts))
            out.append(Explanation(int(i), float(scores[j]), "tasks", parts, 0.0, float(scores[j]) - total,
                                   note="log-probability terms: the one nearest 0 pulls the item up the least"))
        return out

    def score_task(self, users: np.ndarray | list[int], task: str = "purchase") -> np.ndarray:
        """``len(users) × n_items`` probabilities of one task (:data:`TASKS`) for known users.

        ``"purchase"`` is p(click)·p(purchase | click) with ``objective="esmm"``,
        the purchase head's own probability otherwise; ``"cvr"`` (esmm only)
        is p(purchase | click).
        """
        self._check_fitted()
        if task not in TASKS or (task == "cvr" and self.config.objective != "esmm"):
            allowed = TASKS if self.config.objective == "esmm" else TASKS[:2]
            raise ConfigError(f"the 'task' parameter must be one of {', '.join(allowed)}; got {task!r}")
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        if len(users) and (users.min() < 0 or users.max() >= self.n_users_):
            from zenrec.errors import UnknownIdError

            raise UnknownIdError(f"score_task scores known users only; user indices lie in [0, {self.n_users_})")
        if task == "click":
            logp = _log_sigmoid(self._logits(users, 0))
        elif task == "cvr" or self.config.objective == "independent":
            logp = _log_sigmoid(self._logits(users, 1))
        else:
            logp = _log_sigmoid(self._logits(users, 0)) + _log_sigmoid(self._logits(users, 1))
        return np.exp(logp).astype(np.float32)

    # ------------------------------------------------------------ persistence
    def _ranking_head(self) -> int | None:
        """The one head the ranking score reads (weights like (0, w) or (w, 0)), else None."""
        w = self.config.ranking_weights
        heads = [t for t in range(2) if w[t]]
        return heads[0] if len(heads) == 1 else None

    def vectors(self) -> Vectors | None:
        """With one ranking head and no wide part, the score is ``w · log σ(u·v + b)``: vectors with that link.

        Two heads (the default ranks by both) or a wide part make the score no
        function of one dot product: None, and serving scores exactly.
        """
        self._check_fitted()
        t = self._ranking_head()
        if t is None or self.uses_wide_:
            return None
        w = np.float32(self.config.ranking_weights[t])
        return Vectors(self.user_vecs_[t], self.item_vecs_[t], self.item_bias_[t],
                       link=lambda d: w * _log_sigmoid(d))

    def item_embeddings(self) -> np.ndarray:
        """The item vectors of the ranking head (the purchase head when both rank): similar items by cosine."""
        self._check_fitted()
        t = self._ranking_head()
        return self.item_vecs_[1 if t is None else t]

    def _state(self) -> dict[str, np.ndarray]:
        state = {"user_vecs": self.user_vecs_, "item_vecs": self.item_vecs_, "item_bias": self.item_bias_}
        if self.uses_wide_:
            state.update(wide=self.wide_, wide_scale=self.wide_scale_, **pack_csr("hist", self.hist_, binary=True))
        return state

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.uses_wide_ = "wide" in arrays
        if self.uses_wide_:
            self.wide_ = arrays["wide"]
            self.wide_scale_ = arrays["wide_scale"]
            self.hist_ = unpack_csr(arrays, "hist", (self.n_users_, self.n_items_))
        self.user_vecs_ = arrays["user_vecs"]
        self.item_vecs_ = arrays["item_vecs"]
        self.item_bias_ = arrays["item_bias"]
        if self.user_vecs_.shape[0] != 2 or self.item_vecs_.shape[1] != self.n_items_:
            raise ValueError(f"task vectors of shape {self.user_vecs_.shape} / {self.item_vecs_.shape}")
