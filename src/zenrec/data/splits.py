"""Train/validation/test splits: per-user random ratio, global temporal, leave-last-out.

All are vectorised and deterministic under a seed.  A split can be exported
as RecBole-style atomic files with raw ids (``NAME.train.inter`` …) so peer
libraries train on exactly the same rows, and loaded back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from zenrec._io import atomic_dir
from zenrec.data.dataset import Dataset
from zenrec.data.interactions import Interactions
from zenrec.data.readers import read_recbole
from zenrec.data.vocab import Vocabulary
from zenrec.errors import ConfigError, DataError

__all__ = [
    "Split",
    "Protocol",
    "random_split",
    "temporal_split",
    "leave_last_out",
    "split_dataset",
    "save_split",
    "load_split",
    "load_split_files",
]

Protocol = Literal["general", "temporal", "sequential"]


@dataclass
class Split:
    """Train / validation / test interactions over one id space."""

    train: Interactions
    valid: Interactions | None
    test: Interactions
    protocol: str = "general"

    def __repr__(self) -> str:
        nv = len(self.valid) if self.valid is not None else 0
        return f"Split({self.protocol}: train={len(self.train)}, valid={nv}, test={len(self.test)})"

    @property
    def train_valid(self) -> Interactions:
        """Training and validation rows together (for refitting before testing)."""
        return self.train if self.valid is None else self.train.concat(self.valid)


def _check_ratios(ratios: tuple[float, ...]) -> np.ndarray:
    r = np.asarray(ratios, dtype=np.float64)
    if len(r) not in (2, 3) or (r < 0).any() or r[0] <= 0 or not np.isclose(r.sum(), 1.0):
        raise ConfigError(
            f"the 'ratios' parameter must be 2 or 3 non-negative fractions summing to 1 "
            f"with a positive train share; got {tuple(ratios)}"
        )
    return r


def _partition(inter: Interactions, part: np.ndarray, protocol: str, n_parts: int) -> Split:
    parts = [inter.subset(part == k) for k in range(n_parts)]
    if n_parts == 2:
        return Split(parts[0], None, parts[1], protocol)
    return Split(parts[0], parts[1], parts[2], protocol)


def random_split(
    inter: Interactions, ratios: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 2020
) -> Split:
    """Per-user random split (RecBole's ``RS`` with group by user).

    Each user's events are shuffled and cut by ``ratios``; the held-out parts
    get ``floor(ratio·n)`` events, raised to one where ``0 < ratio·n < 1``
    while the user keeps at least one training event, as RecBole does.
    """
    r = _check_ratios(ratios)
    rng = np.random.default_rng(seed)
    n = len(inter)
    order = np.lexsort((rng.random(n), inter.user))
    counts = np.bincount(inter.user, minlength=inter.n_users)
    tot = counts[inter.user[order]]
    indptr = inter.seq_indptr
    pos = np.arange(n) - indptr[inter.user[order]]
    # per-user counts of each held-out part, RecBole's rule
    cnt = [np.floor(r[k] * counts).astype(np.int64) for k in range(len(r))]
    cnt[0] = counts - sum(cnt[1:])
    for k in range(len(r) - 1, 0, -1):
        bump = (cnt[0] > 1) & (r[k] * counts > 0) & (r[k] * counts < 1)
        cnt[k] = cnt[k] + bump
        cnt[0] = cnt[0] - bump
    bounds = np.cumsum(np.stack(cnt), axis=0)  # parts × users
    u = inter.user[order]
    part_sorted = np.zeros(n, dtype=np.int8)
    for k in range(1, len(r)):
        part_sorted += pos >= bounds[k - 1][u]
    del tot
    part = np.empty(n, dtype=np.int8)
    part[order] = part_sorted
    return _partition(inter, part, "general", len(r))


def temporal_split(inter: Interactions, ratios: tuple[float, ...] = (0.8, 0.1, 0.1)) -> Split:
    """Global temporal split: the earliest ``ratios[0]`` of all events train, and so on.

    Ties in time are broken by row order, so the cut is exact and deterministic.
    """
    r = _check_ratios(ratios)
    n = len(inter)
    order = np.argsort(inter.timestamp, kind="stable")
    cuts = np.floor(np.cumsum(r)[:-1] * n).astype(np.int64)
    part = np.empty(n, dtype=np.int8)
    part[order] = np.searchsorted(cuts, np.arange(n), side="right").astype(np.int8)
    return _partition(inter, part, "temporal", len(r))


def leave_last_out(inter: Interactions, validation: bool = True, min_train: int = 1) -> Split:
    """Chronological leave-last-out: each user's last event is test, the one
    before it validation; users with too few events keep them all in train."""
    n = len(inter)
    indptr = inter.seq_indptr  # rows are sorted by (user, time)
    counts = np.diff(indptr)
    held = 2 if validation else 1
    eligible = counts >= min_train + held
    pos_from_end = indptr[inter.user + 1] - 1 - np.arange(n)
    part = np.zeros(n, dtype=np.int8)
    ok = eligible[inter.user]
    if validation:
        part[ok & (pos_from_end == 1)] = 1
        part[ok & (pos_from_end == 0)] = 2
        return _partition(inter, part, "sequential", 3)
    part[ok & (pos_from_end == 0)] = 1
    return _partition(inter, part, "sequential", 2)


def split_dataset(dataset: Dataset, protocol: Protocol = "general", seed: int = 2020) -> Split:
    """The protocol's split of a dataset (see the design's evaluation protocols)."""
    if protocol == "general":
        return random_split(dataset.interactions, (0.8, 0.1, 0.1), seed)
    if protocol == "temporal":
        return temporal_split(dataset.interactions, (0.8, 0.1, 0.1))
    if protocol == "sequential":
        return leave_last_out(dataset.interactions)
    raise ConfigError(f"the 'protocol' parameter must be one of general, temporal, sequential; got {protocol!r}")


def _frame(inter: Interactions, users: Vocabulary, items: Vocabulary) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id:token": users.ids(inter.user),
            "item_id:token": items.ids(inter.item),
            "timestamp:float": inter.timestamp,
        }
    )


def save_split(split: Split, dataset: Dataset, directory: str | Path, name: str | None = None) -> list[Path]:
    """Write the split as RecBole atomic files with raw ids, atomically."""
    name = name or dataset.name
    directory = Path(directory)
    written = []
    with atomic_dir(directory) as tmp:
        for part in ("train", "valid", "test"):
            inter = getattr(split, part)
            if inter is None:
                continue
            _frame(inter, dataset.users, dataset.items).to_csv(tmp / f"{name}.{part}.inter", sep="\t", index=False)
            written.append(directory / f"{name}.{part}.inter")
    return written


def load_split_files(
    train: str | Path, test: str | Path, valid: str | Path | None = None, protocol: str = "general"
) -> tuple[Split, Dataset]:
    """Load a split from atomic files with raw ids; ids are coded over their union."""
    frames = {}
    for part, path in (("train", train), ("valid", valid), ("test", test)):
        if path is not None:
            df = read_recbole(path)
            for col in ("user_id", "item_id"):
                if col not in df.columns:
                    raise DataError(f"missing column {col!r}", source=str(path))
            frames[part] = df
    allu = pd.concat([f["user_id"].astype("string") for f in frames.values()], ignore_index=True)
    alli = pd.concat([f["item_id"].astype("string") for f in frames.values()], ignore_index=True)
    users, _ = Vocabulary.from_values(allu.to_numpy(dtype=str), "user")
    items, _ = Vocabulary.from_values(alli.to_numpy(dtype=str), "item")
    parts = {}
    for part, df in frames.items():
        u = users.index(df["user_id"].astype("string").to_numpy(dtype=str))
        i = items.index(df["item_id"].astype("string").to_numpy(dtype=str))
        ts = df["timestamp"].to_numpy(dtype=np.int64) if "timestamp" in df.columns else None
        parts[part] = Interactions(u, i, len(users), len(items), ts)
    split = Split(parts["train"], parts.get("valid"), parts["test"], protocol)
    whole = split.train_valid.concat(split.test)
    return split, Dataset(whole, users, items, name=Path(train).name.split(".")[0])


def load_split(directory: str | Path, name: str | None = None) -> tuple[Split, Dataset]:
    """Load files written by :func:`save_split`."""
    directory = Path(directory)
    trains = sorted(directory.glob(f"{name or '*'}.train.inter"))
    if not trains:
        raise DataError("no NAME.train.inter file here (expected a split written by `zenrec split`)", source=str(directory))
    stem = trains[0].name[: -len(".train.inter")]
    valid = directory / f"{stem}.valid.inter"
    return load_split_files(trains[0], directory / f"{stem}.test.inter", valid if valid.exists() else None)
