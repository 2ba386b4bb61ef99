"""Ranking losses shared by the PyTorch models.

* :func:`bce_loss` — binary cross-entropy, positives against sampled negatives;
* :func:`bpr_loss` — Bayesian personalised ranking, ``-log σ(s⁺ − s⁻)``;
* :func:`softmax_loss` — cross-entropy of a softmax over every item;
* :func:`sampled_softmax_loss` — softmax over candidate items (in-batch
  targets plus sampled negatives) with the logQ correction.
"""

from __future__ import annotations

import functools
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


#: rows of logits computed at a time by the CPU's fused softmax loss: 64 × 24k items (6 MB) stays in cache
FUSED_CHUNK = 64


def softmax_loss(h: Any, item_vectors: Any, targets: Any) -> Any:
    """Cross-entropy of ``softmax(h · item_vectorsᵀ)`` over every item against ``targets`` (m), averaged.

    On the CPU, when a gradient is wanted, the logits are never held whole:
    :class:`_FusedSoftmaxLoss` computes the loss and both gradients a few
    rows at a time.  Same value and gradients as ``cross_entropy(h @ Vᵀ)``;
    on amazon-games (24k items) it halves the loss's share of a SASRec step.
    """
    import torch

    wants_grad = torch.is_grad_enabled() and (h.requires_grad or item_vectors.requires_grad)
    if wants_grad and h.device.type == "cpu" and len(h):
        return _fused_softmax_loss().apply(h, item_vectors, targets)
    return torch.nn.functional.cross_entropy(h @ item_vectors.T, targets)


@functools.cache
def _fused_softmax_loss() -> Any:
    """The autograd function behind the CPU path of :func:`softmax_loss` (built once, torch imported lazily)."""
    import torch

    class _FusedSoftmaxLoss(torch.autograd.Function):
        """Mean softmax cross-entropy whose forward pass also computes the gradients, chunk by chunk.

        For a chunk of rows: logits ``L = h Vᵀ``; ``P = softmax(L)`` in place
        (one exp pass); loss ``log Σ exp L − L[target]``; ``G = P − onehot``;
        then ``∂h = G V`` and ``∂V += Gᵀ h``.  Backward only scales the stored
        gradients by the incoming one.
        """

        @staticmethod
        def forward(ctx: Any, h: Any, v: Any, targets: Any) -> Any:
            m = h.shape[0]  # autograd records nothing in here: the gradients are computed by hand
            grad_h = torch.empty_like(h)
            grad_v = torch.zeros_like(v)
            total = torch.zeros((), dtype=torch.float64)
            rows = torch.arange(min(m, FUSED_CHUNK))
            for s in range(0, m, FUSED_CHUNK):
                hc, tc = h[s : s + FUSED_CHUNK], targets[s : s + FUSED_CHUNK]
                r = rows[: len(tc)]
                logits = hc @ v.T
                picked = logits[r, tc]
                top = logits.amax(1, keepdim=True)
                probs = logits.sub_(top).exp_()  # in place: the logits are not needed again
                norm = probs.sum(1, keepdim=True)
                probs.div_(norm)
                total += ((top + norm.log()).squeeze(1) - picked).sum(dtype=torch.float64)
                probs[r, tc] -= 1.0
                torch.mm(probs, v, out=grad_h[s : s + FUSED_CHUNK])
                grad_v.addmm_(probs.T, hc)
            ctx.save_for_backward(grad_h, grad_v)
            return (total / m).to(h.dtype)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            grad_h, grad_v = ctx.saved_tensors
            scale = grad / grad_h.shape[0]
            return grad_h * scale, grad_v * scale, None

    return _FusedSoftmaxLoss


def sampled_softmax_loss(h: Any, item_vectors: Any, targets: Any, candidates: Any, candidate_log_q: Any | None) -> Any:
    """Softmax cross-entropy over ``candidates`` only, each logit corrected by ``-candidate_log_q``: the log of
    how often that candidate is drawn (one value per candidate, :class:`~zenrec.train.negatives.MixtureLogQ`).

    A candidate equal to an example's target is a positive (several equal
    candidates share the label mass); every other candidate is a negative.
    With every item as a candidate once and ``candidate_log_q`` constant this
    equals :func:`softmax_loss`.
    """
    import torch

    logits = h @ item_vectors[candidates].T
    if candidate_log_q is not None:
        logits = logits - candidate_log_q
    labels = (candidates[None, :] == targets[:, None]).float()
    labels = labels / labels.sum(1, keepdim=True)
    return torch.nn.functional.cross_entropy(logits, labels)
