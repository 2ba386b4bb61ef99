"""The multi-task network: per side an MMoE or a shared bottom with a tower per task (see
:mod:`zenrec.models.multitask`), and the wide part's look-up."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MultiTaskNet", "TaskSide", "wide_pairs"]

N_TASKS = 2


def _mlp(i: int, o: int, dropout: float) -> nn.Module:
    layers = [nn.Linear(i, o), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers)


class TaskSide(nn.Module):
    """Input vector → one output vector per task (MMoE, or a shared bottom, then a tower per task)."""

    def __init__(self, architecture: str, factors: int, experts: int, expert_size: int, dropout: float) -> None:
        super().__init__()
        k = experts if architecture == "mmoe" else 1
        self.experts = nn.ModuleList([_mlp(factors, expert_size, dropout) for _ in range(k)])
        self.gates = nn.ModuleList([nn.Linear(factors, k) for _ in range(N_TASKS)]) \
            if architecture == "mmoe" else None
        self.towers = nn.ModuleList([nn.Sequential(_mlp(expert_size, expert_size, dropout),
                                                   nn.Linear(expert_size, factors))
                                     for _ in range(N_TASKS)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.gates is None:
            shared = self.experts[0](x)
            mixed = [shared] * N_TASKS
        else:
            ex = torch.stack([e(x) for e in self.experts], dim=-2)  # … × k × h
            mixed = [(torch.softmax(g(x), dim=-1).unsqueeze(-1) * ex).sum(-2) for g in self.gates]
        # residual: the raw embedding passes by the towers, so a tower starts near MF
        return [x + t(m) for t, m in zip(self.towers, mixed, strict=False)]


class MultiTaskNet(nn.Module):
    """User and item embeddings (plus history embeddings), a :class:`TaskSide` each, per-task item biases.

    ``users(...)`` and ``items(...)`` give each task's vectors and the raw
    embeddings they came from (which the L2 penalty reads).
    """

    def __init__(self, n_users: int, n_items: int, *, architecture: str, factors: int, experts: int,
                 expert_size: int, dropout: float, user_embedding: bool, history: bool, init_std: float,
                 wide_init_scale: float) -> None:
        super().__init__()
        self.use_user_embedding, self.use_history = user_embedding, history
        self.user = nn.Embedding(n_users, factors)
        self.item = nn.Embedding(n_items, factors)
        self.hist = nn.Embedding(n_items, factors)
        self.ibias = nn.Embedding(n_items, N_TASKS)
        self.bias = nn.Parameter(torch.zeros(N_TASKS))
        self.wide_scale = nn.Parameter(torch.full((N_TASKS,), wide_init_scale))
        self.user_side = TaskSide(architecture, factors, experts, expert_size, dropout)
        self.item_side = TaskSide(architecture, factors, experts, expert_size, dropout)
        for emb in (self.user, self.item, self.hist):
            nn.init.normal_(emb.weight, std=init_std)
        nn.init.zeros_(self.ibias.weight)

    def users(self, u: torch.Tensor, h_ptr: torch.Tensor, h_idx: torch.Tensor,
              leave_out: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-task vectors of users ``u`` and their id embeddings (zeros without ``user_embedding``).

        With ``history`` the mean embedding of the user's engaged items (CSR
        ``h_ptr`` / ``h_idx``) is added, ``leave_out[b]`` left out of row b."""
        x = self.user(u) if self.use_user_embedding else torch.zeros(len(u), self.user.embedding_dim, device=u.device)
        raw = x
        if self.use_history:
            start, end = h_ptr[u], h_ptr[u + 1]
            lens = end - start
            flat = torch.repeat_interleave(start - torch.cumsum(lens, 0) + lens, lens) + torch.arange(
                int(lens.sum()), device=u.device)
            seg = torch.repeat_interleave(torch.arange(len(u), device=u.device), lens)
            total = torch.zeros(len(u), x.shape[1], device=u.device).index_add_(0, seg, self.hist(h_idx[flat]))
            n = lens.to(x.dtype)
            if leave_out is not None:  # the target item is not part of its own evidence
                pos = torch.zeros(len(u), dtype=torch.bool, device=u.device)
                hit = h_idx[flat] == leave_out[seg]
                pos.index_fill_(0, seg[hit], True)
                total = total - self.hist(leave_out) * pos[:, None].to(x.dtype)
                n = n - pos.to(x.dtype)
            x = x + total / n.clamp(min=1.0)[:, None]
        return self.user_side(x), raw

    def items(self, items: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-task vectors of ``items`` and their id embeddings."""
        x = self.item(items)
        return self.item_side(x), x


def wide_pairs(wide: torch.Tensor, u: torch.Tensor, items: torch.Tensor, h_ptr: torch.Tensor,
               h_idx: torch.Tensor) -> torch.Tensor:
    """``2 × B × m`` wide scores ``Σ_{j ∈ history(u)} B_t[j, i]`` of users ``u`` (B) and their items (B × m)."""
    start, end = h_ptr[u], h_ptr[u + 1]
    lens = end - start
    flat = torch.repeat_interleave(start - torch.cumsum(lens, 0) + lens, lens) + torch.arange(
        int(lens.sum()), device=u.device)
    seg = torch.repeat_interleave(torch.arange(len(u), device=u.device), lens)
    hj = h_idx[flat]
    out = torch.zeros(wide.shape[0], len(u), items.shape[1], device=u.device)
    for t in range(wide.shape[0]):
        out[t].index_add_(0, seg, wide[t][hj[:, None], items[seg]])
    return out
