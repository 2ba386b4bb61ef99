"""Early stopping on a validation metric, keeping the best state."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Tracks the best value of a metric (higher is better) and says when to stop.

    >>> es = EarlyStopping(patience=2)
    >>> [es.step(v, state=v) for v in (0.1, 0.3, 0.2, 0.25)]
    [False, False, False, True]
    >>> es.best, es.best_state, es.best_epoch
    (0.3, 0.3, 1)
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = float("-inf")
        self.best_state: Any = None
        self.best_epoch = -1
        self.epoch = -1
        self.bad_epochs = 0

    def step(self, value: float, state: Any = None) -> bool:
        """Record one epoch's value; ``True`` when training should stop."""
        self.epoch += 1
        if value > self.best + self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
            self.best_state = copy.deepcopy(state)
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience
