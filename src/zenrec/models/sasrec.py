"""SASRec: causal self-attention over a user's last items (Kang & McAuley, 2018)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from zenrec.models.sequential import SequentialConfig, SequentialRecommender
from zenrec.train.params import LearningRate

__all__ = ["SASRec", "SASRecConfig"]


class SASRecConfig(SequentialConfig):
    """Hyper-parameters of :class:`SASRec` (plus the shared sequence-model ones)."""

    blocks: int = Field(2, ge=1, description="self-attention blocks")
    heads: int = Field(1, ge=1, description="attention heads per block")
    # on ml-100k (benchmarks/bench_sequential.py) validation NDCG@10 0.09 took 20 epochs at lr 1e-3,
    # 8 at 3e-3 and 6 at 5e-3; the early-stopped test NDCG@10 was the same at 3e-3 and 5e-3 (0.106, 0.105)
    lr: LearningRate = 5e-3


def build_sasrec(n_items: int, c: SASRecConfig) -> Any:
    """The network: item + learned position embeddings, pre-norm causal Transformer blocks."""
    import torch
    from torch import nn

    if c.factors % c.heads:
        from zenrec.errors import ConfigError

        raise ConfigError(f"SASRec: 'factors' ({c.factors}) must be divisible by 'heads' ({c.heads})")

    class SASRecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item = nn.Embedding(n_items + 1, c.factors, padding_idx=0)
            self.pos = nn.Embedding(c.max_len, c.factors)
            self.drop = nn.Dropout(c.dropout)
            layer = nn.TransformerEncoderLayer(
                c.factors, c.heads, dim_feedforward=c.factors, dropout=c.dropout,
                activation="gelu", batch_first=True, norm_first=True,
            )
            self.blocks = nn.TransformerEncoder(layer, c.blocks, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(c.factors)
            nn.init.normal_(self.item.weight, std=1.0 / math.sqrt(c.factors))
            with torch.no_grad():
                self.item.weight[0].zero_()

        def forward(self, seq: torch.Tensor) -> torch.Tensor:
            b, n = seq.shape
            pad = seq == 0
            x = self.item(seq) * math.sqrt(c.factors) + self.pos.weight[c.max_len - n :][None]
            x = self.drop(x) * (~pad)[..., None]
            # causal, padded keys hidden; every position may see itself (no empty rows)
            eye = torch.eye(n, dtype=torch.bool, device=seq.device)
            allowed = torch.tril(torch.ones(n, n, dtype=torch.bool, device=seq.device))[None] & ~pad[:, None, :]
            allowed = allowed | eye[None]
            mask = torch.zeros(b, n, n, device=seq.device).masked_fill(~allowed, float("-inf"))
            mask = mask.repeat_interleave(c.heads, dim=0)
            h = self.blocks(x, mask=mask)
            return self.norm(h)

    return SASRecNet()


class SASRec(SequentialRecommender):
    """Self-attentive sequential recommendation.

    Position t attends only to items ≤ t (causal mask), with learned
    positions, pre-layer-norm blocks and dropout; trained by default with a
    softmax cross-entropy over all items at every position.  Scoring reads a
    raw item sequence, so a session unseen in training gets recommendations
    from its recent items.
    """

    name = "sasrec"
    Config = SASRecConfig

    def _build_net(self, n_items: int) -> Any:
        return build_sasrec(n_items, self.config)
