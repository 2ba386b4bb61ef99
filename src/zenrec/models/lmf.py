"""Logistic matrix factorisation: ``p(u likes i) = σ(u·v_i + b_i + b)`` in PyTorch."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from zenrec.data.interactions import Interactions
from zenrec.data.sparse import padded_row_blocks
from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.train.negatives import SamplerKind
from zenrec.train.params import BatchSize, Epochs, LearningRate, Optimizer, Patience

__all__ = ["LogisticMF", "LogisticMFConfig"]

log = logging.getLogger(__name__)


class LogisticMFConfig(ModelConfig):
    """Hyper-parameters of :class:`LogisticMF`."""

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
    weight_decay: float = Field(3e-3, ge=0, description="L2 penalty on the embeddings in each batch")
    batch_size: BatchSize = 2048
    epochs: Epochs = 100
    patience: Patience = 5
    init_std: float = Field(0.05, gt=0, description="std of the initial embeddings")


class LogisticMF(Recommender):
    """Binary cross-entropy on observed pairs against sampled unobserved ones.

    Each epoch visits every training pair once, with ``negatives`` drawn
    items per pair (uniformly, or by popularity with ``sampler``) labelled 0;
    ``loss="bpr"`` trains the same factors by pairwise ranking instead.  With a validation set, training stops
    after ``patience`` epochs without a gain in validation NDCG@10 (training
    items masked) and the best epoch's weights are kept.
    """

    name = "lmf"
    Config = LogisticMFConfig
    supports_history = True

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        import torch
        from torch import nn

        from zenrec.evaluate.evaluator import validation_ndcg
        from zenrec.train import pick_device, seed_everything
        from zenrec.train.loop import fit_loop, make_optimizer
        from zenrec.train.losses import bce_loss, bpr_loss
        from zenrec.train.negatives import NegativeSampler

        c = self.config
        seed_everything(options.seed)
        device = pick_device(options.device, threads=options.threads or 1)
        x = train.binary.tocoo()
        pos_u = torch.as_tensor(x.row, dtype=torch.long, device=device)
        pos_i = torch.as_tensor(x.col, dtype=torch.long, device=device)
        gen = torch.Generator(device=device).manual_seed(options.seed)

        class LMFNet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.user = nn.Embedding(train.n_users, c.factors)
                self.item = nn.Embedding(train.n_items, c.factors)
                self.ibias = nn.Embedding(train.n_items, 1)
                self.bias = nn.Parameter(torch.zeros(1))
                nn.init.normal_(self.user.weight, std=c.init_std, generator=gen)
                nn.init.normal_(self.item.weight, std=c.init_std, generator=gen)
                nn.init.zeros_(self.ibias.weight)

        net = LMFNet().to(device)
        opt = make_optimizer(net.parameters(), c.optimizer, c.lr)
        counts = np.bincount(x.col, minlength=train.n_items) if c.sampler == "popularity" else None
        sampler = NegativeSampler(train.n_items, c.sampler, counts, device=device, generator=gen)

        def batches(epoch: int):
            perm = torch.randperm(len(pos_u), device=device, generator=gen)
            for s in range(0, len(perm), c.batch_size):
                b = perm[s : s + c.batch_size]
                neg = sampler.sample((len(b), c.negatives))
                yield pos_u[b], torch.cat([pos_i[b][:, None], neg], dim=1)

        def loss_fn(batch) -> torch.Tensor:
            u, items = batch
            ue, ie = net.user(u), net.item(items)  # B × d, B × (1+n) × d
            logits = (ue[:, None, :] * ie).sum(-1) + net.ibias(items).squeeze(-1) + net.bias
            if c.loss == "bce":
                loss = bce_loss(logits[:, 0], logits[:, 1:], balanced=False)
            else:
                loss = bpr_loss(logits[:, 0], logits[:, 1:])
            return loss + c.weight_decay * (ue.pow(2).sum() + ie.pow(2).sum()) / len(u)

        def publish() -> None:
            self.user_factors_ = net.user.weight.detach().cpu().numpy().copy()
            self.item_factors_ = net.item.weight.detach().cpu().numpy().copy()
            # the global bias rides on the item biases: ranking is unchanged and σ(score) is the model's p
            self.item_bias_ = (net.ibias.weight + net.bias).detach().cpu().numpy().ravel().copy()

        validate = None
        if valid is not None and len(valid):
            def validate() -> float:
                publish()
                return validation_ndcg(self._score, valid, train)

        result = fit_loop(net, opt, batches, loss_fn, c.epochs, validate, c.patience, options.progress, name="lmf")
        publish()  # the best epoch's weights, restored by the loop
        self.epochs_trained_ = result.epochs
        self.train_history_ = result.history

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T + self.item_bias_[None, :]

    def fold_in(self, rows: sp.csr_matrix, iterations: int = 8, max_negatives: int = 20_000) -> np.ndarray:
        """User vectors fitted to interaction rows against the fixed item factors (Newton's method).

        Minimises the per-user form of the training loss:
        ``mean_{i∈items} softplus(−s_i) + (negatives/n) Σ_j softplus(s_j) + λ‖u‖²``
        with ``s = u·v + b`` and ``λ = weight_decay·(1 + negatives)``: the
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
        lam = c.weight_decay * (1 + c.negatives)
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

    def item_embeddings(self) -> np.ndarray:
        """The item vectors scores are dot products with."""
        return self.item_factors_

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_, "item_bias": self.item_bias_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
        self.item_bias_ = arrays["item_bias"]
