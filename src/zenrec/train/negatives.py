"""Negative samplers shared by the PyTorch models: uniform, popularity-proportional, in-batch.

A sampler draws item ids (0-based) for a given shape and knows the log of
its own sampling probability per item, which a sampled softmax subtracts
from the logits (the logQ correction of Yi et al., 2019) so that frequently
drawn items are not over-penalised.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["MixtureLogQ", "NegativeSampler", "SamplerKind", "in_batch_candidates"]

#: ``uniform``: every item alike; ``popularity``: in proportion to count^power.
SamplerKind = Literal["uniform", "popularity"]


class NegativeSampler:
    """Draws negative item ids on a torch device.

    ``kind="uniform"`` draws every item with probability ``1/n``;
    ``kind="popularity"`` draws item i with probability proportional to
    ``(count_i + 1)^power`` (``power=0.75`` as in word2vec: hard negatives
    without drowning in the head).  ``generator`` makes draws reproducible;
    without it the global torch RNG is used.
    """

    def __init__(self, n_items: int, kind: SamplerKind = "uniform", counts: np.ndarray | None = None,
                 power: float = 0.75, device: Any = "cpu", generator: Any = None) -> None:
        import torch

        if n_items < 1:
            raise ValueError(f"a sampler needs at least one item, got n_items={n_items}")
        if kind not in ("uniform", "popularity"):
            raise ValueError(f"sampler kind must be 'uniform' or 'popularity', got {kind!r}")
        self.n_items, self.kind, self.device, self.generator = n_items, kind, device, generator
        if kind == "popularity":
            if counts is None or len(counts) != n_items:
                raise ValueError("a popularity sampler needs one count per item")
            w = (np.asarray(counts, dtype=np.float64) + 1.0) ** power
            self.probs = torch.as_tensor(w / w.sum(), dtype=torch.float32, device=device)
        else:
            self.probs = torch.full((n_items,), 1.0 / n_items, device=device)

    def sample(self, shape: tuple[int, ...]) -> Any:
        """A LongTensor of item ids with the given shape."""
        import torch

        if self.kind == "uniform":
            return torch.randint(0, self.n_items, shape, device=self.device, generator=self.generator)
        n = int(np.prod(shape)) if len(shape) else 1
        return torch.multinomial(self.probs, n, replacement=True, generator=self.generator).view(shape)

    def log_q(self) -> Any:
        """log sampling probability of every item (length ``n_items``)."""
        import torch

        return torch.log(self.probs)


def in_batch_candidates(targets: Any, sampler: NegativeSampler | None = None, n_sampled: int = 0) -> Any:
    """Candidate items of a sampled softmax: the batch's distinct targets plus ``n_sampled`` drawn ones.

    Every example's own target is among the candidates and the other
    examples' targets act as its negatives (in-batch negatives, drawn in
    proportion to how often items are targets).
    """
    import torch

    cand = targets.unique()
    if sampler is not None and n_sampled:
        cand = torch.cat([cand, sampler.sample((n_sampled,))])
    return cand


class MixtureLogQ:
    """How often each item is a candidate of :func:`in_batch_candidates` (log): the distinct targets of ``T``
    draws in proportion to ``popularity`` plus ``negatives`` uniform items.

    An item is among the distinct targets with probability ``1 - (1 - p_i)^T`` (about ``T · p_i`` for a
    rare item, 1 for one that is in nearly every batch) and is drawn ``negatives / n`` times on average
    besides, so the logQ correction subtracts ``log(1 - (1 - p_i)^T + negatives / n)``.  Counting the
    targets as ``T · p_i`` instead would over-correct the head of a small catalogue, whose items are
    candidates once per batch however often they are targets.
    """

    def __init__(self, popularity: np.ndarray, negatives: int, device: Any = "cpu") -> None:
        import torch

        pop = np.asarray(popularity, dtype=np.float64)
        share = np.clip(pop / max(float(pop.sum()), 1e-12), 0.0, 1.0 - 1e-12)
        self._log_miss = torch.as_tensor(np.log1p(-share), dtype=torch.float32, device=device)  # log(1 - p_i)
        self._uniform = negatives / len(pop)

    def __call__(self, target_draws: float, items: Any = None) -> Any:
        """log q of ``items`` (every item when None) for a batch of ``target_draws`` targets."""
        import torch

        miss = self._log_miss if items is None else self._log_miss[items]
        return torch.log(-torch.expm1(float(target_draws) * miss) + self._uniform)

