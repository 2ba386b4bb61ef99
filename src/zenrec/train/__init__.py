"""Shared training utilities for the PyTorch models: device, seeds, early stopping."""

from zenrec.train.device import pick_device, seed_everything
from zenrec.train.early_stopping import EarlyStopping

__all__ = ["EarlyStopping", "pick_device", "seed_everything"]
