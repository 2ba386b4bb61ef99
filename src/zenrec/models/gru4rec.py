"""GRU4Rec: a recurrent next-item baseline (Hidasi et al., 2016), trained like SASRec."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from zenrec.models.sequential import SequentialConfig, SequentialRecommender

__all__ = ["GRU4Rec", "GRU4RecConfig"]


class GRU4RecConfig(SequentialConfig):
    """Hyper-parameters of :class:`GRU4Rec`."""

    layers: int = Field(1, ge=1, description="stacked GRU layers")


def build_gru4rec(n_items: int, c: GRU4RecConfig) -> Any:
    """Item embeddings → GRU → projection back to the embedding space."""
    from torch import nn

    class GRU4RecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item = nn.Embedding(n_items + 1, c.factors, padding_idx=0)
            self.drop = nn.Dropout(c.dropout)
            self.gru = nn.GRU(c.factors, c.factors, num_layers=c.layers, batch_first=True)
            self.out = nn.Linear(c.factors, c.factors)

        def forward(self, seq):
            # left padding: the GRU runs over leading zeros, which carry no signal
            h, _ = self.gru(self.drop(self.item(seq)))
            return self.out(h)

    return GRU4RecNet()


class GRU4Rec(SequentialRecommender):
    """A GRU over the user's last items; the state after the last item scores the next."""

    name = "gru4rec"
    Config = GRU4RecConfig

    def _build_net(self, n_items: int) -> Any:
        return build_gru4rec(n_items, self.config)
