"""The Transformer network shared by SASRec (causal) and BERT4Rec (bidirectional).

Each block is ``x + drop(attention(norm1(x)))`` then
``x + drop(linear2(drop(gelu(linear1(norm2(x))))))``, with dropout on the
attention weights too: the layout of ``torch.nn.TransformerEncoderLayer``
with ``norm_first=True``, written out so that dropout draws its mask from
``torch.rand`` (on the CPU ``bernoulli_``, which ``nn.Dropout`` uses, took
a fifth of a SASRec step on ml-100k).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zenrec.errors import ConfigError

__all__ = ["Attention", "Block", "Dropout", "TransformerNet"]


class Dropout(nn.Module):
    """Inverted dropout with a mask from ``torch.rand`` (identity in eval mode or at p = 0)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep


class Attention(nn.Module):
    """Multi-head self-attention over a boolean ``allowed`` matrix (batch × length × length)."""

    def __init__(self, factors: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.factors, self.heads, self.head_size = factors, heads, factors // heads
        self.in_proj = nn.Linear(factors, 3 * factors)
        self.out_proj = nn.Linear(factors, factors)
        self.drop = Dropout(dropout)
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.in_proj(x).view(b, n, 3, self.heads, self.head_size).permute(2, 0, 3, 1, 4)
        w = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_size))
        w = torch.softmax(w.masked_fill(~allowed[:, None], float("-inf")), dim=-1)
        out = (self.drop(w) @ v).transpose(1, 2).reshape(b, n, self.factors)
        return self.out_proj(out)


class Block(nn.Module):
    """One pre-norm Transformer block."""

    def __init__(self, factors: int, heads: int, ffn_size: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(factors), nn.LayerNorm(factors)
        self.self_attn = Attention(factors, heads, dropout)
        self.linear1, self.linear2 = nn.Linear(factors, ffn_size), nn.Linear(ffn_size, factors)
        self.dropout, self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout), Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout1(self.self_attn(self.norm1(x), allowed))
        ff = self.linear2(self.dropout(nn.functional.gelu(self.linear1(self.norm2(x)))))
        return x + self.dropout2(ff)


class TransformerNet(nn.Module):
    """Token + learned position embeddings, pre-norm Transformer blocks, a final layer norm.

    ``net(seq)`` maps a left-padded batch of token ids (0 = padding) to
    hidden states ``batch × length × factors``.  With ``causal`` position t
    attends to positions ≤ t only; otherwise to every position.  Padded keys
    are always hidden, except that every position may see itself (so no
    attention row is empty).  ``net.item`` is the token embedding table.
    ``model`` names the model in the error for a ``factors`` that ``heads``
    does not divide.
    """

    def __init__(self, n_tokens: int, factors: int, heads: int, blocks: int, max_len: int, dropout: float,
                 ffn_size: int, causal: bool, model: str = "Transformer") -> None:
        if factors % heads:
            raise ConfigError(f"{model}: 'factors' ({factors}) must be divisible by 'heads' ({heads})")
        super().__init__()
        self.factors, self.max_len, self.causal = factors, max_len, causal
        self.item = nn.Embedding(n_tokens, factors, padding_idx=0)
        self.pos = nn.Embedding(max_len, factors)
        self.drop = Dropout(dropout)
        self.blocks = nn.ModuleList(Block(factors, heads, ffn_size, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(factors)
        nn.init.normal_(self.item.weight, std=1.0 / math.sqrt(factors))
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        n = seq.shape[1]
        pad = seq == 0
        x = self.item(seq) * math.sqrt(self.factors) + self.pos.weight[self.max_len - n :][None]
        x = self.drop(x) * (~pad)[..., None]
        allowed = ~pad[:, None, :]
        if self.causal:
            allowed = torch.tril(torch.ones(n, n, dtype=torch.bool, device=seq.device))[None] & allowed
        allowed = allowed | torch.eye(n, dtype=torch.bool, device=seq.device)[None]
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)
