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

Per-example gradients come one of two ways:

* **Opacus' layer hooks** (``GradSampleModule``) when every example is one
  row of the batch through layers Opacus knows: LogisticMF, whose example
  is one (user, item) pair (event-level privacy).
* **torch.func** (``vmap`` of ``grad`` of the model's loss of one example)
  when examples share a computation the hooks cannot split per example —
  the two-tower's item tower scores every item for every user of the batch.
  Those models make one example of one *user* (all of the user's events
  inside it), so the guarantee is user level.  The per-example gradients
  are taken in chunks that fit a memory bound and handed to the same
  Opacus ``DPOptimizer`` (its ``grad_sample`` protocol, the virtual steps
  of Opacus' ``BatchMemoryManager``), which clips, adds the noise once per
  Poisson batch and steps the accountant.

See docs/guide/privacy.md for what is and is not covered.

Opacus is imported inside the functions, so importing this module does not
import it (nor torch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zenrec.errors import ConfigError

__all__ = ["DPParams", "PrivateTraining", "RowLoss", "UserDPParams", "make_private", "poisson_batches"]

DP_ACCOUNTANT = "rdp"
#: bytes of per-example gradients held at once on the torch.func path (chunks of examples are sized to it)
PER_EXAMPLE_BYTES = 256 * 2**20

#: the loss of one example: ``loss(net, *row)`` with the row's tensors without their batch dimension
RowLoss = Callable[..., Any]


class DPParams(BaseModel):
    """Fields of a model config that can train with differential privacy (DP-SGD): mix it into the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dp_epsilon: float | None = Field(
        None, gt=0, le=100, description="train by DP-SGD (Opacus) to this ε at dp_delta; None: no differential privacy")
    dp_delta: float = Field(1e-5, gt=0, lt=1, description="δ of (ε, δ)-differential privacy (with dp_epsilon)")
    dp_max_grad_norm: float = Field(1.0, gt=0, description="per-example gradient clipping norm (with dp_epsilon)")

    @model_validator(mode="after")
    def _dp_batch(self) -> DPParams:
        if self.dp_epsilon is not None and getattr(self, "batch_size", 32) < 32:
            raise ValueError("dp_epsilon needs batch_size >= 32 (Poisson-sampled batches)")
        return self


class UserDPParams(DPParams):
    """DP fields of a model whose unit of privacy is one user (one example holds all of a user's events)."""

    dp_user_items: int = Field(
        20, ge=1, description="with dp_epsilon: items of a user predicted in one step (the others are its input)")


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
    unit: str = "one training example (event level)"
    #: the whole DP step of one batch of examples (torch.func path); None: the usual backward + optimiser step
    step: Callable[[tuple[Any, ...]], float] | None = None

    def spent(self, epochs: int) -> dict[str, Any]:
        """The ε spent so far at ``delta`` (from the accountant), and the settings that produced it."""
        eps = float(self.accountant.get_epsilon(delta=self.delta)) if len(self.accountant) else 0.0
        return {"epsilon": round(eps, 4), "delta": self.delta, "target_epsilon": self.target_epsilon,
                "noise_multiplier": round(self.noise_multiplier, 4), "max_grad_norm": self.max_grad_norm,
                "sample_rate": self.sample_rate, "epochs": epochs, "steps": self.accountant.history[-1][2]
                if self.accountant.history else 0, "examples": self.n_examples, "accountant": DP_ACCOUNTANT,
                "unit": self.unit}


def make_private(net: Any, optimizer: Any, n_examples: int, batch_size: int, epochs: int, target_epsilon: float,
                 delta: float, max_grad_norm: float, row_loss: RowLoss | None = None,
                 unit: str = "one training example (event level)", vectorised: bool = True) -> PrivateTraining:
    """Wrap ``optimizer`` in Opacus' DPOptimizer calibrated to the target, and give ``net`` per-example gradients.

    Without ``row_loss``, ``net`` gets Opacus' hooks in place (calling it as
    before computes per-example gradients); every trainable parameter must
    sit in a layer Opacus supports, and the returned optimiser clips, adds
    noise and steps the accountant.  With ``row_loss`` (the loss of one
    example), the returned ``step`` does the whole DP step of a batch of
    examples (tensors whose first dimension runs over the examples) by
    torch.func; train with it instead of a backward pass.
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
    errors = ModuleValidator.validate(net, strict=False) if row_loss is None else []
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
    if row_loss is None:
        GradSampleModule(net, batch_first=True, loss_reduction="mean")  # registers the per-example hooks on net
    dp_opt = DPOptimizer(optimizer, noise_multiplier=sigma, max_grad_norm=max_grad_norm,
                         expected_batch_size=batch_size, loss_reduction="mean")
    accountant = RDPAccountant()
    dp_opt.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=q))
    step = None if row_loss is None else _per_example_step(net, dp_opt, row_loss, vectorised)
    return PrivateTraining(dp_opt, accountant, sigma, max_grad_norm, delta, target_epsilon, q, steps_per_epoch,
                           n_examples, unit, step)


def _per_example_step(net: Any, dp_opt: Any, row_loss: RowLoss,
                      vectorised: bool = True) -> Callable[[tuple[Any, ...]], float]:
    """The DP step of one Poisson batch: per-example gradients of ``row_loss`` (torch.func's ``vmap``, or one
    autograd pass per example) in chunks of at most :data:`PER_EXAMPLE_BYTES`, each chunk clipped and summed
    by ``dp_opt`` (a virtual step), the noise added and the parameters stepped after the last chunk.  Returns
    the batch's mean loss."""
    import torch
    from torch.func import functional_call, grad_and_value, vmap

    class _Row(torch.nn.Module):  # net as a submodule: functional_call swaps its parameters for the call
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, *row: Any) -> Any:
            return row_loss(self.net, *row)

    wrapper = _Row()
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    size = sum(p.numel() * p.element_size() for _, p in named)
    chunk = max(1, PER_EXAMPLE_BYTES // max(size, 1))

    def one(params: dict[str, Any], *row: Any) -> Any:
        return functional_call(wrapper, {f"net.{k}": v for k, v in params.items()}, row)

    def looped(params: dict[str, Any], *rows: Any) -> tuple[dict[str, Any], Any]:
        grads: dict[str, list[Any]] = {name: [] for name, _ in named}
        losses = []
        for i in range(len(rows[0])):
            loss = row_loss(net, *(r[i] for r in rows))
            for (name, _), g in zip(named, torch.autograd.grad(loss, [p for _, p in named], allow_unused=True),
                                    strict=True):
                grads[name].append(torch.zeros_like(params[name]) if g is None else g)
            losses.append(loss.detach())
        return {name: torch.stack(g) for name, g in grads.items()}, torch.stack(losses)

    def step(rows: tuple[Any, ...]) -> float:
        params = {n: p.detach() for n, p in named}
        per_example = (vmap(grad_and_value(one), in_dims=(None, *(0,) * len(rows)), randomness="different")
                       if vectorised else looped)
        total, n = 0.0, len(rows[0])
        for s in range(0, n, chunk):
            grads, losses = per_example(params, *(r[s : s + chunk] for r in rows))
            for name, p in named:
                p.grad_sample = grads[name]
            if s + chunk < n:
                dp_opt.signal_skip_step(True)  # clip and add up this chunk; noise and step after the last
            dp_opt.step()
            dp_opt.zero_grad(set_to_none=True)
            total += float(losses.detach().sum())
        return total / max(n, 1)

    return step


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
