"""SASRec: causal self-attention over a user's last items (Kang & McAuley, 2018)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from zenrec.models.sequential import SequentialConfig, SequentialRecommender
from zenrec.train.params import LearningRate, Patience

__all__ = ["SASRec", "SASRecConfig"]


class SASRecConfig(SequentialConfig):
    """Hyper-parameters of :class:`SASRec` (plus the shared sequence-model ones)."""

    blocks: int = Field(2, ge=1, description="self-attention blocks")
    heads: int = Field(1, ge=1, description="attention heads per block")
    ffn_size: int | None = Field(None, ge=1, description="width of each block's feed-forward layer (None: factors, "
                                 "as in the SASRec paper)")
    # see docs/benchmark-notes.md, "Defaults chosen on these benchmarks"
    lr: LearningRate = 1e-2
    patience: Patience = 10


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
    test_config = {"factors": 32, "max_len": 20, "epochs": 30, "batch_size": 32}

    def _build_net(self, n_items: int) -> Any:
        """Item + learned position embeddings, pre-norm causal Transformer blocks."""
        from zenrec.models.nets.transformer import TransformerNet

        c = self.config
        return TransformerNet(n_items + 1, c.factors, c.heads, c.blocks, c.max_len, c.dropout,
                              ffn_size=c.ffn_size or c.factors, causal=True, model="SASRec")
