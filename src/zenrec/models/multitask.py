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
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from zenrec.data.interactions import Interactions
from zenrec.data.sparse import pack_csr, unpack_csr
from zenrec.errors import ConfigError, DataError
from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.train.negatives import SamplerKind
from zenrec.train.params import BatchSize, Epochs, LearningRate, Optimizer, Patience

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
    weight_decay: float = Field(1e-6, ge=0, description="L2 penalty on the embeddings used in each batch")
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
def _wide_pairs(wide: Any, u: Any, items: Any, h_ptr: Any, h_idx: Any) -> Any:
    """``2 × B × m`` wide scores ``Σ_{j ∈ history(u)} B_t[j, i]`` of users ``u`` (B) and their items (B × m)."""
    import torch

    start, end = h_ptr[u], h_ptr[u + 1]
    lens = end - start
    flat = torch.repeat_interleave(start - torch.cumsum(lens, 0) + lens, lens) + torch.arange(
        int(lens.sum()), device=u.device)
    seg = torch.repeat_interleave(torch.arange(len(u), device=u.device), lens)
    hj = h_idx[flat]
    out = torch.zeros(wide.shape[0], len(u), items.shape[1], device=u.device)
    for t in range(wide.shape[0]):
        out[t].index_add_(0, seg, wide[t][hj[:, None], items[seg]])
    return out


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


class MultiTask(Recommender):
    """Click and purchase learnt together; ranks by a combination of both (see the module docstring)."""

    name = "multitask"
    Config = MultiTaskConfig

    # ---------------------------------------------------------------- network
    def _build_net(self, n_users: int, n_items: int) -> Any:
        import torch
        from torch import nn

        c = self.config
        n_tasks = 2

        def mlp(i: int, o: int) -> nn.Module:
            layers = [nn.Linear(i, o), nn.ReLU()] + ([nn.Dropout(c.dropout)] if c.dropout else [])
            return nn.Sequential(*layers)

        class Side(nn.Module):
            """Input vector → one output vector per task (MMoE or shared bottom + towers)."""

            def __init__(self) -> None:
                super().__init__()
                k = c.experts if c.architecture == "mmoe" else 1
                self.experts = nn.ModuleList([mlp(c.factors, c.expert_size) for _ in range(k)])
                self.gates = nn.ModuleList([nn.Linear(c.factors, k) for _ in range(n_tasks)]) \
                    if c.architecture == "mmoe" else None
                self.towers = nn.ModuleList([nn.Sequential(mlp(c.expert_size, c.expert_size),
                                                           nn.Linear(c.expert_size, c.factors))
                                             for _ in range(n_tasks)])

            def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
                if self.gates is None:
                    shared = self.experts[0](x)
                    mixed = [shared] * n_tasks
                else:
                    ex = torch.stack([e(x) for e in self.experts], dim=-2)  # … × k × h
                    mixed = [(torch.softmax(g(x), dim=-1).unsqueeze(-1) * ex).sum(-2) for g in self.gates]
                # residual: the raw embedding passes by the towers, so a tower starts near MF
                return [x + t(m) for t, m in zip(self.towers, mixed, strict=False)]

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.user = nn.Embedding(n_users, c.factors)
                self.item = nn.Embedding(n_items, c.factors)
                self.hist = nn.Embedding(n_items, c.factors)
                self.ibias = nn.Embedding(n_items, n_tasks)
                self.bias = nn.Parameter(torch.zeros(n_tasks))
                self.wide_scale = nn.Parameter(torch.full((n_tasks,), c.wide_init_scale))
                self.user_side = Side()
                self.item_side = Side()
                for emb in (self.user, self.item, self.hist):
                    nn.init.normal_(emb.weight, std=c.init_std)
                nn.init.zeros_(self.ibias.weight)

        return Net()

    # -------------------------------------------------------------------- fit
    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        import torch

        from zenrec.evaluate.evaluator import validation_ndcg
        from zenrec.train import pick_device, seed_everything
        from zenrec.train.loop import fit_loop, make_optimizer
        from zenrec.train.negatives import NegativeSampler

        c = self.config
        seed_everything(options.seed)
        device = pick_device(options.device, threads=options.threads or 1)
        labels = task_labels(train, c.purchase_events, c.exposure_events).tocoo()
        if not (labels.data == 2).any():
            raise DataError(
                f"no purchase event in the training data: MultiTask needs events named one of "
                f"{list(c.purchase_events)}; the event names are {list(train.event_names)}"
            )
        self.task_rates_ = np.array([(labels.data >= 1).mean(), (labels.data == 2).mean()], dtype=np.float32)
        hist = train.binary  # the user's engaged items feed the history input
        if train.event_names:
            engaged = labels.data >= 1
            hist = sp.csr_matrix((np.ones(int(engaged.sum()), dtype=np.float32),
                                  (labels.row[engaged], labels.col[engaged])), shape=labels.shape)
        self.hist_ = hist.tocsr().astype(np.float32)
        self.hist_.sort_indices()
        wide = None
        self.uses_wide_ = c.wide is True or (c.wide == "auto" and train.n_items <= c.wide_max_items)
        if c.wide == "auto" and not self.uses_wide_:
            log.info("multitask: %d items > wide_max_items=%d, training without the wide part",
                     train.n_items, c.wide_max_items)
        if self.uses_wide_:
            self.wide_ = self._fit_wide(self.hist_, labels)
            wide = torch.as_tensor(self.wide_, device=device)
        net = self._build_net(train.n_users, train.n_items).to(device)
        self.net_ = net
        gen = torch.Generator(device=device).manual_seed(options.seed)
        pu = torch.as_tensor(labels.row, dtype=torch.long, device=device)
        pi = torch.as_tensor(labels.col, dtype=torch.long, device=device)
        lab = torch.as_tensor(labels.data, dtype=torch.long, device=device)
        h_ptr = torch.as_tensor(hist.indptr, dtype=torch.long, device=device)
        h_idx = torch.as_tensor(hist.indices, dtype=torch.long, device=device)
        opt = make_optimizer(net.parameters(), c.optimizer, c.lr)
        counts = np.bincount(labels.col, minlength=train.n_items) if c.sampler == "popularity" else None
        sampler = NegativeSampler(train.n_items, c.sampler, counts, device=device, generator=gen)

        def batches(epoch: int):
            perm = torch.randperm(len(pu), device=device, generator=gen)
            for s in range(0, len(perm), c.batch_size):
                b = perm[s : s + c.batch_size]
                neg = sampler.sample((len(b), c.negatives))
                yield pu[b], torch.cat([pi[b][:, None], neg], dim=1), lab[b]

        def loss_fn(batch) -> torch.Tensor:
            u, items, y = batch
            uvecs, ue = self._user_side(net, u, h_ptr, h_idx, leave_out=items[:, 0] if c.history else None)
            ivecs, ie = self._item_side(net, items)
            logits = [(uv[:, None, :] * iv).sum(-1) + net.ibias(items)[..., t] + net.bias[t]
                      for t, (uv, iv) in enumerate(zip(uvecs, ivecs, strict=False))]  # 2 × (B × (1+n))
            if wide is not None:
                part = _wide_pairs(wide, u, items, h_ptr, h_idx)
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
            reg = c.weight_decay * (ue.pow(2).sum() + ie.pow(2).sum()) / len(u)
            return c.click_loss_weight * loss_click + loss_buy + reg

        validate = None
        if valid is not None and len(valid):
            valid_buys = purchases_of(valid, c.purchase_events)
            seen_buys = purchases_of(train, c.purchase_events)
            vusers = np.flatnonzero(np.diff(valid_buys.binary.indptr) > 0)
            if c.valid_users and len(vusers) > c.valid_users:
                vusers = np.sort(np.random.default_rng(options.seed).choice(vusers, c.valid_users, replace=False))
            if len(valid_buys):
                def validate() -> float:
                    self._publish(net, train.n_users, h_ptr, h_idx)
                    return validation_ndcg(self._score, valid_buys, seen_buys, users=vusers)

        result = fit_loop(net, opt, batches, loss_fn, c.epochs, validate, c.patience, options.progress,
                          name=self.name)
        self._publish(net, train.n_users, h_ptr, h_idx)  # the best epoch's weights, restored by the loop
        self.epochs_trained_ = result.epochs
        self.train_history_ = result.history
        del self.net_

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

    def _user_side(self, net: Any, u: Any, h_ptr: Any, h_idx: Any, leave_out: Any = None):
        """Per-task user vectors and the raw inputs (for the L2 penalty)."""
        import torch

        c = self.config
        x = net.user(u) if c.user_embedding else torch.zeros(len(u), c.factors, device=u.device)
        raw = x
        if c.history:
            start, end = h_ptr[u], h_ptr[u + 1]
            lens = end - start
            flat = torch.repeat_interleave(start - torch.cumsum(lens, 0) + lens, lens) + torch.arange(
                int(lens.sum()), device=u.device)
            seg = torch.repeat_interleave(torch.arange(len(u), device=u.device), lens)
            total = torch.zeros(len(u), x.shape[1], device=u.device).index_add_(0, seg, net.hist(h_idx[flat]))
            n = lens.to(x.dtype)
            if leave_out is not None:  # the target item is not part of its own evidence
                pos = torch.zeros(len(u), dtype=torch.bool, device=u.device)
                hit = h_idx[flat] == leave_out[seg]
                pos.index_fill_(0, seg[hit], True)
                total = total - net.hist(leave_out) * pos[:, None].to(x.dtype)
                n = n - pos.to(x.dtype)
            x = x + total / n.clamp(min=1.0)[:, None]
        return net.user_side(x), raw

    def _item_side(self, net: Any, items: Any):
        x = net.item(items)
        return net.item_side(x), x

    def _publish(self, net: Any, n_users: int, h_ptr: Any, h_idx: Any) -> None:
        """Per-task user and item vectors of every id, for scoring."""
        import torch

        was_training = net.training
        net.eval()
        with torch.no_grad():
            dev = h_ptr.device
            iv = net.item_side(net.item.weight)
            uvs = [[], []]
            for s in range(0, n_users, 8192):
                u = torch.arange(s, min(n_users, s + 8192), device=dev)
                vecs, _ = self._user_side(net, u, h_ptr, h_idx)
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
