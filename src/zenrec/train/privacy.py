"""Differentially private training (DP-SGD with Opacus) for the models on the PyTorch base.

A model whose config sets ``dp_epsilon`` trains by DP-SGD: every step
draws a Poisson sample of the training examples (each one independently
with probability ``q = batch_size / n``), Opacus' ``GradSampleModule``
computes per-example gradients, each is clipped to ``dp_max_grad_norm``
and Gaussian noise of std ``noise_multiplier · dp_max_grad_norm`` is added
to their sum (Opacus' ``DPOptimizer``).  The noise multiplier is the
smallest one for which the RDP accountant keeps the whole run (``epochs``
epochs of ``⌈n / batch_size⌉`` steps) within ``(dp_epsilon, dp_delta)``;
the ε actually spent is read back from the accountant after training.

The unit of privacy is one training example of the model (for LogisticMF
one (user, item) pair of the binary matrix: event level, not user level).
See docs/guide/privacy.md for what is and is not covered.

Opacus is imported inside the functions, so importing this module does not
import it (nor torch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from zenrec.errors import ConfigError

__all__ = ["DPParams", "PrivateTraining", "make_private", "poisson_batches"]

DP_ACCOUNTANT = "rdp"


class DPParams(BaseModel):
    """Fields of a model config that can train with differential privacy (DP-SGD): mix it into the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dp_epsilon: float | None = Field(
        None, gt=0, le=100, description="train by DP-SGD (Opacus) to this ε at dp_delta; None: no differential privacy")
    dp_delta: float = Field(1e-5, gt=0, lt=1, description="δ of (ε, δ)-differential privacy (with dp_epsilon)")
    dp_max_grad_norm: float = Field(1.0, gt=0, description="per-example gradient clipping norm (with dp_epsilon)")


@dataclass
class PrivateTraining:
    """The DP state of one training run: the optimiser to step, the accountant and what it was set up with."""

    optimizer: Any
    accountant: Any
    noise_multiplier: float
    max_grad_norm: float
    delta: float
    target_epsilon: float
    sample_rate: float
    steps_per_epoch: int
    n_examples: int

    def spent(self, epochs: int) -> dict[str, Any]:
        """The ε spent so far at ``delta`` (from the accountant), and the settings that produced it."""
        eps = float(self.accountant.get_epsilon(delta=self.delta)) if len(self.accountant) else 0.0
        return {"epsilon": round(eps, 4), "delta": self.delta, "target_epsilon": self.target_epsilon,
                "noise_multiplier": round(self.noise_multiplier, 4), "max_grad_norm": self.max_grad_norm,
                "sample_rate": self.sample_rate, "epochs": epochs, "steps": self.accountant.history[-1][2]
                if self.accountant.history else 0, "examples": self.n_examples, "accountant": DP_ACCOUNTANT,
                "unit": "one training example (event level)"}


def make_private(net: Any, optimizer: Any, n_examples: int, batch_size: int, epochs: int, target_epsilon: float,
                 delta: float, max_grad_norm: float) -> PrivateTraining:
    """Wrap ``net`` for per-example gradients and ``optimizer`` in Opacus' DPOptimizer, calibrated to the target.

    ``net`` gets Opacus' hooks in place (calling it as before computes per-example
    gradients); every trainable parameter must sit in a layer Opacus supports.
    The returned optimiser clips, adds noise and steps the accountant.
    """
    try:
        from opacus import GradSampleModule
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.optimizers import DPOptimizer
        from opacus.validators import ModuleValidator
    except ImportError:  # pragma: no cover - opacus is a dependency
        raise ConfigError("dp_epsilon needs the opacus package (pip install opacus)") from None

    if n_examples < 2:
        raise ConfigError("differentially private training needs at least two training examples")
    errors = ModuleValidator.validate(net, strict=False)
    if errors:
        raise ConfigError(f"this network cannot train with differential privacy: {errors[0]}")
    batch_size = min(batch_size, n_examples)
    q = batch_size / n_examples
    steps_per_epoch = math.ceil(n_examples / batch_size)
    try:
        sigma = float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta, sample_rate=q,
                                           steps=steps_per_epoch * epochs, accountant=DP_ACCOUNTANT))
    except ValueError as exc:
        raise ConfigError(f"no noise level reaches ε={target_epsilon} at δ={delta}: {exc}") from None
    GradSampleModule(net, batch_first=True, loss_reduction="mean")  # registers the per-example hooks on net
    dp_opt = DPOptimizer(optimizer, noise_multiplier=sigma, max_grad_norm=max_grad_norm,
                         expected_batch_size=batch_size, loss_reduction="mean")
    accountant = RDPAccountant()
    dp_opt.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=q))
    return PrivateTraining(dp_opt, accountant, sigma, max_grad_norm, delta, target_epsilon, q, steps_per_epoch,
                           n_examples)


def poisson_batches(n: int, batch_size: int, generator: Any) -> Iterator[Any]:
    """One epoch of Poisson-sampled batches: ``⌈n / batch_size⌉`` index tensors, each holding every index
    independently with probability ``batch_size / n`` (the sampling DP-SGD's accountant assumes).

    An empty draw (probability ``(1 − q)^n ≈ e^−batch_size``, below 1e-13 for
    the ``batch_size ≥ 32`` a DP config requires) is skipped rather than
    stepped with noise alone: a deviation the accountant does not model, and
    one it then does not count.
    """
    import torch

    batch_size = min(batch_size, n)
    q = batch_size / n
    device = generator.device
    for _ in range(math.ceil(n / batch_size)):
        idx = torch.nonzero(torch.rand(n, device=device, generator=generator) < q).ravel()
        if len(idx):
            yield idx
