"""The logistic MF network: user and item embeddings, item biases and a global bias."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LMFNet"]


class LMFNet(nn.Module):
    """``forward(users, items)``: the logits ``u·v_i + b_i + b`` of users (B) against items (B × m).

    Embeddings start from ``normal(0, init_std)`` drawn from ``generator``;
    item biases and the global bias start at zero.
    """

    def __init__(self, n_users: int, n_items: int, factors: int, init_std: float,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, factors)
        self.item = nn.Embedding(n_items, factors)
        self.ibias = nn.Embedding(n_items, 1)
        self.bias = nn.Parameter(torch.zeros(1))
        nn.init.normal_(self.user.weight, std=init_std, generator=generator)
        nn.init.normal_(self.item.weight, std=init_std, generator=generator)
        nn.init.zeros_(self.ibias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits (B × m) and the user (B × d) and item (B × m × d) embeddings they were computed from."""
        ue, ie = self.user(users), self.item(items)
        logits = (ue[:, None, :] * ie).sum(-1) + self.ibias(items).squeeze(-1) + self.bias
        return logits, ue, ie
