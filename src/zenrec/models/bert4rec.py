"""BERT4Rec: a bidirectional Transformer trained by masked-item prediction (Sun et al., 2019)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from zenrec.data.interactions import Interactions
from zenrec.models.sequential import SequentialConfig, SequentialRecommender
from zenrec.train.params import Epochs, LearningRate, Patience
from zenrec.train.sequences import Windows

__all__ = ["BERT4Rec", "BERT4RecConfig"]


class BERT4RecConfig(SequentialConfig):
    """Hyper-parameters of :class:`BERT4Rec` (plus the shared sequence-model ones)."""

    max_len: int = Field(50, ge=2, description="most recent items a user is represented by, the [MASK] slot included")
    blocks: int = Field(2, ge=1, description="self-attention blocks")
    heads: int = Field(2, ge=1, description="attention heads per block")
    mask_prob: float = Field(0.2, gt=0, le=1, description="share of a training window's items replaced by [MASK]")
    last_item_prob: float = Field(
        0.1, ge=0, le=1,
        description="share of training windows whose only masked item is the last one, as at scoring time",
    )
    lr: LearningRate = 2e-3  # see docs/benchmark-notes.md, "Defaults chosen on these benchmarks"
    epochs: Epochs = 200
    patience: Patience = 30

    @model_validator(mode="after")
    def _no_stride(self) -> BERT4RecConfig:
        if self.window_stride is not None:
            raise ValueError("window_stride does not apply to bert4rec: its training windows never overlap "
                             "(a masked item is predicted from both sides)")
        return self


class BERT4Rec(SequentialRecommender):
    """Bidirectional self-attention trained as a cloze task.

    Training hides a random share (``mask_prob``, at least one) of each
    window's items behind a [MASK] token and predicts them from both sides,
    with a softmax over all items by default; a share of windows
    (``last_item_prob``) hides only their last item, as scoring does.
    Scoring drops the oldest item of the last ``max_len``, appends [MASK]
    and ranks every item by the state at that slot.
    """

    name = "bert4rec"
    Config = BERT4RecConfig
    test_config = {"factors": 32, "max_len": 10, "epochs": 100, "batch_size": 32, "lr": 0.01, "dropout": 0.0,
                   "last_item_prob": 0.5}

    def _build_net(self, n_items: int) -> Any:
        """Item ([MASK] = ``n_items + 1``) + learned position embeddings, bidirectional blocks."""
        from zenrec.models.nets.transformer import TransformerNet

        c = self.config
        return TransformerNet(n_items + 2, c.factors, c.heads, c.blocks, c.max_len, c.dropout,
                              ffn_size=4 * c.factors, causal=False, model="BERT4Rec")

    @property
    def mask_token(self) -> int:
        """The id of [MASK] in the network input (items are ``1 … n_items``, 0 pads)."""
        return self.n_items_ + 1

    def _n_examples(self) -> None:
        return None  # masked-item training: no differential privacy (see docs/guide/privacy.md)

    def _full_softmax_rows(self) -> int | None:
        c = self.config  # only the masked positions are scored
        return max(1, round(c.batch_size * c.max_len * c.mask_prob)) if c.loss == "ce" else None

    def _training_windows(self, train: Interactions) -> Windows:
        """Windows of ``max_len`` items, the length the network reads at scoring time (not overlapping)."""
        from zenrec.train.sequences import training_windows

        return training_windows(train, self.config.max_len - 1, self.config.all_windows)

    def _window_loss(self, win: Any, first: Any) -> Any:
        """Mask items of each window and predict them from the rest (``first`` is unused: windows
        do not overlap)."""
        import torch

        c = self.config
        real = win > 0
        masked = (torch.rand(win.shape, device=win.device) < c.mask_prob) & real
        last_only = torch.rand(len(win), device=win.device) < c.last_item_prob
        masked[last_only] = False
        masked[last_only, -1] = real[last_only, -1]
        # a window with nothing masked gets one of its items masked at random
        rows = (~masked.any(1)).nonzero().squeeze(1)
        pick = torch.rand(win.shape, device=win.device).masked_fill(~real, -1.0).argmax(1)
        masked[rows, pick[rows]] = True
        h = self.net_(win.masked_fill(masked, self.mask_token))
        return self._item_loss(h[masked], win[masked] - 1)

    def _scoring_input(self, seqs: np.ndarray) -> np.ndarray:
        """The last ``max_len - 1`` items followed by [MASK]."""
        slot = np.full((len(seqs), 1), self.mask_token, dtype=seqs.dtype)
        return np.concatenate([seqs[:, 1:], slot], axis=1)
