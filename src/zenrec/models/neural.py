"""Base of the models trained with PyTorch: the setup every neural model shares, written once.

:class:`TorchRecommender` is the ``_fit`` template of LogisticMF, the
sequence models, MultiTask and TwoTower.  It seeds every generator, picks
the device and torch's CPU threads, builds the optimiser from the config's
``optimizer``, ``lr`` and ``weight_decay``, validates by NDCG@10 after each
epoch and runs :func:`zenrec.train.loop.fit_loop`, which keeps the best
epoch's weights.  A model writes its network and its batches:

* ``_build(train, device, seed)`` — the network on ``device`` (kept as
  ``self.net_``) and whatever its batches read;
* ``_batches(epoch)`` — one epoch of training batches, in the order of
  :meth:`TorchRecommender._epoch_batches` (which also gives each process of
  a distributed run its share);
* ``_loss(batch)`` — a batch's scalar loss tensor;
* ``_publish()`` — the arrays scoring reads, from the current weights
  (before each validation and once after training; nothing by default);
* ``_after_fit()`` — drop what only training needed;
* ``_validation(train, valid, seed)`` — what validation NDCG@10 is measured
  on (by default the held-out items, training items masked);
* ``_remember(full)`` — after training on part of the data (below), store
  the per-user history scoring reads from every event;
* ``_n_batches()`` — batches per epoch, for progress (None: learnt from the
  first epoch).

**Validation by default.**  Fitted without a validation part (``fit(train)``,
``train_bundle``, ``zenrec train``), a model holds one out of ``train`` unless
``TrainOptions.validation`` is False (:func:`zenrec.train.holdout.hold_out`):
each user's last event for sequence models, a seeded random 10% of each
user's events otherwise (users with two events or more, at most 10,000 of
them).  It trains on the rest, stops after ``patience`` epochs without a
gain in validation NDCG@10 and **keeps the best epoch's weights**; it does
not refit on everything for ``best_epoch`` epochs.  Why: the weights served
are the ones whose quality was measured, while a refit's would be
unvalidated (its epochs have more steps, so the best epoch count does not
carry over exactly); and a refit would repeat most of the training, which
is the cost early stopping exists to cut.  What is held out is small and is
not lost: the stored histories scoring reads (a sequence model's recent
items, the two-tower's and multi-task model's history inputs; see
``_remember``) and a bundle's seen items are built from every event, so a
user's held-out events are context and are masked when recommending.  Only
the weights do not learn from them (e.g. LogisticMF's user factors miss 10%
of their user's events).  To train the weights on everything, fit with
``TrainOptions(validation=False)`` and ``epochs`` set to the reported best
epoch (``training_["best_epoch"]``).

``weight_decay`` means one thing everywhere: the decay the optimiser
applies (coupled in Adam and SGD, decoupled in AdamW).  A config without
the field trains without it; a penalty computed inside a model's loss has
a name of its own (LogisticMF's and MultiTask's ``l2``).

**Several processes.**  Started by torchrun (``zenrec train --nproc N``),
``_fit`` joins the run (:mod:`zenrec.train.distributed`): each process builds
the same data with its own seed for what is drawn inside a step, takes its
share of each epoch's batches (``batch_size`` per process), and the loop
averages the gradients with DistributedDataParallel; process 0 validates and
its kept weights end up in every process.  ``training_`` then records
``processes`` and ``effective_batch_size``.  Differentially private training
refuses to run on several processes (a :class:`~zenrec.errors.ConfigError`):
its Poisson sampling, clipping and accounting are per process.

The networks live in :mod:`zenrec.models.nets`, which imports torch; this
module and the model modules import them inside methods, so ``import
zenrec`` never imports torch.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import numpy as np

from zenrec.data.interactions import Interactions
from zenrec.errors import ConfigError
from zenrec.models.base import Recommender, TrainOptions

log = logging.getLogger("zenrec.train")

__all__ = ["TorchRecommender"]


#: catalogue size from which a model training a full softmax suggests ``loss="sampled"``
SAMPLED_HINT_ITEMS = 100_000


class TorchRecommender(Recommender):
    """A model trained by :func:`~zenrec.train.loop.fit_loop` (see the module docstring).

    Fitted with no validation part, it holds one out of the training data
    (``TrainOptions.validation``), early-stops on it and keeps the best
    epoch's weights rather than refitting on everything: the served weights
    are the validated ones and training is not repeated.  The histories it
    scores from still hold every event (module docstring, "Validation by
    default").
    """

    uses_torch = True
    early_stops = True
    #: torch's CPU threads when ``TrainOptions.threads`` is not given (None: every core this process may use)
    default_threads: ClassVar[int | None] = None

    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainOptions) -> None:
        from zenrec.evaluate.evaluator import validation_ndcg
        from zenrec.train import pick_device, seed_everything
        from zenrec.train.loop import fit_loop, make_optimizer

        c: Any = self.config
        seed_everything(options.seed)
        full, held = train, "given"
        dp_epsilon = getattr(c, "dp_epsilon", None)
        run = self._join_run(options, dp_epsilon)
        if dp_epsilon is not None:  # DP-SGD: fixed epochs, no weights picked by (private) data; see train.privacy
            valid, held = None, "none (differential privacy: every epoch is trained, no epoch is picked by data)"
        elif valid is None and options.validation is not False:
            from zenrec.train.holdout import DEFAULT_SHARE, hold_out

            share = DEFAULT_SHARE if options.validation is True else float(options.validation)
            part = hold_out(train, self.sequential, share, options.seed)
            if len(part.valid):
                train, valid, held = part.train, part.valid, part.description
                log.info("%s: validation held out of the training data: %s", self.name, held)
            else:
                held = "none (no user has two events)"
        elif valid is None:
            held = "none (validation=False)"
        target = self._validation(train, valid, options.seed)
        if target is None and train is not full:  # nothing to validate on in the slice: train on everything
            train, held = full, "none (nothing to validate on in the held-out slice)"
        if run is None or run.rank == 0:
            self._hint_sampled_softmax(train.n_items)
        if run is None:
            self.device_ = pick_device(options.device, options.threads or self.default_threads)
            self.net_ = self._build(train, self.device_, options.seed)
        else:  # each process its own draws inside a step; process 0's initial weights are copied to every one
            self.device_ = run.device
            seed_everything(options.seed + run.rank)
            self.net_ = self._build(train, self.device_, options.seed + run.rank)
        opt = make_optimizer(self.net_.parameters(), c.optimizer, c.lr, getattr(c, "weight_decay", 0.0))
        private = None
        if dp_epsilon is not None:
            from zenrec.train.privacy import make_private

            n_examples = self._n_examples()
            if n_examples is None:
                raise ConfigError(f"{self.name} does not train with differential privacy (dp_epsilon); "
                                  f"lmf, twotower, sasrec and gru4rec do")
            private = make_private(self.net_, opt, n_examples, c.batch_size, c.epochs, dp_epsilon,
                                   c.dp_delta, c.dp_max_grad_norm, self._dp_row_loss(), self._dp_unit,
                                   self._dp_vectorised)
            opt = private.optimizer
        validate = None
        if target is not None:
            truth, seen, users = target

            def validate() -> float:
                self._publish()
                return validation_ndcg(self._score, truth, seen, users=users)

        steps = self._n_batches()
        if run is not None and steps is not None:
            steps = -(-steps // run.world)
        import torch

        self._run = run
        self._shuffle_gen = torch.Generator().manual_seed(options.seed)  # epoch orders only: the same in every process
        try:
            result = fit_loop(self.net_, opt, self._batches, self._loss, c.epochs, validate, c.patience,
                              options.progress, name=self.name, callback=options.callback, steps=steps,
                              step=None if private is None else private.step, distributed=run)
        finally:
            self._run = self._shuffle_gen = None
        self.epochs_trained_ = result.epochs
        self.best_epoch_ = result.best_epoch
        self.train_history_ = result.history
        self.training_ = {"epochs": result.epochs, "max_epochs": c.epochs, "best_epoch": result.best_epoch,
                          "valid_ndcg@10": result.best_value, "validation": held,
                          "stopped_early": result.epochs < c.epochs}
        if run is not None:
            self.training_["processes"] = run.world
            self.training_["effective_batch_size"] = c.batch_size * run.world
        if private is not None:
            self.training_["privacy"] = private.spent(result.epochs)
            log.info("%s: differential privacy: ε=%.3f spent at δ=%g (noise multiplier %.3f)", self.name,
                     self.training_["privacy"]["epsilon"], c.dp_delta, private.noise_multiplier)
        if train is not full:
            self._remember(full)  # scoring reads every event; the weights are the best epoch's
        self._publish()  # the best epoch's weights, restored by the loop
        self._after_fit()

    # ------------------------------------------------------------ distributed
    #: the distributed run being trained in (set by ``_fit`` for its duration; None: one process)
    _run: Any = None
    _shuffle_gen: Any = None

    def _join_run(self, options: TrainOptions, dp_epsilon: float | None) -> Any:
        """This process's :class:`~zenrec.train.distributed.DistributedRun` when it is one of several (torchrun),
        else None (kept as ``self._run`` while the loop runs)."""
        import torch.distributed as dist

        from zenrec.train.distributed import env_world_size, setup

        if env_world_size() <= 1 and not (dist.is_available() and dist.is_initialized()):
            return None
        if dp_epsilon is not None:
            raise ConfigError(f"{self.name} with dp_epsilon does not train on several processes: DP-SGD's "
                              "per-example clipping, Poisson sampling and privacy accounting are per process; "
                              "train it in one process (without torchrun or --nproc)")
        return setup(options.device, options.threads)

    def _epoch_batches(self, n: int, batch_size: int, device: Any) -> Iterator[Any]:
        """This process's batches of one epoch over ``n`` examples, as index tensors on ``device``.

        The epoch's order is a permutation drawn from a generator seeded by the
        run's seed that draws nothing else, so every process of a distributed run
        draws the same one; each takes its share
        (:func:`zenrec.train.distributed.shard`: ``batch_size`` examples per
        process and step).  One process is the case of a single share: the
        permutation cut into ``batch_size`` batches.
        """
        import torch

        from zenrec.train.distributed import shard

        perm = torch.randperm(n, generator=self._shuffle_gen).to(device)
        run = self._run
        yield from shard(perm, batch_size, 0 if run is None else run.rank, 1 if run is None else run.world)

    def _hint_sampled_softmax(self, n_items: int) -> None:
        """On a catalogue of :data:`SAMPLED_HINT_ITEMS` or more, a model whose loss scores every item says on the
        ``zenrec.train`` logger (a warning: the CLI prints it) that ``loss="sampled"`` exists."""
        rows = self._full_softmax_rows()
        if rows is None or n_items < SAMPLED_HINT_ITEMS or getattr(self.config, "dp_epsilon", None) is not None:
            return  # (differentially private training needs the full softmax)
        log.warning("%s: loss=%r scores each of a batch's %s training rows against all %s items at every step; "
                    "on a catalogue this large loss='sampled' (the batch's targets plus sampled items, "
                    "logQ-corrected) is several times faster for about the same quality (guide: Models, "
                    "Large catalogues)", self.name, self.config.loss, f"{rows:,}", f"{n_items:,}")

    def _full_softmax_rows(self) -> int | None:
        """Rows of one batch that the configured loss scores against every item; None when it samples
        (the default: no softmax over items)."""
        return None

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

    def _remember(self, full: Interactions) -> None:
        """After training on part of ``full`` (a held-out validation slice), store the per-user history scoring
        reads from every event of ``full`` (nothing by default: the model stores none)."""

    @property
    def privacy_(self) -> dict[str, Any] | None:
        """After a differentially private fit (``dp_epsilon``): the ε spent at ``delta``, the noise multiplier,
        clipping norm, epochs and sample rate (saved in the manifest with ``training_``); None otherwise."""
        return (self.training_ or {}).get("privacy")

    def _n_examples(self) -> int | None:
        """Training examples, the unit of privacy, once ``_build`` ran; None: the model has no DP-SGD (its
        examples are not independent units of privacy)."""
        return None

    #: what one training example is, under differential privacy (docs/guide/privacy.md)
    _dp_unit: ClassVar[str] = "one training example (event level)"
    #: per-example gradients of :meth:`_dp_row_loss` by ``vmap`` (False: one autograd pass per example)
    _dp_vectorised: ClassVar[bool] = True

    def _dp_row_loss(self) -> Any:
        """Under differential privacy: the loss of one example, ``loss(net, *row)`` (see
        :func:`zenrec.train.privacy.make_private`), when per-example gradients are taken by torch.func; then
        :meth:`_batches` yields tuples of per-example tensors.  None (the default): Opacus' layer hooks on the
        batch loss of :meth:`_loss`."""
        return None

    def _n_batches(self) -> int | None:
        """Batches in one epoch, once ``_build`` ran (None: unknown until the first epoch ends)."""
        return None

    def _validation(self, train: Interactions, valid: Interactions | None,
                    seed: int) -> tuple[Interactions, Interactions, np.ndarray | None] | None:
        """``(held-out items, seen items to mask, users or None for all)`` for validation NDCG@10; None: none."""
        if valid is None or not len(valid):
            return None
        return valid, train, None
