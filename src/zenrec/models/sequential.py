"""Base of the neural sequence models (SASRec, GRU4Rec, BERT4Rec): one loop, one scoring path.

A subclass builds its network: ``net(seq)`` maps a left-padded batch of
item sequences (ids shifted by one, 0 = padding) to hidden states
``batch × length × d``; the state at the last column scores every item by
a dot product with the (tied) item embeddings, rows ``1 … n_items`` of
``net.item`` (a model may keep extra rows after them, e.g. a [MASK] token).

By default a training window is learnt by next-item prediction at every
position; a model with another objective overrides :meth:`_training_windows`
and :meth:`_window_loss` (reusing :meth:`_item_loss`), and
:meth:`_scoring_input` when its input at scoring time differs from the
history itself.
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from zenrec.data.interactions import Interactions
from zenrec.models.base import ModelConfig
from zenrec.models.explain import Contribution, Explanation, own_scores, popular_explanations, query_history
from zenrec.models.neural import TorchRecommender
from zenrec.models.query import Query
from zenrec.train.losses import bce_loss, bpr_loss, sampled_softmax_loss, softmax_loss
from zenrec.train.negatives import MixtureLogQ, NegativeSampler, in_batch_candidates
from zenrec.train.params import BatchSize, Epochs, LearningRate, Optimizer, OptimizerWeightDecay, Patience
from zenrec.train.privacy import DPParams
from zenrec.train.sequences import Windows

__all__ = ["SequentialConfig", "SequentialRecommender"]

log = logging.getLogger(__name__)


class SequentialConfig(ModelConfig, DPParams):
    """Hyper-parameters shared by the sequence models (``dp_*``: user-level differential privacy for SASRec and
    GRU4Rec, docs/guide/privacy.md)."""

    max_len: int = Field(50, ge=1, description="most recent items a user is represented by")
    factors: int = Field(64, ge=1, description="embedding size")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout on embeddings and hidden states")
    loss: Literal["ce", "sampled", "bce", "bpr"] = Field(
        "ce",
        description="ce: softmax over all items; sampled: softmax over in-batch and uniform negatives "
        "with logQ correction (large catalogues); bce / bpr: one uniform negative per position",
    )
    negatives: int = Field(256, ge=1, description="uniform negatives per batch for loss='sampled'")
    optimizer: Optimizer = "adam"
    lr: LearningRate = 1e-3
    weight_decay: OptimizerWeightDecay = 0.0
    batch_size: BatchSize = 128
    epochs: Epochs = 200
    patience: Patience = 30  # validation NDCG@10 is noisy on small data
    all_windows: bool = Field(True, description="train on every max_len window of long histories, not only the last")
    # the default stride was chosen on the ml-100k sequential benchmark (docs/benchmark-notes.md)
    window_stride: int | None = Field(
        None, ge=1, description="a training window ends every this many items of a history, at most max_len "
        "(None: max_len // 5, at least 1; max_len: windows do not overlap). Each transition is trained once per "
        "epoch, in the window where it has the longest context; a smaller stride gives transitions more context "
        "at up to max_len / window_stride times the compute on long histories",
    )

    @property
    def stride(self) -> int:
        """The window stride in effect: ``window_stride``, or ``max_len // 5`` (at least 1)."""
        return self.window_stride if self.window_stride is not None else max(1, self.max_len // 5)

    @model_validator(mode="after")
    def _check_private(self) -> SequentialConfig:
        if self.dp_epsilon is not None:
            if self.loss != "ce":
                raise ValueError("dp_epsilon needs loss='ce' (sampled negatives correct by private item counts)")
        return self

    @model_validator(mode="after")
    def _stride_fits(self) -> SequentialConfig:
        if self.window_stride is not None and self.window_stride > self.max_len:
            raise ValueError(f"window_stride ({self.window_stride}) must not exceed max_len ({self.max_len}): "
                             "a longer stride would skip transitions")
        return self


class SequentialRecommender(TorchRecommender):
    """Template for sequence models; subclasses implement :meth:`_build_net`."""

    Config = SequentialConfig
    #: reduce-on-plateau, removed after it did not help on the sequential benchmark (docs/benchmark-notes.md)
    retired = {"lr_decay": None, "decay_patience": 3}
    supports_history = True
    sequential = True

    @abstractmethod
    def _build_net(self, n_items: int) -> Any:
        """The network for ``n_items`` items: left-padded sequences → hidden states."""

    # ------------------------------------------------------------------ fit
    def _build(self, train: Interactions, device: Any, seed: int) -> Any:
        import torch

        self._keep_sequences(train)
        net = self._build_net(train.n_items).to(device)
        if self.config.dp_epsilon is not None:  # one example per user: the most recent window
            from zenrec.train.sequences import training_windows

            windows = training_windows(train, self.config.max_len, all_windows=False)
        else:
            windows = self._training_windows(train)
        self._windows = tuple(torch.as_tensor(a, device=device) for a in windows)
        self._gen = torch.Generator(device=device).manual_seed(seed)
        self._sampler = NegativeSampler(train.n_items, "uniform", device=device)
        self._log_q = MixtureLogQ(self.popularity_, self.config.negatives, device)
        return net

    def _full_softmax_rows(self) -> int | None:
        c = self.config
        return c.batch_size * c.max_len if c.loss == "ce" else None

    def _batches(self, epoch: int) -> Iterator[Any]:
        """Every training window once, in random order (under DP: Poisson-sampled users' windows)."""
        windows, first = self._windows
        if self.config.dp_epsilon is not None:
            from zenrec.train.privacy import poisson_batches

            for b in poisson_batches(len(windows), self.config.batch_size, self._gen):
                yield windows[b], first[b]
            return
        for idx in self._epoch_batches(len(windows), self.config.batch_size, windows.device):
            yield windows[idx], first[idx]

    def _loss(self, batch: Any) -> Any:
        return self._window_loss(*batch)

    def _after_fit(self) -> None:
        del self._windows, self._gen, self._log_q, self._sampler

    # ------------------------------------------------ differential privacy
    _dp_unit = "one user (the user's most recent max_len + 1 items form one example)"

    def _n_examples(self) -> int | None:
        return len(self._windows[0])  # under DP one window per user

    def _dp_row_loss(self) -> Any:
        """The loss of one user's window: next-item softmax cross-entropy at each of its positions."""
        import torch

        n = self.n_items_

        def loss(net: Any, win: Any, first: Any) -> Any:
            inp, tgt = win[:-1], win[1:]
            h = net(inp[None])[0]  # L × d
            logits = h @ net.item.weight[1 : n + 1].T
            col = torch.arange(len(inp), device=inp.device)
            keep = ((inp > 0) & (tgt > 0) & (col >= first)).float()
            ce = torch.nn.functional.cross_entropy(logits, (tgt - 1).clamp(min=0), reduction="none")
            return (ce * keep).sum() / keep.sum().clamp(min=1)

        return loss

    def _remember(self, full: Interactions) -> None:
        """Score from every event: the stored sequences end with the held-out validation items too."""
        self._keep_sequences(full)

    def _n_batches(self) -> int:
        return -(-len(self._windows[0]) // self.config.batch_size)

    def _training_windows(self, train: Interactions) -> Windows:
        """The training examples: windows of ``max_len + 1`` items (ids + 1, left-padded), and for each
        the first of its transitions to train (see :func:`~zenrec.train.sequences.training_windows`)."""
        from zenrec.train.sequences import training_windows

        c = self.config
        return training_windows(train, c.max_len, c.all_windows, c.stride)

    def _window_loss(self, win: Any, first: Any) -> Any:
        """The loss of a batch of windows: predict each next item from the items before it (from the
        window's ``first`` transition on)."""
        import torch

        inp, tgt = win[:, :-1], win[:, 1:]
        h = self.net_(inp)
        col = torch.arange(inp.shape[1], device=inp.device)
        keep = (inp > 0) & (tgt > 0) & (col[None, :] >= first[:, None])
        return self._item_loss(h[keep], tgt[keep] - 1)

    def _item_vectors(self) -> Any:
        """The output embedding of every real item: rows ``1 … n_items`` of ``net.item``."""
        return self.net_.item.weight[1 : self.n_items_ + 1]

    def _item_loss(self, h: Any, tgt: Any) -> Any:
        """The configured loss of hidden states ``h`` (``m × d``) against item ids ``tgt`` (0-based)."""
        c = self.config
        emb = self._item_vectors()
        if c.loss == "ce":
            return softmax_loss(h, emb, tgt)
        if c.loss in ("bce", "bpr"):
            neg = self._sampler.sample(tuple(tgt.shape))
            pos_s = (h * emb[tgt]).sum(-1)
            neg_s = (h * emb[neg]).sum(-1)
            return bce_loss(pos_s, neg_s) if c.loss == "bce" else bpr_loss(pos_s, neg_s)
        # sampled softmax: the batch's distinct targets plus uniform negatives, corrected by how often each item
        # is a candidate (train/negatives.MixtureLogQ)
        cand = in_batch_candidates(tgt, self._sampler, c.negatives)
        return sampled_softmax_loss(h, emb, tgt, cand, self._log_q(len(tgt), cand))

    def item_embeddings(self) -> np.ndarray:
        """The output item embeddings (pad and special tokens left out)."""
        self._check_fitted()
        return self._item_vectors().detach().float().cpu().numpy()

    def history(self, user: int) -> np.ndarray:
        """The user's last ``max_len`` training items, oldest first."""
        row = self.sequences_[user].astype(np.int64)
        return row[row > 0] - 1  # stored as ids + 1, 0 = padding

    def _keep_sequences(self, train: Interactions) -> None:
        from zenrec.train.sequences import last_items

        seqs = last_items(train, np.arange(train.n_users), self.config.max_len)
        self.sequences_ = seqs.astype(np.int32)

    # --------------------------------------------------------------- scoring
    def score_sequences(self, seqs: np.ndarray) -> np.ndarray:
        """Scores over all items for left-padded sequences of item ids + 1 (0 = padding)."""
        import torch

        seqs = np.asarray(seqs, dtype=np.int64)
        if seqs.shape[1] > self.config.max_len:
            seqs = seqs[:, -self.config.max_len :]
        elif seqs.shape[1] < self.config.max_len:
            seqs = np.pad(seqs, ((0, 0), (self.config.max_len - seqs.shape[1], 0)))
        empty = ~(seqs > 0).any(axis=1)
        inp = self._scoring_input(seqs)
        net = self.net_
        device = next(net.parameters()).device
        out = np.empty((len(seqs), self.n_items_), dtype=np.float32)
        with torch.no_grad():
            emb = self._item_vectors()
            for s in range(0, len(inp), 1024):
                h = net(torch.as_tensor(inp[s : s + 1024], device=device))[:, -1, :]
                if h.device.type == "cpu" and h.dtype == emb.dtype == torch.float32:
                    # straight into the block: no second users × items array (1M items: 256 MB per 64 users)
                    torch.matmul(h, emb.T, out=torch.from_numpy(out[s : s + 1024]))
                else:
                    out[s : s + 1024] = (h @ emb.T).float().cpu().numpy()
        out[empty] = self.popularity_  # no history at all: popular items
        return out

    def _scoring_input(self, seqs: np.ndarray) -> np.ndarray:
        """The network input for histories of exactly ``max_len`` columns (the histories themselves)."""
        return seqs

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.score_sequences(self.sequences_[users])

    def _score_history(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        from zenrec.train.sequences import last_items

        return self.score_sequences(last_items(history, users, self.config.max_len))

    # ------------------------------------------------------------ explaining
    #: integration steps of :meth:`explain` (midpoint rule)
    explain_steps: ClassVar[int] = 24

    def explain(self, query: Query, items: np.ndarray) -> list[Explanation]:
        """Integrated gradients over the history items' input embeddings.

        Each history item's input embedding ``e_p`` is scaled from 0 to 1 (the
        rest of the network input, positions and [MASK], is kept); its
        attribution is ``e_p · mean_α ∂score/∂(α e_p)``, summed over the
        positions it holds.  The baseline is the score with every history
        embedding zeroed; the residual is the integration error.
        """
        import torch

        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        scores, fallback = own_scores(self, query, items)
        hist = query_history(self, query)
        if fallback is not None or hist is None or not len(hist) or not len(items):
            return popular_explanations(items, scores)
        c = self.config
        seq = (hist[-c.max_len :] + 1)[None, :]
        seq = np.pad(seq, ((0, 0), (c.max_len - seq.shape[1], 0)))
        inp = self._scoring_input(seq)[0]
        real = (inp > 0) & (inp <= self.n_items_)
        net = self.net_
        device = next(net.parameters()).device
        steps = self.explain_steps
        alphas = (np.arange(steps) + 0.5) / steps
        rows = len(items) * steps
        scale = np.ones((rows + len(items), len(inp)), dtype=np.float32)  # the last rows: the zero baseline
        scale[:rows][:, real] = np.tile(alphas, len(items))[:, None]
        scale[rows:][:, real] = 0.0
        target = np.concatenate([np.repeat(items, steps), items])
        scale_t = torch.as_tensor(scale, device=device)[..., None]
        seen: dict[str, Any] = {}
        owner = threading.get_ident()

        def hook(module: Any, args: Any, out: Any) -> Any:
            if threading.get_ident() != owner:  # a request scoring in another thread meanwhile: leave it alone
                return None
            scaled = out * scale_t.to(out.dtype)
            scaled.retain_grad()
            seen["emb"], seen["scaled"] = out, scaled
            return scaled

        was_training = net.training
        net.eval()
        handle = net.item.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                batch = torch.as_tensor(np.tile(inp, (len(target), 1)), device=device)
                h = net(batch)[:, -1, :]
                emb = self._item_vectors().detach()
                out = (h * emb[torch.as_tensor(target, device=device)]).sum(-1)
                out[:rows].sum().backward()
        finally:
            handle.remove()
            net.train(was_training)
        grad = seen["scaled"].grad[:rows].detach().float().cpu().numpy().reshape(len(items), steps, len(inp), -1)
        e = seen["emb"][0].detach().float().cpu().numpy()  # L × d, the same input on every row
        attr = (grad.mean(1) * e[None]).sum(-1)  # items × L
        base = out[rows:].detach().float().cpu().numpy().astype(np.float64)
        pos_items = inp[real] - 1
        uniq = np.unique(pos_items)
        explanations = []
        for j, i in enumerate(items):
            per_item = np.asarray([attr[j][real][pos_items == x].sum() for x in uniq], dtype=np.float64)
            order = np.argsort(-np.abs(per_item), kind="stable")
            parts = tuple(Contribution(float(per_item[b]), item=int(uniq[b])) for b in order)
            explanations.append(Explanation(int(i), float(scores[j]), "integrated-gradients", parts, float(base[j]),
                                            float(scores[j]) - float(base[j]) - float(per_item.sum()),
                                            note="integrated gradients approximate the path integral; the "
                                                 "residual is its error"))
        return explanations

    # ----------------------------------------------------------- persistence
    def _state(self) -> dict[str, np.ndarray]:
        from zenrec.train.weights import net_arrays

        state = net_arrays(self.net_)
        state["sequences"] = self.sequences_
        return state

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        from zenrec.train.weights import load_net_arrays

        self.sequences_ = arrays["sequences"]
        self.net_ = load_net_arrays(self._build_net(self.n_items_), arrays, self.name)

    def _index_bounds(self, state: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
        return {"sequences": (0, self.n_items_)}  # item index + 1, 0 = padding
