"""``zenrec train --nproc N``: the checks before training on several processes, and the torchrun launch.

The command runs ``torchrun --standalone --nproc-per-node N -m zenrec.cli
train …`` itself (:func:`zenrec.train.distributed.launch`); each process runs
the same ``train`` command, which trains with DistributedDataParallel, and
process 0 writes the model directory (see :mod:`zenrec.train.distributed`).
On several machines people run torchrun themselves with ``--nnodes``.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any

from zenrec.errors import ConfigError

__all__ = ["check_processes", "launch_train", "train_args"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_processes(name: str, model_cls: Any, params: dict[str, Any], nproc: int) -> bool:
    """Check ``--nproc`` and the model for training on several processes; True when this command must start
    them (``nproc`` > 1 outside torchrun), False when it trains here (one process, or one of torchrun's)."""
    from zenrec.models.registry import available_models, create_model, get_model_class
    from zenrec.train.distributed import env_world_size

    under_torchrun = env_world_size() > 1
    if nproc < 1:
        raise ConfigError(f"--nproc must be a positive number of processes; got {nproc}")
    if nproc == 1 and not under_torchrun:
        return False
    if nproc > 1 and under_torchrun:
        raise ConfigError(f"--nproc starts torchrun itself, but this process already runs under torchrun "
                          f"(WORLD_SIZE={env_world_size()}): leave --nproc out")
    if not model_cls.uses_torch:
        torch_models = ", ".join(n for n in available_models() if get_model_class(n).uses_torch)
        raise ConfigError(f"{name} does not train on several processes (it has no PyTorch training loop); "
                          f"--nproc and torchrun train {torch_models}")
    config = create_model(name, **params).config  # a bad parameter fails before any process starts
    if getattr(config, "dp_epsilon", None) is not None:
        raise ConfigError(f"{name} with dp_epsilon does not train on several processes: DP-SGD's per-example "
                          "clipping, Poisson sampling and privacy accounting are per process; leave --nproc out")
    if under_torchrun:
        return False
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and nproc > gpus:
        raise ConfigError(f"--nproc {nproc} is more than the {gpus} GPUs here (one process per GPU)")
    if not gpus and nproc > _cores():
        raise ConfigError(f"--nproc {nproc} is more than the {_cores()} cores this process may use: each process "
                          "trains with one thread, so more processes than cores only wait for each other")
    return True


def train_args(data: Path, output: Path, model: str, param: list[str] | None, params_from: Path | None,
               seed: int, validation: bool) -> list[str]:
    """The ``zenrec train`` arguments each process runs (every option of the command but ``--nproc``)."""
    args = ["-v"] if logging.getLogger("zenrec").isEnabledFor(logging.INFO) else []
    args += ["train", str(data), "--output", str(output), "--model", model, "--seed", str(seed),
             "--validation" if validation else "--no-validation"]
    if params_from is not None:
        args += ["--params-from", str(params_from)]
    for p in param or []:
        args += ["--param", p]
    return args


def launch_train(nproc: int, args: list[str]) -> None:
    """Say which torchrun command trains, then run it (:func:`zenrec.train.distributed.launch`)."""
    from zenrec.cli.common import err
    from zenrec.train.distributed import launch, launch_command

    err.print(f"training on {nproc} processes: {shlex.join(launch_command(nproc, args))}", highlight=False,
              markup=False, soft_wrap=True)
    launch(nproc, args)
