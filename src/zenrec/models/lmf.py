"""Logistic matrix factorisation: ``p(u likes i) = σ(u·v_i + b_i + b)`` in PyTorch."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from zenrec.data.interactions import Interactions
from zenrec.data.sparse import padded_row_blocks
from zenrec.models.base import ModelConfig
from zenrec.models.explain import Explanation, explain_scores, factor_explanations
from zenrec.models.neural import TorchRecommender
from zenrec.models.query import Query, Vectors
from zenrec.train.negatives import SamplerKind
from zenrec.train.params import BatchSize, EmbeddingL2, Epochs, LearningRate, Optimizer, Patience
from zenrec.train.privacy import DPParams

__all__ = ["LogisticMF", "LogisticMFConfig"]

log = logging.getLogger(__name__)


class LogisticMFConfig(ModelConfig, DPParams):
    """Hyper-parameters of :class:`LogisticMF` (``dp_*``: differentially private training, docs/guide/privacy.md)."""

    factors: int = Field(64, ge=1, description="embedding size")
    negatives: int = Field(4, ge=1, description="sampled negatives per positive")
    sampler: SamplerKind = Field(
        "uniform", description="uniform, or popularity: negatives in proportion to item count^0.75"
    )
    loss: Literal["bce", "bpr"] = Field(
        "bce", description="bce: logistic loss, p(u likes i) = σ(u·v_i + b_i + b); bpr: -log σ(s⁺ − s⁻), ranking only"
    )
    optimizer: Optimizer = "adam"
    lr: LearningRate = 0.005
    embedding_l2: EmbeddingL2 = 3e-3
    batch_size: BatchSize = 2048
    epochs: Epochs = 100
    patience: Patience = 5
    init_std: float = Field(0.05, gt=0, description="std of the initial embeddings")

    @model_validator(mode="after")
    def _check_private(self) -> LogisticMFConfig:
        if self.dp_epsilon is not None:
            if self.sampler != "uniform":
                raise ValueError("dp_epsilon needs sampler='uniform' (popularity negatives read private item counts)")
        return self


class LogisticMF(TorchRecommender):
    """Binary cross-entropy on observed pairs against sampled unobserved ones.

    Each epoch visits every training pair once, with ``negatives`` drawn
    items per pair (uniformly, or by popularity with ``sampler``) labelled 0;
    ``loss="bpr"`` trains the same factors by pairwise ranking instead.  With a validation set, training stops
    after ``patience`` epochs without a gain in validation NDCG@10 (training
    items masked) and the best epoch's weights are kept.
    """

    name = "lmf"
    Config = LogisticMFConfig
    test_config = {"factors": 32, "epochs": 20, "batch_size": 256, "lr": 0.02}
    supports_history = True

    default_threads = 1  # a step is a few thousand embedding look-ups: thread hand-offs cost more than they save

    def _build(self, train: Interactions, device: Any, seed: int) -> Any:
        import torch

        from zenrec.models.nets.lmf import LMFNet
        from zenrec.train.negatives import NegativeSampler

        c = self.config
        x = train.binary.tocoo()
        self._pairs = (torch.as_tensor(x.row, dtype=torch.long, device=device),
                       torch.as_tensor(x.col, dtype=torch.long, device=device))
        self._gen = torch.Generator(device=device).manual_seed(seed)
        net = LMFNet(train.n_users, train.n_items, c.factors, c.init_std, self._gen).to(device)
        if c.dp_epsilon is not None:
            net.bias.requires_grad_(False)  # a bare parameter Opacus cannot clip per example; ranking ignores it
        counts = np.bincount(x.col, minlength=train.n_items) if c.sampler == "popularity" else None
        self._sampler = NegativeSampler(train.n_items, c.sampler, counts, device=device, generator=self._gen)
        return net

    def _batches(self, epoch: int) -> Iterator[Any]:
        """Every training pair once, in random order, each with ``negatives`` sampled items."""
        import torch

        c, (users, items) = self.config, self._pairs
        if c.dp_epsilon is not None:  # DP-SGD: Poisson-sampled batches, as the accountant assumes
            from zenrec.train.privacy import poisson_batches

            for b in poisson_batches(len(users), c.batch_size, self._gen):
                yield users[b], torch.cat([items[b][:, None], self._sampler.sample((len(b), c.negatives))], dim=1)
            return
        for b in self._epoch_batches(len(users), c.batch_size, users.device):
            neg = self._sampler.sample((len(b), c.negatives))
            yield users[b], torch.cat([items[b][:, None], neg], dim=1)

    def _loss(self, batch: Any) -> Any:
        from zenrec.train.losses import bce_loss, bpr_loss

        c = self.config
        u, items = batch
        logits, ue, ie = self.net_(u, items)  # B × (1+n), B × d, B × (1+n) × d
        if c.loss == "bce":
            loss = bce_loss(logits[:, 0], logits[:, 1:], balanced=False)
        else:
            loss = bpr_loss(logits[:, 0], logits[:, 1:])
        return loss + c.embedding_l2 * (ue.pow(2).sum() + ie.pow(2).sum()) / len(u)

    def _publish(self) -> None:
        net = self.net_
        self.user_factors_ = net.user.weight.detach().cpu().numpy().copy()
        self.item_factors_ = net.item.weight.detach().cpu().numpy().copy()
        # the global bias rides on the item biases: ranking is unchanged and σ(score) is the model's p
        self.item_bias_ = (net.ibias.weight + net.bias).detach().cpu().numpy().ravel().copy()

    def _after_fit(self) -> None:
        del self.net_, self._pairs, self._gen, self._sampler  # the factors are the model

    def _n_batches(self) -> int:
        return -(-len(self._pairs[0]) // self.config.batch_size)

    def _n_examples(self) -> int:
        return len(self._pairs[0])  # the unit of privacy: one (user, item) pair

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T + self.item_bias_[None, :]

    def fold_in(self, rows: sp.csr_matrix, iterations: int = 8, max_negatives: int = 20_000) -> np.ndarray:
        """User vectors fitted to interaction rows against the fixed item factors (Newton's method).

        Minimises the per-user form of the training loss:
        ``mean_{i∈items} softplus(−s_i) + (negatives/n) Σ_j softplus(s_j) + λ‖u‖²``
        with ``s = u·v + b`` and ``λ = embedding_l2·(1 + negatives)``: the
        expectation of the sampled negatives over all ``n`` items (a fixed
        random subset of ``max_negatives`` items, re-weighted, on larger
        catalogues).  A row without events gets a zero vector.
        """
        c = self.config
        v = self.item_factors_.astype(np.float64)
        b = self.item_bias_.astype(np.float64)
        n, d = v.shape
        neg_idx = np.arange(n) if n <= max_negatives else np.sort(
            np.random.default_rng(0).choice(n, max_negatives, replace=False))
        vn, bn = v[neg_idx], b[neg_idx]
        w_neg = c.negatives / n * (n / len(neg_idx))
        lam = c.embedding_l2 * (1 + c.negatives)
        out = np.zeros((rows.shape[0], d), dtype=np.float32)
        for r, idx, _, mask in padded_row_blocks(rows, block=64):
            vp, bp, m = v[idx], b[idx], mask.astype(np.float64)  # B × L × d, B × L, B × L
            n_pos = m.sum(1)[:, None]
            u = np.zeros((len(r), d))
            for _ in range(iterations):
                sp_ = 1.0 / (1.0 + np.exp(-(np.einsum("bld,bd->bl", vp, u) + bp)))  # σ(s) of the users' items
                sn = 1.0 / (1.0 + np.exp(-(u @ vn.T + bn[None])))  # σ(s) of the negatives, B × k
                grad = (-np.einsum("bld,bl->bd", vp, (1 - sp_) * m) / n_pos + w_neg * sn @ vn + 2 * lam * u)
                hess = np.einsum("bld,ble->bde", vp * (sp_ * (1 - sp_) * m / n_pos)[..., None], vp, optimize=True) \
                    + w_neg * (vn.T[None] * (sn * (1 - sn))[:, None, :]) @ vn + 2 * lam * np.eye(d)[None]
                u = u - np.linalg.solve(hess, grad[..., None])[..., 0]
            out[r] = u
        return out

    def _score_history(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        return self.fold_in(history.binary[users]) @ self.item_factors_.T + self.item_bias_[None, :]

    def explain(self, query: Query, items: np.ndarray) -> list[Explanation]:
        """The score ``u·v_i + b_i`` split by latent factor (``u_k·v_ik``), the item bias as baseline.

        The user vector is the trained one, or with a ``history`` the vector
        :meth:`fold_in` fits to it: a non-linear fit, so it is not split into
        per-item terms; the factors are labelled as what they are.
        """
        items, scores, popular = explain_scores(self, query, items)
        if popular is not None:
            return popular
        if query.history is not None and len(query.history):
            h = np.unique(np.asarray(query.history, dtype=np.int64))
            user = self.fold_in(sp.csr_matrix((np.ones(len(h), np.float32), (np.zeros(len(h), np.int64), h)),
                                              shape=(1, int(self.n_items_))))[0]
            note = "the user vector is fitted to the user's items (non-linearly), not a sum of per-item terms"
        else:
            user = self.user_factors_[int(query.user)]
            note = "the user's trained vector; latent factors have no names, only weights"
        return factor_explanations(user, self.item_factors_, self.item_bias_, items, scores, note=note)

    def vectors(self) -> Vectors:
        """Scores are ``user_factors · item_factors + item_bias`` (the logit of σ(u·v + b))."""
        self._check_fitted()
        return Vectors(self.user_factors_, self.item_factors_, self.item_bias_)

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_, "item_bias": self.item_bias_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
        self.item_bias_ = arrays["item_bias"]
