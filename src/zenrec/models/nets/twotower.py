"""The two-tower network: a content MLP per side, id embeddings, a pooled history, and the mask helpers
of its softmax (see :mod:`zenrec.models.twotower`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["Content", "TwoTowerNet", "in_rows", "rows_of"]


class Content(nn.Module):
    """An MLP over one side's features: categorical (mean of value embeddings), text, vectors, numbers.

    ``spec`` names the features and their sizes; the feature arrays
    themselves are buffers the model registers (``cat_<j>``, ``tokens``,
    ``text_vectors``, ``vec_<j>``, ``numeric``).
    """

    def __init__(self, spec: dict[str, Any], factors: int, hidden: int, token_dim: int, cnn_kernel: int,
                 dropout: float) -> None:
        super().__init__()
        d = factors
        self.spec = spec
        self.cats = nn.ModuleList(nn.Embedding(n + 1, d, padding_idx=0) for n in spec["cats"].values())
        width = d * len(spec["cats"])
        self.tok: nn.Embedding | None = None
        self.conv: nn.Conv1d | None = None
        if spec.get("n_tokens"):
            self.tok = nn.Embedding(spec["n_tokens"], token_dim, padding_idx=0)
            self.conv = nn.Conv1d(token_dim, d, cnn_kernel, padding=cnn_kernel // 2)
            width += d
        width += spec.get("text_dim", 0) + sum(spec["vectors"].values()) + len(spec["numeric"])
        self.mlp: nn.Sequential | None = None
        if width:
            self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, d))

    def groups(self) -> list[str]:
        """The feature groups :meth:`content` can leave out: each categorical column, ``text``, ``vectors``,
        ``numeric`` (those present)."""
        out = [str(c) for c in self.spec["cats"]]
        if self.tok is not None or hasattr(self, "text_vectors"):
            out.append("text")
        if self.spec["vectors"]:
            out.append("vectors")
        if self.spec["numeric"]:
            out.append("numeric")
        return out

    def content(self, idx: torch.Tensor, drop: str | None = None) -> torch.Tensor | None:
        """Content vectors of rows ``idx`` (None without features); ``drop`` (one of :meth:`groups`) feeds that
        group's inputs as zeros (no category, no text, the mean number), for explanations."""
        if self.mlp is None:
            return None
        parts = []

        def add(group: str, x: torch.Tensor) -> None:
            parts.append(torch.zeros_like(x) if group == drop else x)

        for j, (name, emb) in enumerate(zip(self.spec["cats"], self.cats, strict=True)):
            codes = getattr(self, f"cat_{j}")[idx]
            e = emb(codes)  # B × k × d, 0 = padding (zero vector)
            add(str(name), e.sum(1) / (codes > 0).sum(1, keepdim=True).clamp(min=1))
        if self.tok is not None and self.conv is not None:
            tokens = self.tokens[idx]
            h = torch.relu(self.conv(self.tok(tokens).transpose(1, 2)))[..., : tokens.shape[1]]
            h = h.masked_fill((tokens == 0)[:, None, :], 0.0)  # relu ≥ 0, so 0 never wins a max
            add("text", h.max(-1).values)
        if hasattr(self, "text_vectors"):
            add("text", self.text_vectors[idx])
        for j in range(len(self.spec["vectors"])):
            add("vectors", getattr(self, f"vec_{j}")[idx])
        if self.spec["numeric"]:
            add("numeric", self.numeric[idx])
        return self.mlp(torch.cat(parts, dim=1))


class TwoTowerNet(Content):
    """Item content at the top level (its own features); the user side in ``self.ucontent``.

    ``items(idx)`` and ``users(users, seqs)`` are the two towers.  The
    ``seen`` / ``user_seen`` buffers (1 for ids with a training interaction)
    are set by the model and saved with it as arrays, not in the state dict.
    """

    def __init__(self, n_users: int, n_items: int, spec: dict[str, Any], user_spec: dict[str, Any], *,
                 factors: int, hidden: int, token_dim: int, cnn_kernel: int, dropout: float) -> None:
        super().__init__(spec, factors, hidden, token_dim, cnn_kernel, dropout)
        d = factors
        self.n_users = n_users
        self.user = nn.Embedding(n_users, d)
        self.hist = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.item = nn.Embedding(n_items, d)
        for emb in (self.user, self.hist, self.item):
            nn.init.normal_(emb.weight, std=0.05)
        with torch.no_grad():
            self.hist.weight[0].zero_()
        self.ucontent = Content(user_spec, factors, hidden, token_dim, cnn_kernel, dropout)
        self.register_buffer("seen", torch.ones(n_items), persistent=False)
        self.register_buffer("user_seen", torch.ones(n_users), persistent=False)

    # ------------------------------------------------------------ towers
    def items(self, idx: torch.Tensor, id_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors of ``idx``: id embedding (zero for cold items) + content."""
        mask = self.seen[idx]
        if id_keep is not None:
            mask = mask * id_keep
        v = self.item(idx) * mask[:, None]
        content = self.content(idx)
        return v if content is None else v + content

    def pool(self, seqs: torch.Tensor) -> torch.Tensor:
        """Pooled history of padded item ids + 1 (0 = padding); items unseen in training are skipped."""
        valid = (seqs > 0) & (self.seen_pad[seqs] > 0)
        h = self.hist(seqs)
        w = valid.float() / valid.sum(1, keepdim=True).clamp(min=1)
        return (w[..., None] * h).sum(1)

    def users(self, users: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
        """User vectors from ids, padded histories and user features.

        ``users`` outside ``[0, n_users)`` get neither id embedding nor features."""
        inside = (users >= 0) & (users < self.n_users)
        rows = users.clamp(0, self.n_users - 1)
        u = self.pool(seqs)
        known = self.user_seen[rows] * inside
        u = u + self.user(rows) * known[:, None]
        content = self.ucontent.content(rows)
        if content is not None:
            u = u + content * inside[:, None]
        return u

    @property
    def seen_pad(self) -> torch.Tensor:
        return torch.cat([self.seen.new_zeros(1), self.seen])


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ranges ``starts[k] … starts[k] + counts[k] - 1`` flattened: (owner k, position) per element."""
    owner = torch.repeat_interleave(torch.arange(len(starts), device=starts.device), counts)
    offset = torch.arange(len(owner), device=starts.device) - (counts.cumsum(0) - counts)[owner]
    return owner, starts[owner] + offset


def rows_of(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(position in ``rows``, column) of every stored entry of the CSR rows ``rows``."""
    which, pos = _ranges(indptr[rows], indptr[rows + 1] - indptr[rows])
    return which, indices[pos]


def in_rows(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """``len(rows) × len(cand)`` bools: is item ``cand[j]`` stored in CSR row ``rows[i]``?

    ``cand`` may repeat items; every copy is marked."""
    which, cols = rows_of(indptr, indices, rows)
    sorted_cand, order = torch.sort(cand)
    left = torch.searchsorted(sorted_cand, cols)
    hit, pos = _ranges(left, torch.searchsorted(sorted_cand, cols, right=True) - left)  # copies of each col
    out = torch.zeros(len(rows), len(cand), dtype=torch.bool, device=cand.device)
    out[which[hit], order[pos]] = True
    return out
