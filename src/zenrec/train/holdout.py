"""The validation slice a model that early-stops holds out of its training data when given none."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zenrec.data.interactions import Interactions
from zenrec.errors import ConfigError

__all__ = ["Holdout", "hold_out", "check_validation", "DEFAULT_SHARE", "MAX_VALID_USERS"]

#: share of each user's events held out for models that are not sequential (``validation=True``)
DEFAULT_SHARE = 0.1
#: at most this many (random) users give validation events: early stopping's cost stays bounded on large data
MAX_VALID_USERS = 10_000


@dataclass(frozen=True)
class Holdout:
    """The training part, the validation part and how it was chosen (one line for reports)."""

    train: Interactions
    valid: Interactions
    description: str


def check_validation(value: object) -> float | bool:
    """``TrainOptions.validation`` checked: True, False, or a share in (0, 1); anything else raises ConfigError."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and 0 < float(value) < 1:
        return float(value)
    raise ConfigError(f"the 'validation' training option must be True, False or a share between 0 and 1 "
                      f"(exclusive); got {value!r}")


def hold_out(train: Interactions, sequential: bool, share: float = DEFAULT_SHARE, seed: int = 0,
             max_users: int = MAX_VALID_USERS) -> Holdout:
    """Split ``train`` into a training part and a validation part for early stopping.

    Only users with at least two events give validation events, and each
    keeps at least one in training.  ``sequential``: each such user's last
    event (the next-item task, as the sequential protocol's leave-last-out).
    Otherwise a seeded random ``share`` of each such user's events (at least
    one).  With more than ``max_users`` such users, a seeded random
    ``max_users`` of them give validation events; the others keep all theirs.
    """
    if isinstance(share, bool) or not 0 < share < 1:
        raise ConfigError(f"the validation share must lie between 0 and 1 (exclusive); got {share!r}")
    rng = np.random.default_rng(seed)
    n = len(train)
    indptr = train.seq_indptr  # rows are sorted by (user, time)
    counts = np.diff(indptr)
    eligible = np.flatnonzero(counts >= 2)
    if len(eligible) > max_users:
        eligible = np.sort(rng.choice(eligible, max_users, replace=False))
    chosen = np.zeros(train.n_users, dtype=bool)
    chosen[eligible] = True
    if sequential:
        held = chosen[train.user] & (np.arange(n) == indptr[train.user + 1] - 1)
        what = "each user's last event"
    else:
        k = np.clip(np.floor(share * counts).astype(np.int64), 1, np.maximum(counts - 1, 1))
        order = np.lexsort((rng.random(n), train.user))  # each user's rows in random order
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - indptr[train.user[order]]
        held = chosen[train.user] & (rank < k[train.user])
        what = f"a random {share:.0%} of each user's events"
    users = f"{len(eligible):,} users" + (" (a random sample)" if len(eligible) < (counts >= 2).sum() else "")
    return Holdout(train.subset(~held), train.subset(held),
                   f"{what}: {int(held.sum()):,} events of {users} with 2 or more")
