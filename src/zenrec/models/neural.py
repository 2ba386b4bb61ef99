"""Base of the models trained with PyTorch: the setup every neural model shares, written once.

:class:`TorchRecommender` is the ``_fit`` template of LogisticMF, the
sequence models, MultiTask and TwoTower.  It seeds every generator, picks
the device and torch's CPU threads, builds the optimiser from the config's
``optimizer``, ``lr`` and ``weight_decay``, validates by NDCG@10 after each
epoch and runs :func:`zenrec.train.loop.fit_loop`, which keeps the best
epoch's weights.  A model writes its network and its batches:

* ``_build(train, device, seed)`` — the network on ``device`` (kept as
  ``self.net_``) and whatever its batches read;
* ``_batches(epoch)`` — one epoch of training batches;
* ``_loss(batch)`` — a batch's scalar loss tensor;
* ``_publish()`` — the arrays scoring reads, from the current weights
  (before each validation and once after training; nothing by default);
* ``_after_fit()`` — drop what only training needed;
* ``_validation(train, valid, seed)`` — what validation NDCG@10 is measured
  on (by default the held-out items, training items masked).

``weight_decay`` means one thing everywhere: the decay the optimiser
applies (coupled in Adam and SGD, decoupled in AdamW).  A config without
the field trains without it; a penalty computed inside a model's loss has
a name of its own (LogisticMF's and MultiTask's ``l2``).

The networks live in :mod:`zenrec.models.nets`, which imports torch; this
module and the model modules import them inside methods, so ``import
zenrec`` never imports torch.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from zenrec.data.interactions import Interactions
from zenrec.models.base import Recommender, TrainOptions

__all__ = ["TorchRecommender"]


class TorchRecommender(Recommender):
    """A model trained by :func:`~zenrec.train.loop.fit_loop` (see the module docstring)."""

    uses_torch = True
    #: torch's CPU threads when ``TrainOptions.threads`` is not given (None: every core this process may use)
    default_threads: ClassVar[int | None] = None

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        from zenrec.evaluate.evaluator import validation_ndcg
        from zenrec.train import pick_device, seed_everything
        from zenrec.train.loop import fit_loop, make_optimizer

        c: Any = self.config
        seed_everything(options.seed)
        self.device_ = pick_device(options.device, options.threads or self.default_threads)
        self.net_ = self._build(train, self.device_, options.seed)
        opt = make_optimizer(self.net_.parameters(), c.optimizer, c.lr, getattr(c, "weight_decay", 0.0))
        validate = None
        target = self._validation(train, valid, options.seed)
        if target is not None:
            truth, seen, users = target

            def validate() -> float:
                self._publish()
                return validation_ndcg(self._score, truth, seen, users=users)

        result = fit_loop(self.net_, opt, self._batches, self._loss, c.epochs, validate, c.patience,
                          options.progress, name=self.name)
        self.epochs_trained_ = result.epochs
        self.train_history_ = result.history
        self._publish()  # the best epoch's weights, restored by the loop
        self._after_fit()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _build(self, train: Interactions, device: Any, seed: int) -> Any:
        """The network (an ``nn.Module`` on ``device``), after keeping what the batches will read."""

    @abstractmethod
    def _batches(self, epoch: int) -> Iterable[Any]:
        """The training batches of one epoch."""

    @abstractmethod
    def _loss(self, batch: Any) -> Any:
        """The scalar loss tensor of one batch."""

    def _publish(self) -> None:
        """Compute the arrays :meth:`_score` reads from the network's current weights (none by default)."""

    def _after_fit(self) -> None:
        """Drop what only training needed (nothing by default)."""

    def _validation(self, train: Interactions, valid: Interactions | None,
                    seed: int) -> tuple[Interactions, Interactions, np.ndarray | None] | None:
        """``(held-out items, seen items to mask, users or None for all)`` for validation NDCG@10; None: none."""
        if valid is None or not len(valid):
            return None
        return valid, train, None
