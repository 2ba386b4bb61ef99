"""GRU4Rec: a recurrent next-item baseline (Hidasi et al., 2016), trained like SASRec."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from zenrec.models.sequential import SequentialConfig, SequentialRecommender
from zenrec.train.params import LearningRate

__all__ = ["GRU4Rec", "GRU4RecConfig"]


class GRU4RecConfig(SequentialConfig):
    """Hyper-parameters of :class:`GRU4Rec`."""

    layers: int = Field(1, ge=1, description="stacked GRU layers")
    # chosen on validation of the sequential benchmark (docs/benchmark-notes.md, "Defaults chosen …")
    lr: LearningRate = 1e-2


class GRU4Rec(SequentialRecommender):
    """A GRU over the user's last items; the state after the last item scores the next."""

    name = "gru4rec"
    Config = GRU4RecConfig
    test_config = {"factors": 32, "max_len": 20, "epochs": 30, "batch_size": 32}
    _dp_vectorised = False  # torch.func's vmap cannot batch nn.GRU: DP takes one autograd pass per user

    def _build_net(self, n_items: int) -> Any:
        """Item embeddings → GRU → projection back to the embedding space."""
        from zenrec.models.nets.gru4rec import GRU4RecNet

        c = self.config
        return GRU4RecNet(n_items, c.factors, c.layers, c.dropout)
