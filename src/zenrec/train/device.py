"""Device choice and reproducibility for PyTorch training."""

from __future__ import annotations

import os
import random

import numpy as np

__all__ = ["pick_device", "seed_everything"]


def pick_device(requested: str | None = None, threads: int | None = None):
    """``torch.device``: the requested one, else CUDA when present, else CPU.

    On the CPU, torch's intra-op threads are set to ``threads``, or to the
    cores this process may use.  Models whose steps are tiny (embedding
    look-ups of a few thousand rows) pass ``threads=1``: thread hand-offs
    cost more than they save there, and far more on a busy machine.
    """
    import torch

    if requested and requested != "cpu":
        return torch.device(requested)
    if requested is None and torch.cuda.is_available():
        return torch.device("cuda")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, threads or cores))
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
