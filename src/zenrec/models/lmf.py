"""Logistic matrix factorisation: ``p(u likes i) = σ(u·v_i + b_i + b)`` in PyTorch."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field

from zenrec.data.interactions import Interactions
from zenrec.models.base import ModelConfig, Recommender, TrainOptions

__all__ = ["LogisticMF", "LogisticMFConfig"]

log = logging.getLogger(__name__)


class LogisticMFConfig(ModelConfig):
    """Hyper-parameters of :class:`LogisticMF`."""

    factors: int = Field(64, ge=1, description="embedding size")
    negatives: int = Field(4, ge=1, description="uniformly sampled negatives per positive")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="optimiser")
    lr: float = Field(0.005, gt=0, description="learning rate")
    weight_decay: float = Field(3e-3, ge=0, description="L2 penalty on the embeddings in each batch")
    batch_size: int = Field(2048, ge=1, description="positives per step")
    epochs: int = Field(100, ge=1, description="maximum epochs")
    patience: int = Field(5, ge=1, description="epochs without validation NDCG@10 gain before stopping")
    init_std: float = Field(0.05, gt=0, description="std of the initial embeddings")


class LogisticMF(Recommender):
    """Binary cross-entropy on observed pairs against sampled unobserved ones.

    Each epoch visits every training pair once, with ``negatives`` uniformly
    drawn items per pair labelled 0.  With a validation set, training stops
    after ``patience`` epochs without a gain in validation NDCG@10 (training
    items masked) and the best epoch's weights are kept.
    """

    name = "lmf"
    Config = LogisticMFConfig

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        import torch

        from zenrec.evaluate.evaluator import evaluate
        from zenrec.train import EarlyStopping, pick_device, seed_everything

        c = self.config
        seed_everything(options.seed)
        device = pick_device(options.device, threads=options.threads or 1)
        x = train.binary.tocoo()
        pos_u = torch.as_tensor(x.row, dtype=torch.long, device=device)
        pos_i = torch.as_tensor(x.col, dtype=torch.long, device=device)
        n_pos = len(pos_u)
        gen = torch.Generator(device=device).manual_seed(options.seed)
        user = torch.nn.Embedding(train.n_users, c.factors).to(device)
        item = torch.nn.Embedding(train.n_items, c.factors).to(device)
        ibias = torch.nn.Embedding(train.n_items, 1).to(device)
        gbias = torch.nn.Parameter(torch.zeros(1, device=device))
        for emb in (user, item):
            torch.nn.init.normal_(emb.weight, std=c.init_std, generator=gen)
        torch.nn.init.zeros_(ibias.weight)
        params = [*user.parameters(), *item.parameters(), *ibias.parameters(), gbias]
        opt = (
            torch.optim.Adam(params, lr=c.lr)
            if c.optimizer == "adam"
            else torch.optim.SGD(params, lr=c.lr, momentum=0.9)
        )
        stopper = EarlyStopping(c.patience)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        labels = torch.cat(
            [torch.ones(1, device=device), torch.zeros(c.negatives, device=device)]
        )

        def snapshot() -> dict[str, np.ndarray]:
            return {
                "user_factors": user.weight.detach().cpu().numpy().copy(),
                "item_factors": item.weight.detach().cpu().numpy().copy(),
                "item_bias": ibias.weight.detach().cpu().numpy().ravel().copy(),
            }

        progress = _progress(options, c.epochs)
        for epoch in range(c.epochs):
            perm = torch.randperm(n_pos, device=device, generator=gen)
            total = 0.0
            for s in range(0, n_pos, c.batch_size):
                b = perm[s : s + c.batch_size]
                u, i = pos_u[b], pos_i[b]
                neg = torch.randint(0, train.n_items, (len(b), c.negatives), device=device, generator=gen)
                items = torch.cat([i[:, None], neg], dim=1)
                ue = user(u)  # B × d
                ie = item(items)  # B × (1+n) × d
                logits = (ue[:, None, :] * ie).sum(-1) + ibias(items).squeeze(-1) + gbias
                loss = bce(logits, labels.expand_as(logits))
                if c.weight_decay:
                    loss = loss + c.weight_decay * (ue.pow(2).sum() + ie.pow(2).sum()) / len(b)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            msg = f"epoch {epoch + 1}: loss {total / n_pos:.4f}"
            if valid is not None and len(valid):
                self._set_state(snapshot())
                ndcg = evaluate(self._score, valid, [train], ks=(10,), metrics=("ndcg",)).metrics["ndcg@10"]
                msg += f", valid ndcg@10 {ndcg:.4f}"
                stop = stopper.step(ndcg, snapshot())
            else:
                stop = False
            log.info(msg)
            progress(msg)
            if stop:
                break
        self.epochs_trained_ = epoch + 1
        self._set_state(stopper.best_state if stopper.best_state is not None else snapshot())

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T + self.item_bias_[None, :]

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_, "item_bias": self.item_bias_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
        self.item_bias_ = arrays["item_bias"]


def _progress(options: TrainOptions, total: int):
    """A per-epoch reporter: a rich progress line when asked, else a no-op."""
    if not options.progress:
        return lambda msg: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(f"[dim]lmf[/dim] {msg}", highlight=False)
