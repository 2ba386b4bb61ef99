"""Training on several processes or machines: PyTorch ``DistributedDataParallel`` (DDP), launched by torchrun.

Every model trained by :func:`zenrec.train.loop.fit_loop` (the subclasses of
:class:`zenrec.models.neural.TorchRecommender`) trains on ``N`` processes when
it is started by ``torchrun`` (``python -m torch.distributed.run``)::

    torchrun --nproc-per-node 2 --standalone -m zenrec.cli train data/ --model sasrec -o models/sasrec
    zenrec train data/ --model sasrec -o models/sasrec --nproc 2          # the same: zenrec runs torchrun
    torchrun --nnodes 2 --nproc-per-node 2 --rdzv-id JOB --rdzv-backend c10d --rdzv-endpoint HOST:29500 \
        -m zenrec.cli train data/ --model sasrec -o models/sasrec          # on each of 2 machines

or by ``model.fit(...)`` in a script that torchrun runs.  How a run is split,
and why:

* **The process group** comes from torchrun's environment (``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) by
  ``init_process_group(init_method="env://")``: the gloo backend on the CPU,
  NCCL on CUDA with device ``cuda:LOCAL_RANK``.  A group the caller has
  already initialised is used as it is.  A process without torchrun's
  environment (``WORLD_SIZE`` unset or 1) trains alone, unchanged.
* **Every process builds the same data.**  Each one reads the dataset and
  holds out the same validation slice (same seed), so no data travels between
  processes: only gradients, one all-reduce per step, and a few numbers per
  epoch.
* **Batches: ``batch_size`` is per process.**  Every process draws the same
  permutation of an epoch's examples, from a generator seeded by the run's
  seed that draws nothing else (one process draws its order the same way:
  it is the case ``world = 1``).  Step ``s`` trains the next
  ``batch_size × world`` examples of it, and process ``r`` takes the ``r``-th
  ``batch_size`` of them (batch ``b`` of the permutation goes to process
  ``b % world``).  The leftover examples of the epoch are shared evenly in its
  last step; when fewer are left than there are processes, they wait for the
  next epoch's permutation.  So one optimiser step averages the gradients of
  ``batch_size × world`` examples (the *effective batch*) and an epoch has
  about ``1 / world`` as many steps.  This is DDP's own convention
  (``DistributedSampler``): each process keeps full-size steps, so adding
  processes adds throughput rather than splitting a step into slivers.  A
  single process with ``batch_size × world`` trains the same way (the same
  examples per step and steps per epoch), which is what the tests compare.
  The learning rate is not scaled: with ``N`` processes, set ``batch_size``
  to the single-process batch divided by ``N`` to keep a tuned
  configuration's optimisation.
* **Gradients**: the model's loss is wrapped in a module whose ``forward`` is
  the loss (:func:`ddp_loss`) and that module in DDP, so models whose loss
  calls tower methods rather than the network's ``forward`` (the two-tower,
  multi-task) all-reduce their gradients too.  ``static_graph=True``: the set
  of parameters a model's loss uses never changes between steps (a multi-task
  model without its wide part never uses ``wide_scale``), so DDP learns it in
  the first step instead of searching the autograd graph at every step as
  ``find_unused_parameters=True`` would.  No buffer is copied before each
  step (``forward_sync_buffers=False``; ``broadcast_buffers=False`` on older
  torch): the buffers hold fixed inputs (item features), the same in every
  process.
* **Randomness inside a step** (dropout, sampled negatives, masks: torch's
  global generator and the model's own) is seeded with ``seed + rank``, so processes do not draw the same negatives for
  different batches; process 0 uses ``seed``, and DDP copies its initial
  weights to every process.
* **Rank 0 validates, logs and writes.**  Only process 0 measures validation
  NDCG@10, keeps the best epoch's weights, reports progress and writes the
  loop's checkpoint and the model directory; its decision to stop is
  broadcast after every epoch, so every process stops after the same epoch
  (the others wait for it there, up to :data:`COLLECTIVE_TIMEOUT`).  At the
  end the kept weights and the training summary are broadcast from process 0,
  so every process returns the same fitted model (a script need only save it
  in process 0: :func:`is_main_process`).
* **Threads**: on the CPU each process uses one torch thread unless
  ``TrainOptions(threads=...)`` says otherwise (torchrun likewise sets
  ``OMP_NUM_THREADS=1``): N processes for N cores, not N × N threads.
* **GPUs**: NCCL with one GPU per process (``cuda:LOCAL_RANK``).  The code
  path is the CPU's with another device and backend; it has not been run yet
  (no GPU machine was at hand).
* **Not distributed**: differentially private training (DP-SGD's per-example
  clipping, Poisson sampling and accounting are per process) refuses with a
  :class:`~zenrec.errors.ConfigError`, and so do models without a training
  loop (EASE, ItemKNN, ALS…: one process fits them).

A checkpoint written by ``N`` processes is an ordinary model directory: it
loads and scores in one process.  torch is imported inside the functions.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from zenrec.errors import ConfigError

__all__ = ["DistributedRun", "ddp_loss", "env_world_size", "is_main_process", "launch", "launch_command", "setup",
           "shard", "shard_steps"]

log = logging.getLogger(__name__)

#: how long a process waits in a collective (the others wait there while process 0 validates an epoch)
COLLECTIVE_TIMEOUT = timedelta(hours=2)


def env_world_size() -> int:
    """Processes in this run according to torchrun's environment (``WORLD_SIZE``; 1 when unset)."""
    return _env_int("WORLD_SIZE", 1)


def is_main_process() -> bool:
    """True in process 0 of a distributed run (torchrun's ``RANK`` or the initialised process group), and in a
    process that runs alone: the one that should write files and print."""
    dist = sys.modules.get("torch.distributed")  # not imported: no group initialised (and torch stays unloaded)
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"the environment variable {name} must be an integer (torchrun sets it); "
                          f"got {raw!r}") from None


@dataclass(frozen=True)
class DistributedRun:
    """This process's place in a distributed run: rank, number of processes, its device and the backend."""

    rank: int
    world: int
    local_rank: int
    device: Any
    backend: str

    @property
    def main(self) -> bool:
        """Process 0: validates, reports, writes."""
        return self.rank == 0

    def broadcast_json(self, value: Any) -> Any:
        """``value`` of process 0 (anything JSON can hold) in every process: JSON bytes in a tensor, no pickle."""
        import torch
        import torch.distributed as dist

        data = json.dumps(value).encode() if self.main else b""
        size = torch.tensor([len(data)], dtype=torch.long, device=self.device)
        dist.broadcast(size, 0)
        buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=self.device)
        if self.main:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buf, 0)
        return json.loads(bytes(buf.cpu().numpy()).decode()) if not self.main else value

    def broadcast_module(self, net: Any) -> None:
        """Copy process 0's parameters and persistent buffers into ``net`` in every process."""
        import torch.distributed as dist

        for tensor in net.state_dict().values():
            dist.broadcast(tensor.data, 0)

    def barrier(self) -> None:
        """Wait until every process gets here."""
        import torch.distributed as dist

        dist.barrier()


def setup(device: str | None = None, threads: int | None = None) -> DistributedRun | None:
    """Join the distributed run this process belongs to, or None when it runs alone.

    A run is torchrun's environment with ``WORLD_SIZE`` > 1, or a process group
    the caller initialised with more than one process.  The device is the
    requested one, else ``cuda:LOCAL_RANK`` when CUDA is present, else the CPU
    with ``threads`` torch threads (default 1).  The backend is NCCL on CUDA and
    gloo otherwise; the group is initialised here when it is not yet.
    """
    import torch
    import torch.distributed as dist

    initialised = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if initialised else env_world_size()
    if world <= 1:
        return None
    if not dist.is_available():  # pragma: no cover - the CPU and CUDA wheels have it
        raise ConfigError("this build of torch has no torch.distributed: train in one process")
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda" and dev.index is None:  # one GPU per process of this machine
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    else:
        torch.set_num_threads(max(1, threads or 1))
    if initialised:
        backend = str(dist.get_backend())
    else:
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start distributed training "
                              "with torchrun (or zenrec train --nproc N)")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", timeout=COLLECTIVE_TIMEOUT,
                                device_id=dev if dev.type == "cuda" else None)
    run = DistributedRun(dist.get_rank(), dist.get_world_size(), local_rank, dev, backend)
    log.info("distributed training: process %d of %d on %s (%s)", run.rank, run.world, dev, backend)
    return run


def shard_steps(n: int, batch_size: int, world: int) -> int:
    """Steps per epoch of each of ``world`` processes over ``n`` examples (see :func:`shard`)."""
    full, rest = divmod(n, batch_size * world)
    return full + (1 if rest >= world else 0)


def shard(perm: Any, batch_size: int, rank: int, world: int) -> Iterator[Any]:
    """Process ``rank``'s batches of one epoch, slices of ``perm`` (the epoch's shared permutation).

    Step ``s`` spans ``perm[s·B·world : (s+1)·B·world]`` (``B = batch_size``) and
    this process takes the ``rank``-th ``B`` of it: batch ``b`` goes to process
    ``b % world``.  The leftover ``r < B·world`` examples are cut into ``world``
    near-equal parts for a last step, unless ``r < world`` (then they are left
    for another epoch).  Every process gets :func:`shard_steps` batches.

    >>> [list(b) for b in shard(list(range(11)), 2, 0, 2)]
    [[0, 1], [4, 5], [8]]
    >>> [list(b) for b in shard(list(range(11)), 2, 1, 2)]
    [[2, 3], [6, 7], [9, 10]]
    """
    n = len(perm)
    step = batch_size * world
    full = n // step
    for s in range(full):
        start = s * step + rank * batch_size
        yield perm[start : start + batch_size]
    rest = n - full * step
    if rest >= world:
        bounds = np.linspace(0, rest, world + 1).astype(np.int64) + full * step
        yield perm[int(bounds[rank]) : int(bounds[rank + 1])]


def ddp_loss(run: DistributedRun, net: Any, loss_fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``loss_fn`` run through a DDP-wrapped module holding ``net``: the backward of its result all-reduces (averages)
    ``net``'s gradients over the processes.  Building it copies process 0's weights into every process."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    class _Loss(torch.nn.Module):
        """The model's loss as a module's forward: what DDP hooks is the call, whatever the loss calls inside."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, batch: Any) -> Any:
            return loss_fn(batch)

    ids = [run.device.index] if run.device.type == "cuda" else None
    # buffers are fixed inputs, the same in every process: no copy before each forward (the newer name first)
    no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(
        DistributedDataParallel.__init__).parameters else {"broadcast_buffers": False})
    return DistributedDataParallel(_Loss(), device_ids=ids, static_graph=True, **no_sync)


def launch_command(nproc: int, args: list[str], module: str = "zenrec.cli") -> list[str]:
    """The torchrun command that :func:`launch` runs (for people who run it themselves, e.g. on several machines)."""
    return ["torchrun", "--standalone", "--nproc-per-node", str(nproc), "-m", module, *args]


def launch(nproc: int, args: list[str], module: str = "zenrec.cli") -> None:
    """Run ``python -m MODULE ARGS`` in ``nproc`` processes on this machine with torchrun's launcher
    (``torch.distributed.run``, as :func:`launch_command`), and wait for them.

    Process 0 keeps this terminal; the others write to log files, so each
    message is printed once.  When a process fails, the others are stopped and a
    :class:`~zenrec.errors.ConfigError` says which one failed and how: process
    0 when it failed by itself (its error is already on stderr), else the first
    that failed, with the last lines of its log.  (When another process fails
    first and process 0 fails just after it, the same reason can show twice.)
    ``OMP_NUM_THREADS`` defaults to 1, as under torchrun.
    """
    import glob
    import tempfile

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args
    from torch.distributed.run import run as torchrun

    if nproc < 1:
        raise ConfigError(f"nproc must be at least 1; got {nproc}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    elastic = logging.getLogger("torch.distributed.elastic")
    level = elastic.level
    elastic.setLevel(logging.CRITICAL)  # the agent's own lines; a failure is reported below, once
    with tempfile.TemporaryDirectory(prefix="zenrec-torchrun-") as logs:
        quiet = ",".join(f"{r}:3" for r in range(1, nproc))
        flags = ["--standalone", "--nproc-per-node", str(nproc), "--max-restarts", "0"]
        if quiet:
            flags += ["--redirects", quiet, "--log-dir", logs]
        try:
            torchrun(parse_args([*flags, "-m", module, *args]))
        except ChildFailedError as exc:
            rank, failure = exc.get_first_failure()
            if 0 in exc.failures and exc.failures[0].exitcode > 0:  # process 0 failed on its own: it said why
                rank, failure = 0, exc.failures[0]
            how = (f"was stopped by signal {-failure.exitcode}" if failure.exitcode < 0
                   else f"exited with code {failure.exitcode}")
            tail = ""
            if rank != 0:
                found = sorted(glob.glob(os.path.join(logs, "*", "attempt_*", str(failure.local_rank), "stderr.log")))
                lines = Path(found[-1]).read_text(errors="replace").strip().splitlines()[-5:] if found else []
                tail = (": " + " / ".join(x.strip() for x in lines)) if lines else ""
            raise ConfigError(f"distributed training failed: process {rank} of {nproc} {how}{tail}") from None
        finally:
            elastic.setLevel(level)
