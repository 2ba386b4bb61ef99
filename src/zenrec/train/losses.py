"""Ranking losses shared by the PyTorch models.

* :func:`bce_loss` — binary cross-entropy, positives against sampled negatives;
* :func:`bpr_loss` — Bayesian personalised ranking, ``-log σ(s⁺ − s⁻)``;
* :func:`softmax_loss` — cross-entropy of a softmax over every item;
* :func:`sampled_softmax_loss` — softmax over candidate items (in-batch
  targets plus sampled negatives) with the logQ correction.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LOSSES", "bce_loss", "bpr_loss", "softmax_loss", "sampled_softmax_loss"]

#: names the model configs accept for these losses
LOSSES = ("ce", "sampled", "bce", "bpr")


def bce_loss(pos: Any, neg: Any, balanced: bool = True) -> Any:
    """Binary cross-entropy: positives' logits ``pos`` (m) labelled 1, negatives' ``neg`` (m or m × k) 0.

    ``balanced``: the two halves are averaged separately and added, so the
    positive term keeps its weight whatever the number of negatives;
    otherwise one mean over every logit.
    """
    import torch

    f = torch.nn.functional.binary_cross_entropy_with_logits
    if balanced:
        return f(pos, torch.ones_like(pos)) + f(neg, torch.zeros_like(neg))
    n_pos, n_neg = pos.numel(), neg.numel()
    return (f(pos, torch.ones_like(pos), reduction="sum") + f(neg, torch.zeros_like(neg), reduction="sum")) / (
        n_pos + n_neg)


def bpr_loss(pos: Any, neg: Any) -> Any:
    """Mean ``-log σ(pos − neg)`` over every (positive, negative) pair; ``neg`` is m or m × k."""
    import torch

    if neg.dim() == pos.dim() + 1:
        pos = pos.unsqueeze(-1)
    return -torch.nn.functional.logsigmoid(pos - neg).mean()


def softmax_loss(h: Any, item_vectors: Any, targets: Any) -> Any:
    """Cross-entropy of ``softmax(h · item_vectorsᵀ)`` over every item against ``targets`` (m)."""
    import torch

    return torch.nn.functional.cross_entropy(h @ item_vectors.T, targets)


def sampled_softmax_loss(h: Any, item_vectors: Any, targets: Any, candidates: Any, log_q: Any | None) -> Any:
    """Softmax cross-entropy over ``candidates`` only, logits corrected by ``-log_q[candidates]``.

    A candidate equal to an example's target is a positive (several equal
    candidates share the label mass); every other candidate is a negative.
    With every item as a candidate once and ``log_q`` constant this equals
    :func:`softmax_loss`.
    """
    import torch

    logits = h @ item_vectors[candidates].T
    if log_q is not None:
        logits = logits - log_q[candidates]
    labels = (candidates[None, :] == targets[:, None]).float()
    labels = labels / labels.sum(1, keepdim=True)
    return torch.nn.functional.cross_entropy(logits, labels)
