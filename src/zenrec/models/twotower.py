"""Two-tower DNN: users and items embedded apart, scored by a dot product.

* **User tower** — the user's id embedding plus the mean embedding of its
  ``history_len`` most recent items.
* **Item tower** — the item's id embedding plus a content vector: an MLP over
  its categorical / multi-hot features (mean of value embeddings per column),
  its text and any precomputed vectors.  Text is read one of two ways:
  ``text_encoder="cnn"`` learns token embeddings and a 1-D convolution over
  the words (max-pooled); ``"minilm"`` feeds frozen 384-d MiniLM sentence
  vectors (:class:`~zenrec.features.text.SentenceEncoder`, cached on disk).

Side information comes as ``fit(..., side=ItemFeatures(...))``.  Items with no
training interaction (**cold-start items**) get a zero id embedding, so they
are scored from content alone; during training each item's id embedding is
dropped with probability ``id_dropout`` so that the content path alone must
already place items well.  Training is softmax cross-entropy of each
(user, item) pair against all items, or against in-batch plus uniform
negatives with logQ correction (``loss="sampled"``, for large catalogues);
the target item is left out of the user's history mean so the model cannot
just look it up.  Early stopping watches validation NDCG@10.

Everything scoring needs — the network weights, the item features as arrays,
the token vocabulary (unicode) and the users' recent items — is saved with
the model, so a reloaded model gives identical scores with no side input.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from pydantic import Field

from zenrec.data.interactions import Interactions
from zenrec.errors import ConfigError
from zenrec.features.side import ItemFeatures
from zenrec.models.base import ModelConfig, Recommender, TrainOptions
from zenrec.train.params import BatchSize, Epochs, LearningRate, Optimizer, OptimizerWeightDecay, Patience

__all__ = ["TwoTower", "TwoTowerConfig"]

log = logging.getLogger(__name__)


class TwoTowerConfig(ModelConfig):
    """Hyper-parameters of :class:`TwoTower`."""

    factors: int = Field(64, ge=1, description="size of user and item vectors")
    hidden: int = Field(256, ge=1, description="width of the item content MLP")
    text_encoder: Literal["cnn", "minilm", "none"] = Field(
        "cnn",
        description="item text as learned token embeddings + 1-D CNN, frozen MiniLM sentence vectors "
        "(needs the 'text' extra), or ignored",
    )
    text_len: int = Field(32, ge=1, description="tokens of each item text the CNN reads")
    token_dim: int = Field(64, ge=1, description="size of the learned token embeddings")
    cnn_kernel: int = Field(3, ge=1, description="width of the CNN's convolution window, in tokens")
    min_token_count: int = Field(2, ge=1, description="tokens in fewer item texts map to <unk>")
    max_tokens: int = Field(50_000, ge=3, description="largest token vocabulary")
    history_len: int = Field(100, ge=1, description="recent items the user tower averages")
    history_dropout: float = Field(0.2, ge=0, lt=1, description="share of history items dropped per step")
    id_dropout: float = Field(
        0.25, ge=0, lt=1, description="probability of dropping an item's id embedding in a training step "
        "(teaches the content path to stand alone for cold-start items)"
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout inside the content MLP")
    loss: Literal["softmax", "sampled"] = Field(
        "sampled", description="softmax: over all items; sampled: in-batch + uniform negatives with logQ correction"
    )
    negatives: int = Field(1024, ge=1, description="uniform negatives per step for loss='sampled'")
    optimizer: Optimizer = "adam"
    lr: LearningRate = 3e-3
    weight_decay: OptimizerWeightDecay = 0.0
    batch_size: BatchSize = 1024
    epochs: Epochs = 100
    patience: Patience = 5


def _build_net(n_users: int, n_items: int, c: TwoTowerConfig, spec: dict[str, Any]):
    """The network; ``spec`` gives the feature sizes (vocabularies, vector widths)."""
    import torch
    from torch import nn

    class TwoTowerNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = c.factors
            self.user = nn.Embedding(n_users, d)
            self.hist = nn.Embedding(n_items + 1, d, padding_idx=0)
            self.item = nn.Embedding(n_items, d)
            for emb in (self.user, self.hist, self.item):
                nn.init.normal_(emb.weight, std=0.05)
            with torch.no_grad():
                self.hist.weight[0].zero_()
            width = 0
            self.cats = nn.ModuleList(nn.Embedding(n + 1, d, padding_idx=0) for n in spec["cats"].values())
            width += d * len(spec["cats"])
            self.tok = self.conv = None
            if spec.get("n_tokens"):
                self.tok = nn.Embedding(spec["n_tokens"], c.token_dim, padding_idx=0)
                self.conv = nn.Conv1d(c.token_dim, d, c.cnn_kernel, padding=c.cnn_kernel // 2)
                width += d
            width += spec.get("text_dim", 0) + sum(spec["vectors"].values())
            self.mlp = None
            if width:
                self.mlp = nn.Sequential(nn.Linear(width, c.hidden), nn.ReLU(), nn.Dropout(c.dropout),
                                         nn.Linear(c.hidden, d))
            # item features, set by _set_inputs (not part of state_dict: saved once as inputs)
            self.register_buffer("seen", torch.ones(n_items), persistent=False)

        # ------------------------------------------------------------ towers
        def content(self, idx):
            parts = []
            for j, emb in enumerate(self.cats):
                codes = getattr(self, f"cat_{j}")[idx]
                e = emb(codes)  # B × k × d, 0 = padding (zero vector)
                parts.append(e.sum(1) / (codes > 0).sum(1, keepdim=True).clamp(min=1))
            if self.tok is not None:
                tokens = self.tokens[idx]
                h = torch.relu(self.conv(self.tok(tokens).transpose(1, 2)))[..., : tokens.shape[1]]
                h = h.masked_fill((tokens == 0)[:, None, :], 0.0)  # relu ≥ 0, so 0 never wins a max
                parts.append(h.max(-1).values)
            if hasattr(self, "text_vectors"):
                parts.append(self.text_vectors[idx])
            for j in range(len(spec["vectors"])):
                parts.append(getattr(self, f"vec_{j}")[idx])
            if self.mlp is None:
                return None
            return self.mlp(torch.cat(parts, dim=1))

        def items(self, idx, id_keep=None):
            """Item vectors of ``idx``: id embedding (zero for cold items) + content."""
            mask = self.seen[idx]
            if id_keep is not None:
                mask = mask * id_keep
            v = self.item(idx) * mask[:, None]
            content = self.content(idx)
            return v if content is None else v + content

        def users(self, users, seqs, known=None):
            """User vectors from ids (``known`` False: no id embedding) and padded histories (ids + 1)."""
            h = self.hist(seqs) * self.seen_pad[seqs][..., None]
            n = (seqs > 0).sum(1, keepdim=True).clamp(min=1)
            u = h.sum(1) / n
            ids = self.user(users.clamp(0, n_users - 1))
            if known is not None:
                ids = ids * known[:, None]
            return u + ids

        @property
        def seen_pad(self):
            return torch.cat([self.seen.new_zeros(1), self.seen])

    return TwoTowerNet()


class TwoTower(Recommender):
    """Two-tower DNN over ids, categorical features, item text and vectors (see the module docstring)."""

    name = "twotower"
    Config = TwoTowerConfig
    uses_side = True
    supports_history = True

    # ------------------------------------------------------------- inputs
    def _prepare_inputs(self, side: ItemFeatures | None, n_items: int) -> dict[str, np.ndarray]:
        """Feature arrays the item tower reads, as saved in the model's state."""
        from zenrec.features.text import TokenVocabulary

        c = self.config
        if side is None:
            return {}
        if not isinstance(side, ItemFeatures):
            raise ConfigError(f"TwoTower reads side=ItemFeatures(...); got {type(side).__name__}")
        if side.n_items != n_items:
            raise ConfigError(f"side information describes {side.n_items} items; the interactions have {n_items}")
        out: dict[str, np.ndarray] = {}
        for name, mh in side.categorical.items():
            out[f"cat.{name}.codes"] = mh.codes.astype(np.int64)
            out[f"cat.{name}.values"] = np.asarray(mh.values, dtype=np.str_)
        for name, v in side.vectors.items():
            out[f"vec.{name}"] = np.asarray(v, dtype=np.float32)
        if c.text_encoder == "cnn" and side.text is not None:
            vocab = TokenVocabulary.build(side.text, c.min_token_count, c.max_tokens)
            out["text.tokens"] = vocab.encode(side.text, c.text_len)
            out["text.vocab"] = vocab.to_array()
        elif c.text_encoder == "minilm" and (side.text is not None or side.text_vectors is not None):
            vecs = side.text_vectors if side.text_vectors is not None else side.with_text_vectors().text_vectors
            out["text.vectors"] = np.asarray(vecs, dtype=np.float32)
        elif c.text_encoder != "none" and side.text is None:
            log.info("twotower: text_encoder=%r but the side information has no text", c.text_encoder)
        return out

    def _make_net(self, n_users: int, n_items: int, inputs: dict[str, np.ndarray], seen: np.ndarray):
        import torch

        cats = sorted(k[4:-6] for k in inputs if k.startswith("cat.") and k.endswith(".codes"))
        vecs = sorted(k[4:] for k in inputs if k.startswith("vec."))
        spec: dict[str, Any] = {
            "cats": {name: len(inputs[f"cat.{name}.values"]) for name in cats},
            "vectors": {name: inputs[f"vec.{name}"].shape[1] for name in vecs},
        }
        if "text.vocab" in inputs:
            spec["n_tokens"] = len(inputs["text.vocab"])
        if "text.vectors" in inputs:
            spec["text_dim"] = inputs["text.vectors"].shape[1]
        net = _build_net(n_users, n_items, self.config, spec)
        net.seen = torch.as_tensor(seen, dtype=torch.float32)
        # buffers are named by position: column names may hold any character
        for j, name in enumerate(cats):
            net.register_buffer(f"cat_{j}", torch.as_tensor(inputs[f"cat.{name}.codes"]), persistent=False)
        for j, name in enumerate(vecs):
            net.register_buffer(f"vec_{j}", torch.as_tensor(inputs[f"vec.{name}"]), persistent=False)
        if "text.tokens" in inputs:
            net.register_buffer("tokens", torch.as_tensor(inputs["text.tokens"]), persistent=False)
        if "text.vectors" in inputs:
            net.register_buffer("text_vectors", torch.as_tensor(inputs["text.vectors"]), persistent=False)
        return net

    # ---------------------------------------------------------------- fit
    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        import torch

        from zenrec.evaluate.evaluator import validation_ndcg
        from zenrec.train import pick_device, seed_everything
        from zenrec.train.loop import fit_loop, make_optimizer
        from zenrec.train.sequences import last_items

        c = self.config
        seed_everything(options.seed)
        device = pick_device(options.device, options.threads)
        self.inputs_ = self._prepare_inputs(self.side_, train.n_items)
        self.seen_ = train.item_counts() > 0
        self.sequences_ = last_items(train, np.arange(train.n_users), c.history_len).astype(np.int32)
        net = self._make_net(train.n_users, train.n_items, self.inputs_, self.seen_).to(device)
        self.net_ = net
        x = train.binary.tocoo()
        pos_u = torch.as_tensor(x.row, dtype=torch.long, device=device)
        pos_i = torch.as_tensor(x.col, dtype=torch.long, device=device)
        seqs = torch.as_tensor(self.sequences_, dtype=torch.long, device=device)
        all_items = torch.arange(train.n_items, device=device)
        log_q = torch.log(torch.as_tensor(self.popularity_ + 1e-6, device=device))
        gen = torch.Generator(device=device).manual_seed(options.seed)
        opt = make_optimizer(net.parameters(), c.optimizer, c.lr, c.weight_decay)

        def batches(epoch: int):
            perm = torch.randperm(len(pos_u), device=device, generator=gen)
            for s in range(0, len(perm), c.batch_size):
                b = perm[s : s + c.batch_size]
                yield pos_u[b], pos_i[b]

        def loss_fn(batch) -> torch.Tensor:
            u, tgt = batch
            hist = seqs[u]
            drop = hist == (tgt[:, None] + 1)  # the target is not its own evidence
            if c.history_dropout > 0:
                drop |= torch.rand(hist.shape, device=device, generator=gen) < c.history_dropout
            uv = net.users(u, hist.masked_fill(drop, 0))
            if c.loss == "softmax":
                cand = all_items
            else:
                cand = torch.cat([tgt.unique(),
                                  torch.randint(0, train.n_items, (c.negatives,), device=device, generator=gen)])
            keep = (torch.rand(len(cand), device=device, generator=gen) >= c.id_dropout).float()
            logits = uv @ net.items(cand, keep).T
            if c.loss == "softmax":
                return torch.nn.functional.cross_entropy(logits, tgt)
            labels = (cand[None, :] == tgt[:, None]).float()
            return torch.nn.functional.cross_entropy(logits - log_q[cand], labels / labels.sum(1, keepdim=True))

        validate = None
        if valid is not None and len(valid):
            def validate() -> float:
                self._publish()
                return validation_ndcg(self._score, valid, train)

        result = fit_loop(net, opt, batches, loss_fn, c.epochs, validate, c.patience, options.progress,
                          name=self.name)
        self.epochs_trained_ = result.epochs
        self.train_history_ = result.history
        net.eval()
        self._publish()

    def _publish(self) -> None:
        """Item vectors of the current weights (every item, cold ones from content alone)."""
        import torch

        net = self.net_
        was_training = net.training
        net.eval()
        with torch.no_grad():
            idx = torch.arange(self.n_items_, device=net.seen.device)
            self.item_vectors_ = torch.cat([net.items(idx[s : s + 8192]) for s in range(0, len(idx), 8192)]
                                           ).float().cpu().numpy()
        net.train(was_training)

    # ------------------------------------------------------------ scoring
    def user_vectors(self, users: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """User vectors from user ids (ids outside training get no id embedding) and
        left-padded histories of item ids + 1 (0 = padding)."""
        import torch

        net = self.net_
        device = net.seen.device
        users = np.asarray(users, dtype=np.int64)
        seqs = np.asarray(seqs, dtype=np.int64)[:, -self.config.history_len :]
        known = (users >= 0) & (users < self.n_users_)
        with torch.no_grad():
            out = net.users(torch.as_tensor(users, device=device), torch.as_tensor(seqs, device=device),
                            torch.as_tensor(known, dtype=torch.float32, device=device))
        return out.float().cpu().numpy()

    def _score_seqs(self, users: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        for s in range(0, len(users), 1024):
            out[s : s + 1024] = self.user_vectors(users[s : s + 1024], seqs[s : s + 1024]) @ self.item_vectors_.T
        return out

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._score_seqs(users, self.sequences_[users])

    def _score_history(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        from zenrec.train.sequences import last_items

        return self._score_seqs(users, last_items(history, users, self.config.history_len))

    def item_content_vectors(self, side: ItemFeatures) -> np.ndarray:
        """Vectors of items described by ``side`` from content alone (new items outside the catalogue).

        ``side`` must carry the same kinds of features as at training time;
        categorical values and tokens unseen then count as missing / unknown.
        """
        import torch

        from zenrec.features.text import TokenVocabulary

        net = self.net_
        if net.mlp is None:
            raise ConfigError("this TwoTower was trained without item features; it has no content path")
        inputs: dict[str, np.ndarray] = {}
        for k in self.inputs_:
            if k.startswith("cat.") and k.endswith(".codes"):
                name = k[4:-6]
                if name not in side.categorical:
                    raise ConfigError(f"the model reads categorical feature {name!r}; side has none")
                mh = side.categorical[name]
                known = {v: i + 1 for i, v in enumerate(self.inputs_[f"cat.{name}.values"].tolist())}
                remap = np.asarray([0, *[known.get(v, 0) for v in mh.values.tolist()]], dtype=np.int64)
                inputs[k] = remap[mh.codes]
            elif k.startswith("vec."):
                inputs[k] = np.asarray(side.vectors[k[4:]], dtype=np.float32)
            elif k == "text.tokens":
                inputs[k] = TokenVocabulary.from_array(self.inputs_["text.vocab"]).encode(side.text, self.config.text_len)
            elif k == "text.vectors":
                vecs = side.text_vectors if side.text_vectors is not None else side.with_text_vectors().text_vectors
                inputs[k] = np.asarray(vecs, dtype=np.float32)
            else:
                inputs[k] = self.inputs_[k]
        probe = self._make_net(1, side.n_items, inputs, np.zeros(side.n_items))
        probe.load_state_dict({k: v for k, v in net.state_dict().items()
                               if not k.startswith(("user.", "hist.", "item."))}, strict=False)
        probe.eval()
        with torch.no_grad():
            return probe.content(torch.arange(side.n_items)).float().numpy()

    # -------------------------------------------------------- persistence
    def _state(self) -> dict[str, np.ndarray]:
        state = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        state.update({f"in.{k}": v for k, v in self.inputs_.items()})
        state["sequences"] = self.sequences_
        state["seen"] = self.seen_
        state["item_vectors"] = self.item_vectors_
        return state

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        from zenrec.train import pick_device

        self.sequences_ = arrays["sequences"]
        self.seen_ = arrays["seen"].astype(bool)
        self.item_vectors_ = arrays["item_vectors"]
        self.inputs_ = {k[3:]: v for k, v in arrays.items() if k.startswith("in.")}
        net = self._make_net(self.n_users_, self.n_items_, self.inputs_, self.seen_)
        net.load_state_dict({k[4:]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()
                             if k.startswith("net.")})
        self.net_ = net.to(pick_device(None, 1)).eval()
