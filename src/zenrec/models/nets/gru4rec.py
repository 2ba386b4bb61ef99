"""The GRU4Rec network: item embeddings → GRU → a projection back to the embedding space."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GRU4RecNet"]


class GRU4RecNet(nn.Module):
    """``forward(seq)``: hidden states ``batch × length × factors`` of left-padded item ids + 1 (0 = padding)."""

    def __init__(self, n_items: int, factors: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, factors, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(factors, factors, num_layers=layers, batch_first=True)
        self.out = nn.Linear(factors, factors)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        # left padding: the GRU runs over leading zeros, which carry no signal
        h, _ = self.gru(self.drop(self.item(seq)))
        return self.out(h)
