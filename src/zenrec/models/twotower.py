"""Two-tower DNN: users and items embedded apart, scored by a dot product (or a scaled cosine).

* **User tower** — the user's id embedding (users seen in training only),
  plus its ``history_len`` most recent items pooled (mean, or attention with
  a learned recency bias), plus an MLP over its user features: categorical /
  multi-hot (mean of value embeddings per column), numeric (standardised)
  and precomputed vectors.
* **Item tower** — the item's id embedding plus a content vector: an MLP over
  its categorical / multi-hot features, numeric features (standardised), its
  text and any precomputed vectors.  Text is read one of two ways: ``text_encoder="cnn"`` learns token
  embeddings and a 1-D convolution over the words (max-pooled); ``"minilm"``
  feeds frozen 384-d MiniLM sentence vectors
  (:class:`~zenrec.features.text.SentenceEncoder`, cached on disk).

Side information comes as ``fit(..., side=...)``: an
:class:`~zenrec.features.side.ItemFeatures`, a
:class:`~zenrec.features.side.UserFeatures`, or both in a
:class:`~zenrec.features.side.Side`.  Items with no training interaction
(**cold-start items**) get a zero id embedding, so they are scored from
content alone; during training each item's id embedding is dropped with
probability ``id_dropout`` so that the content path alone must already place
items well.  Users with no training interaction likewise get no id
embedding and are scored from their features and history
(:meth:`TwoTower.score_new_users` scores users outside the training range
from their feature rows).  Training is softmax cross-entropy of each
(user, item) pair against all items, or against in-batch plus uniform
negatives with logQ correction (``loss="sampled"``, for large catalogues).
The user's other training items are left out of that softmax:
they are positives too, not negatives.  The target item is
left out of the user's history pool so the model cannot just look it up.
Early stopping watches validation NDCG@10.

Everything scoring needs — the network weights, the item and user features
as arrays, the token vocabulary (unicode) and the users' recent items — is
saved with the model, so a reloaded model gives identical scores with no side
input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from zenrec.data.interactions import Interactions
from zenrec.errors import ConfigError
from zenrec.features.side import ItemFeatures, MultiHot, Side, UserFeatures
from zenrec.models.base import ModelConfig
from zenrec.models.explain import Contribution, Explanation, explain_scores
from zenrec.models.neural import TorchRecommender
from zenrec.models.query import Query, Vectors
from zenrec.train.params import BatchSize, Epochs, LearningRate, Optimizer, OptimizerWeightDecay, Patience
from zenrec.train.privacy import UserDPParams

__all__ = ["TwoTower", "TwoTowerConfig"]

log = logging.getLogger(__name__)


class TwoTowerConfig(ModelConfig, UserDPParams):
    """Hyper-parameters of :class:`TwoTower` (``dp_*``: user-level differential privacy, docs/guide/privacy.md)."""

    factors: int = Field(64, ge=1, description="size of user and item vectors")
    hidden: int = Field(256, ge=1, description="width of the item (and user) content MLP")
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
    history_len: int = Field(100, ge=1, description="recent items the user tower pools")
    history_dropout: float = Field(0.0, ge=0, lt=1, description="share of history items dropped per step")
    # chosen on the cold-item benchmark (docs/benchmark-notes.md, "Defaults chosen on these benchmarks")
    id_dropout: float = Field(
        0.1, ge=0, lt=1, description="probability of dropping an item's id embedding in a training step "
        "(teaches the content path to stand alone for cold-start items)"
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout inside the content MLPs")
    loss: Literal["softmax", "sampled"] = Field(
        "softmax", description="softmax: over all items; sampled: in-batch + uniform negatives with logQ correction"
    )
    negatives: int = Field(1024, ge=1, description="uniform negatives per step for loss='sampled'")
    optimizer: Optimizer = "adam"
    lr: LearningRate = 1e-3
    weight_decay: OptimizerWeightDecay = 0.0
    batch_size: BatchSize = 1024
    epochs: Epochs = 100
    patience: Patience = 5

    @model_validator(mode="after")
    def _check_private(self) -> TwoTowerConfig:
        if self.dp_epsilon is not None:
            if self.loss != "softmax":
                raise ValueError("dp_epsilon needs loss='softmax' (sampled negatives correct by private item counts)")
        return self


def _feature_spec(inputs: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    """Names and sizes of the feature arrays under ``prefix`` (``""`` items, ``"user."`` users)."""
    n = len(prefix)
    keys = [k[n:] for k in inputs if k.startswith(prefix) and not (prefix == "" and k.startswith("user."))]
    cats = sorted(k[4:-6] for k in keys if k.startswith("cat.") and k.endswith(".codes"))
    vecs = sorted(k[4:] for k in keys if k.startswith("vec."))
    nums = sorted(k[4:] for k in keys if k.startswith("num.") and not k.endswith(".stats"))
    spec: dict[str, Any] = {
        "cats": {name: len(inputs[f"{prefix}cat.{name}.values"]) for name in cats},
        "vectors": {name: inputs[f"{prefix}vec.{name}"].shape[1] for name in vecs},
        "numeric": nums,
    }
    if f"{prefix}text.vocab" in inputs:
        spec["n_tokens"] = len(inputs[f"{prefix}text.vocab"])
    if f"{prefix}text.vectors" in inputs:
        spec["text_dim"] = inputs[f"{prefix}text.vectors"].shape[1]
    return spec


class TwoTower(TorchRecommender):
    """Two-tower DNN over ids, histories, item and user features (see the module docstring)."""

    name = "twotower"
    Config = TwoTowerConfig
    #: options removed after they lost on the cold-item benchmark (docs/benchmark-notes.md)
    retired = {"history_pool": "mean", "user_ids": True, "user_id_dropout": 0.0, "similarity": "dot",
               "temperature": 0.1, "mask_seen": True}
    test_config = {"factors": 16, "hidden": 32, "history_len": 20, "epochs": 10, "batch_size": 256, "lr": 0.01}
    uses_side = True
    supports_history = True

    # ------------------------------------------------------------- inputs
    def _prepare_inputs(self, side: Any, n_users: int, n_items: int) -> dict[str, np.ndarray]:
        """Feature arrays the towers read, as saved in the model's state (user ones under ``user.``)."""
        from zenrec.features.text import TokenVocabulary

        c = self.config
        try:
            side = Side.of(side)
        except ConfigError:
            raise ConfigError(f"TwoTower reads side=ItemFeatures(...), UserFeatures(...) or Side(items=..., "
                              f"users=...); got {type(side).__name__}") from None
        out: dict[str, np.ndarray] = {}
        items, users = side.items, side.users
        if items is not None:
            if items.n_items != n_items:
                raise ConfigError(f"side information describes {items.n_items} items; the interactions have {n_items}")
            out.update(_categorical_arrays("", items.categorical))
            out.update(_numeric_arrays("", items.numeric))
            for name, v in items.vectors.items():
                out[f"vec.{name}"] = np.asarray(v, dtype=np.float32)
            if c.text_encoder == "cnn" and items.text is not None:
                vocab = TokenVocabulary.build(items.text, c.min_token_count, c.max_tokens)
                out["text.tokens"] = vocab.encode(items.text, c.text_len)
                out["text.vocab"] = vocab.to_array()
            elif c.text_encoder == "minilm" and (items.text is not None or items.text_vectors is not None):
                vecs = items.text_vectors if items.text_vectors is not None else items.with_text_vectors().text_vectors
                out["text.vectors"] = np.asarray(vecs, dtype=np.float32)
            elif c.text_encoder != "none" and items.text is None:
                log.info("twotower: text_encoder=%r but the side information has no text", c.text_encoder)
        if users is not None:
            if users.n_users != n_users:
                raise ConfigError(f"user features describe {users.n_users} users; the interactions have {n_users}")
            out.update(_categorical_arrays("user.", users.categorical))
            for name, v in users.vectors.items():
                out[f"user.vec.{name}"] = np.asarray(v, dtype=np.float32)
            out.update(_numeric_arrays("user.", users.numeric))
        return out

    def _make_net(self, n_users: int, n_items: int, inputs: dict[str, np.ndarray], seen: np.ndarray,
                  user_seen: np.ndarray):
        import torch

        from zenrec.models.nets.twotower import TwoTowerNet

        c = self.config
        spec, user_spec = _feature_spec(inputs, ""), _feature_spec(inputs, "user.")
        net = TwoTowerNet(n_users, n_items, spec, user_spec, factors=c.factors, hidden=c.hidden,
                          token_dim=c.token_dim, cnn_kernel=c.cnn_kernel, dropout=c.dropout)
        net.seen = torch.as_tensor(seen, dtype=torch.float32)
        net.user_seen = torch.as_tensor(user_seen, dtype=torch.float32)
        for module, prefix, sp_ in ((net, "", spec), (net.ucontent, "user.", user_spec)):
            # buffers are named by position: column names may hold any character
            for j, name in enumerate(sp_["cats"]):
                module.register_buffer(f"cat_{j}", torch.as_tensor(inputs[f"{prefix}cat.{name}.codes"]),
                                       persistent=False)
            for j, name in enumerate(sp_["vectors"]):
                module.register_buffer(f"vec_{j}", torch.as_tensor(inputs[f"{prefix}vec.{name}"]), persistent=False)
            if sp_["numeric"]:
                cols = []
                for name in sp_["numeric"]:
                    mean, std = inputs[f"{prefix}num.{name}.stats"]
                    cols.append(np.nan_to_num((inputs[f"{prefix}num.{name}"] - mean) / std, nan=0.0))
                module.register_buffer("numeric", torch.as_tensor(np.stack(cols, 1), dtype=torch.float32),
                                       persistent=False)
            if f"{prefix}text.tokens" in inputs:
                module.register_buffer("tokens", torch.as_tensor(inputs[f"{prefix}text.tokens"]), persistent=False)
            if f"{prefix}text.vectors" in inputs:
                module.register_buffer("text_vectors", torch.as_tensor(inputs[f"{prefix}text.vectors"]),
                                       persistent=False)
        return net

    # ---------------------------------------------------------------- fit
    def _build(self, train: Interactions, device: Any, seed: int) -> Any:
        import torch

        from zenrec.train.negatives import MixtureLogQ, NegativeSampler
        from zenrec.train.sequences import last_items

        c = self.config
        self.inputs_ = self._prepare_inputs(self.side_, train.n_users, train.n_items)
        # under DP which items have events is private: every catalogue item keeps a (noised) id embedding
        self.seen_ = train.item_counts() > 0 if c.dp_epsilon is None else np.ones(train.n_items, dtype=bool)
        self.sequences_ = last_items(train, np.arange(train.n_users), c.history_len).astype(np.int32)
        net = self._make_net(train.n_users, train.n_items, self.inputs_, self.seen_, self._user_seen()).to(device)
        self._user_vectors = None
        x = train.binary.tocoo()
        csr = train.binary.tocsr()
        self._pairs = (torch.as_tensor(x.row, dtype=torch.long, device=device),
                       torch.as_tensor(x.col, dtype=torch.long, device=device))
        self._seqs = torch.as_tensor(self.sequences_, dtype=torch.long, device=device)
        self._csr = (torch.as_tensor(csr.indptr, dtype=torch.long, device=device),
                     torch.as_tensor(csr.indices, dtype=torch.long, device=device))
        self._log_q = MixtureLogQ(self.popularity_, c.negatives, device)  # distinct targets + uniform
        self._gen = torch.Generator(device=device).manual_seed(seed)
        self._sampler = NegativeSampler(train.n_items, "uniform", device=device, generator=self._gen)
        self._dp_users = torch.as_tensor(np.flatnonzero(np.diff(csr.indptr) > 0), dtype=torch.long, device=device)
        return net

    def _full_softmax_rows(self) -> int | None:
        return self.config.batch_size if self.config.loss == "softmax" else None

    def _batches(self, epoch: int) -> Iterator[Any]:
        """Every training pair once, in random order (under DP: Poisson-sampled users, :meth:`_user_rows`)."""
        if self.config.dp_epsilon is not None:
            from zenrec.train.privacy import poisson_batches

            for b in poisson_batches(len(self._dp_users), self.config.batch_size, self._gen):
                yield self._user_rows(self._dp_users[b])
            return
        users, items = self._pairs
        for b in self._epoch_batches(len(users), self.config.batch_size, users.device):
            yield users[b], items[b]

    def _loss(self, batch: Any) -> Any:
        """Softmax cross-entropy of each pair's user against all items (or sampled candidates)."""
        import torch

        from zenrec.models.nets.twotower import in_rows
        from zenrec.train.negatives import in_batch_candidates

        c, net, gen = self.config, self.net_, self._gen
        u, tgt = batch
        device = u.device
        hist = self._seqs[u]
        drop = hist == (tgt[:, None] + 1)  # the target is not its own evidence
        if c.history_dropout > 0:
            drop |= torch.rand(hist.shape, device=device, generator=gen) < c.history_dropout
        uv = net.users(u, hist.masked_fill(drop, 0))
        if c.loss == "softmax":
            cand = torch.arange(self.n_items_, device=device)
        else:
            cand = in_batch_candidates(tgt, self._sampler, c.negatives)
        keep = (torch.rand(len(cand), device=device, generator=gen) >= c.id_dropout).float()
        logits = uv @ net.items(cand, keep).T
        # the user's other training items are positives too, not negatives: they leave the softmax
        other = in_rows(*self._csr, u, cand) & (cand[None, :] != tgt[:, None])
        logits = logits.masked_fill(other, float("-inf"))
        if c.loss == "softmax":
            return torch.nn.functional.cross_entropy(logits, tgt)
        labels = (cand[None, :] == tgt[:, None]).float()
        logp = torch.log_softmax(logits - self._log_q(len(tgt), cand), dim=1)
        logp = logp.masked_fill(labels == 0, 0.0)  # no 0 · -inf
        return -((labels / labels.sum(1, keepdim=True)) * logp).sum(1).mean()

    # ------------------------------------------------ differential privacy
    _dp_unit = "one user (all of the user's events form one example)"

    def _user_rows(self, users: Any) -> tuple[Any, ...]:
        """One DP example per user: up to ``dp_user_items`` of the user's training items drawn as targets, the
        rest of the user's recent items as the history input, the user's other items out of the softmax.

        ``(users, histories, targets, target weights, other-items mask, id-keep mask)``; rows with fewer
        items pad their targets with their first one at weight 0."""
        import torch

        from zenrec.models.nets.twotower import rows_of

        c, gen = self.config, self._gen
        device = users.device
        indptr, indices = self._csr
        which, cols = rows_of(indptr, indices, users)
        key = which.double() + torch.rand(len(which), device=device, generator=gen, dtype=torch.float64)
        order = torch.argsort(key)  # each user's items in a random order, users in turn
        which, cols = which[order], cols[order]
        counts = torch.bincount(which, minlength=len(users))
        rank = torch.arange(len(which), device=device) - (counts.cumsum(0) - counts)[which]
        k = int(min(c.dp_user_items, int(counts.max()) if len(counts) else 1))
        pick = rank < k
        targets = cols[rank == 0][:, None].repeat(1, k)  # padding: the first target again, at weight 0
        targets[which[pick], rank[pick]] = cols[pick]
        weights = torch.zeros(len(users), k, device=device)
        weights[which[pick], rank[pick]] = 1.0
        n = self.n_items_
        is_target = torch.zeros(len(users), n, dtype=torch.bool, device=device)
        is_target[which[pick], cols[pick]] = True
        other = torch.zeros(len(users), n, dtype=torch.bool, device=device)
        other[which, cols] = True
        other &= ~is_target
        hist = self._seqs[users]
        hist = hist.masked_fill(torch.gather(is_target, 1, (hist - 1).clamp(min=0)) & (hist > 0), 0)
        keep = (torch.rand(len(users), n, device=device, generator=gen) >= c.id_dropout).float()
        return users, hist, targets, weights, other, keep

    def _dp_row_loss(self) -> Any:
        """The loss of one user: softmax cross-entropy of each drawn target over all items, averaged."""
        import torch

        def loss(net: Any, user: Any, hist: Any, targets: Any, weights: Any, other: Any, keep: Any) -> Any:
            uv = net.users(user[None], hist[None])[0]
            logits = (net.items(torch.arange(len(other), device=other.device), keep) @ uv).masked_fill(
                other, float("-inf"))
            logp = torch.log_softmax(logits, dim=0)
            return -(weights * logp[targets]).sum() / weights.sum()

        return loss

    def _n_examples(self) -> int:
        return len(self._dp_users)  # under DP the unit of privacy: one user with training events

    def _after_fit(self) -> None:
        del self._pairs, self._seqs, self._csr, self._log_q, self._gen, self._sampler, self._dp_users

    def _remember(self, full: Interactions) -> None:
        """Score from every event: the stored histories end with the held-out validation items too (which items
        have a trained id embedding, ``seen_``, stays as trained)."""
        from zenrec.train.sequences import last_items

        self.sequences_ = last_items(full, np.arange(full.n_users), self.config.history_len).astype(np.int32)
        self._user_vectors = None

    def _n_batches(self) -> int:
        n = len(self._pairs[0]) if self.config.dp_epsilon is None else len(self._dp_users)
        return -(-n // self.config.batch_size)

    def _user_seen(self) -> np.ndarray:
        """Users with a training interaction (the only ones with a trained id embedding)."""
        return self.sequences_[:, -1] > 0

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
        """User vectors from user ids and left-padded histories of item ids + 1 (0 = padding).

        Users without a training interaction get no id embedding; users outside
        ``[0, n_users)`` get no user features either."""
        import torch

        net = self.net_
        device = net.seen.device
        users = np.asarray(users, dtype=np.int64)
        seqs = np.asarray(seqs, dtype=np.int64)[:, -self.config.history_len :]
        with torch.no_grad():
            out = net.users(torch.as_tensor(users, device=device), torch.as_tensor(seqs, device=device))
        return out.float().cpu().numpy()

    def _score_seqs(self, users: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        for s in range(0, len(users), 1024):
            np.matmul(self.user_vectors(users[s : s + 1024], seqs[s : s + 1024]), self.item_vectors_.T,
                      out=out[s : s + 1024])  # straight into the block: no second users × items array
        return out

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._score_seqs(users, self.sequences_[users])

    def _score_history(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        from zenrec.train.sequences import last_items

        return self._score_seqs(users, last_items(history, users, self.config.history_len))

    def _new_inputs(self, prefix: str, feats: ItemFeatures | UserFeatures) -> dict[str, np.ndarray]:
        """The model's input arrays under ``prefix``, rebuilt from ``feats`` for rows outside training.

        Categorical values and tokens unseen at training time count as missing / unknown."""
        from zenrec.features.text import TokenVocabulary

        what = "item" if prefix == "" else "user"
        out: dict[str, np.ndarray] = {}
        for k, v in self.inputs_.items():
            if not k.startswith(prefix) or (prefix == "" and k.startswith("user.")):
                out[k] = v
                continue
            key = k[len(prefix):]
            if key.startswith("cat.") and key.endswith(".codes"):
                name = key[4:-6]
                if name not in feats.categorical:
                    raise ConfigError(f"the model reads {what} categorical feature {name!r}; the features have none")
                mh = feats.categorical[name]
                known = {x: i + 1 for i, x in enumerate(self.inputs_[f"{prefix}cat.{name}.values"].tolist())}
                remap = np.asarray([0, *[known.get(x, 0) for x in mh.values.tolist()]], dtype=np.int64)
                out[k] = remap[mh.codes]
            elif key.startswith("vec."):
                if key[4:] not in feats.vectors:
                    raise ConfigError(f"the model reads {what} vectors {key[4:]!r}; the features have none")
                out[k] = np.asarray(feats.vectors[key[4:]], dtype=np.float32)
            elif key.startswith("num.") and not key.endswith(".stats"):
                if key[4:] not in feats.numeric:
                    raise ConfigError(f"the model reads {what} numeric feature {key[4:]!r}; the features have none")
                out[k] = np.asarray(feats.numeric[key[4:]], dtype=np.float32)
            elif key == "text.tokens":
                out[k] = TokenVocabulary.from_array(self.inputs_["text.vocab"]).encode(feats.text, self.config.text_len)
            elif key == "text.vectors":
                vecs = feats.text_vectors if feats.text_vectors is not None else feats.with_text_vectors().text_vectors
                out[k] = np.asarray(vecs, dtype=np.float32)
            else:
                out[k] = v
        return out

    def _probe(self, inputs: dict[str, np.ndarray], n_users: int, n_items: int):
        """A network over new feature rows with this model's content weights."""
        probe = self._make_net(n_users, n_items, inputs, np.zeros(n_items), np.zeros(n_users))
        probe.load_state_dict({k: v for k, v in self.net_.state_dict().items()
                               if not k.startswith(("user.", "hist.", "item."))}, strict=False)
        return probe.to(self.net_.seen.device).eval()

    def item_content_vectors(self, side: ItemFeatures) -> np.ndarray:
        """Vectors of items described by ``side`` from content alone (new items outside the catalogue).

        ``side`` must carry the same kinds of features as at training time;
        categorical values and tokens unseen then count as missing / unknown.
        """
        import torch

        if self.net_.mlp is None:
            raise ConfigError("this TwoTower was trained without item features; it has no content path")
        probe = self._probe(self._new_inputs("", side), 1, side.n_items)
        with torch.no_grad():
            idx = torch.arange(side.n_items, device=probe.seen.device)
            return probe.items(idx).float().cpu().numpy()

    def score_new_users(self, features: UserFeatures, history: Interactions | None = None) -> np.ndarray:
        """Scores (``features.n_users × n_items``) of users outside training, from their features and,
        when given, their item history (``history`` rows = the rows of ``features``)."""
        import torch

        from zenrec.train.sequences import last_items

        if self.net_.ucontent.mlp is None:
            raise ConfigError("this TwoTower was trained without user features; pass side=UserFeatures(...) "
                              "or Side(users=...) to fit")
        n = features.n_users
        if history is not None and (history.n_users != n or history.n_items != self.n_items_):
            raise ConfigError(f"history is {history.n_users} users × {history.n_items} items; expected "
                              f"{n} users (the feature rows) × {self.n_items_} items")
        L = self.config.history_len
        seqs = last_items(history, np.arange(n), L) if history is not None else np.zeros((n, L), np.int64)
        probe = self._probe(self._new_inputs("user.", features), n, self.n_items_)
        probe.seen = self.net_.seen
        probe.hist.load_state_dict(self.net_.hist.state_dict())
        with torch.no_grad():
            dev = probe.seen.device
            uv = probe.users(torch.arange(n, device=dev), torch.as_tensor(seqs, device=dev))
        return (uv.float().cpu().numpy() @ self.item_vectors_.T).astype(np.float32)

    # ------------------------------------------------------------ explaining
    def explain(self, query: Query, items: np.ndarray) -> list[Explanation]:
        """The additive split of ``u · v_i``: the user vector is the pooled history (a weighted sum of one
        vector per history item) + the id embedding + the user-feature vector, so each history item, ``user
        id`` and ``user features`` contribute their dot product with ``v_i`` (method ``parts``).  The item side's
        split (``item id`` vs ``item features``, ``u · part``) is in ``extra["item_side"]``, and
        ``extra["item_feature_groups"]`` says how much of the score each feature group carries (text, each
        categorical column, numeric, vectors): the score minus the score with that group's inputs left out.  The
        content MLP is not additive, so these need not sum to the item-features part."""
        import torch

        items, scores, popular = explain_scores(self, query, items)
        if popular is not None:
            return popular
        L = self.config.history_len
        u = -1 if query.user is None else int(query.user)
        known = 0 <= u < int(self.n_users_)
        if query.history is not None and len(query.history):
            h = np.asarray(query.history, dtype=np.int64).reshape(-1)[-L:] + 1
            seq = np.pad(h, (L - len(h), 0))
        else:
            seq = self.sequences_[u].astype(np.int64) if known else np.zeros(L, np.int64)
        net = self.net_
        dev = net.seen.device
        with torch.no_grad():
            s = torch.as_tensor(seq[None], device=dev)
            valid = (s > 0) & (net.seen_pad[s] > 0)
            w = valid.float() / valid.sum(1, keepdim=True).clamp(min=1)
            per_pos = (w[..., None] * net.hist(s))[0].float().cpu().numpy()  # L × d
            row = torch.as_tensor([max(u, 0)], device=dev)
            uid = (net.user(row) * (net.user_seen[row] * float(known))[:, None])[0].float().cpu().numpy()
            content = net.ucontent.content(row)
            ufeat = None if content is None or not known else content[0].float().cpu().numpy()
            idx = torch.as_tensor(items, device=dev)
            v_id = (net.item(idx) * net.seen[idx][:, None]).float().cpu().numpy()
            full = net.content(idx)
            # each feature group left out in turn (its inputs fed as zeros): how much the score leans on it
            without = {} if full is None else {g: (full - net.content(idx, drop=g)).float().cpu().numpy()
                                                 for g in net.groups()}
        v = self.item_vectors_[items].astype(np.float64)
        user = per_pos.sum(0) + uid + (0 if ufeat is None else ufeat)
        pos_items = seq - 1
        used = np.flatnonzero(valid[0].cpu().numpy())
        out = []
        for j, i in enumerate(items):
            weights: dict[Any, float] = {}
            for p in used:
                weights[int(pos_items[p])] = weights.get(int(pos_items[p]), 0.0) + float(per_pos[p] @ v[j])
            parts = [Contribution(x, item=k) for k, x in weights.items()]
            if known:
                parts.append(Contribution(float(uid @ v[j]), name="user id"))
            if ufeat is not None:
                parts.append(Contribution(float(ufeat @ v[j]), name="user features"))
            parts.sort(key=lambda c: -abs(c.weight))
            total = float(sum(c.weight for c in parts))
            item_side = {"item id": float(user @ v_id[j]), "item features": float(user @ (v[j] - v_id[j]))}
            groups = {g: float(user @ d[j]) for g, d in without.items()}
            out.append(Explanation(int(i), float(scores[j]), "parts", tuple(parts), 0.0, float(scores[j]) - total,
                                   extra={"item_side": item_side, "item_feature_groups": groups}))
        return out

    # -------------------------------------------------------- persistence
    def vectors(self) -> Vectors:
        """Scores of known users are ``user_vector · item_vector``; the user vectors (from ids, features
        and the stored history) are computed once, on the first call."""
        self._check_fitted()
        if self._user_vectors is None:
            users = np.arange(int(self.n_users_))
            self._user_vectors = np.concatenate(
                [self.user_vectors(users[s : s + 1024], self.sequences_[s : s + 1024])
                 for s in range(0, len(users), 1024)] or [np.empty((0, self.item_vectors_.shape[1]), np.float32)])
        return Vectors(self._user_vectors, self.item_vectors_)

    def history(self, user: int) -> np.ndarray:
        """The user's last ``history_len`` training items, oldest first."""
        row = self.sequences_[user].astype(np.int64)
        return row[row > 0] - 1  # stored as ids + 1, 0 = padding

    def _state(self) -> dict[str, np.ndarray]:
        from zenrec.train.weights import net_arrays

        state = net_arrays(self.net_)
        state.update({f"in.{k}": v for k, v in self.inputs_.items()})
        state["sequences"] = self.sequences_
        state["seen"] = self.seen_
        state["item_vectors"] = self.item_vectors_
        return state

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._user_vectors: np.ndarray | None = None
        from zenrec.train.weights import load_net_arrays

        self.sequences_ = arrays["sequences"]
        self.seen_ = arrays["seen"].astype(bool)
        self.item_vectors_ = arrays["item_vectors"]
        self.inputs_ = {k[3:]: v for k, v in arrays.items() if k.startswith("in.")}
        net = self._make_net(self.n_users_, self.n_items_, self.inputs_, self.seen_, self._user_seen())
        self.net_ = load_net_arrays(net, arrays, self.name)

    def _index_bounds(self, state: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
        bounds = {"sequences": (0, self.n_items_)}  # item index + 1, 0 = padding
        for key, values in state.items():
            if key.startswith("in.") and key.endswith(".values") and ".cat." in f".{key[3:]}":
                bounds[f"{key[:-7]}.codes"] = (0, len(values))  # value index + 1, 0 = none
            elif key.startswith("in.") and key.endswith("text.vocab"):
                bounds[f"{key[:-6]}.tokens"] = (0, len(values) - 1)
        return bounds

    def _may_hold_nan(self, state: dict[str, np.ndarray]) -> set[str]:
        # numeric side features keep their missing values (filled with the mean when used)
        return {k for k in state if k.startswith("in.") and ".num." in f".{k[3:]}" and not k.endswith(".stats")}


def _numeric_arrays(prefix: str, numeric: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each numeric column (NaN = missing) and its mean and standard deviation over the known values."""
    out: dict[str, np.ndarray] = {}
    for name, v in numeric.items():
        v = np.asarray(v, dtype=np.float32)
        ok = v[np.isfinite(v)]
        mean = float(ok.mean()) if len(ok) else 0.0
        std = float(ok.std()) if len(ok) > 1 else 0.0
        out[f"{prefix}num.{name}"] = v
        out[f"{prefix}num.{name}.stats"] = np.asarray([mean, std if std > 0 else 1.0], dtype=np.float32)
    return out


def _categorical_arrays(prefix: str, categorical: Mapping[str, MultiHot]) -> dict[str, np.ndarray]:
    """A categorical column's codes and value vocabulary as arrays, under ``prefix``."""
    out: dict[str, np.ndarray] = {}
    for name, mh in categorical.items():
        out[f"{prefix}cat.{name}.codes"] = mh.codes.astype(np.int64)
        out[f"{prefix}cat.{name}.values"] = np.asarray(mh.values, dtype=np.str_)
    return out
