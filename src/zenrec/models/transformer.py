"""The Transformer network shared by SASRec (causal) and BERT4Rec (bidirectional)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["build_transformer"]


def build_transformer(n_tokens: int, factors: int, heads: int, blocks: int, max_len: int, dropout: float,
                      ffn_size: int, causal: bool, model: str) -> Any:
    """Token + learned position embeddings, pre-norm Transformer blocks, a final layer norm.

    ``net(seq)`` maps a left-padded batch of token ids (0 = padding) to
    hidden states ``batch × length × factors``.  With ``causal`` position t
    attends to positions ≤ t only; otherwise to every position.  Padded keys
    are always hidden, except that every position may see itself (so no
    attention row is empty).  ``net.item`` is the token embedding table.
    """
    import torch
    from torch import nn

    if factors % heads:
        from zenrec.errors import ConfigError

        raise ConfigError(f"{model}: 'factors' ({factors}) must be divisible by 'heads' ({heads})")

    class TransformerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item = nn.Embedding(n_tokens, factors, padding_idx=0)
            self.pos = nn.Embedding(max_len, factors)
            self.drop = nn.Dropout(dropout)
            layer = nn.TransformerEncoderLayer(
                factors, heads, dim_feedforward=ffn_size, dropout=dropout,
                activation="gelu", batch_first=True, norm_first=True,
            )
            self.blocks = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(factors)
            nn.init.normal_(self.item.weight, std=1.0 / math.sqrt(factors))
            with torch.no_grad():
                self.item.weight[0].zero_()

        def forward(self, seq: torch.Tensor) -> torch.Tensor:
            b, n = seq.shape
            pad = seq == 0
            x = self.item(seq) * math.sqrt(factors) + self.pos.weight[max_len - n :][None]
            x = self.drop(x) * (~pad)[..., None]
            eye = torch.eye(n, dtype=torch.bool, device=seq.device)
            allowed = ~pad[:, None, :]
            if causal:
                allowed = torch.tril(torch.ones(n, n, dtype=torch.bool, device=seq.device))[None] & allowed
            allowed = allowed | eye[None]
            mask = torch.zeros(b, n, n, device=seq.device).masked_fill(~allowed, float("-inf"))
            mask = mask.repeat_interleave(heads, dim=0)
            return self.norm(self.blocks(x, mask=mask))

    return TransformerNet()
