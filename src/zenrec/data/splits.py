"""Train/validation/test splits: per-user random ratio, global temporal, leave-last-out.

All are vectorised and deterministic under a seed.  A split can be exported
as RecBole-style atomic files with raw ids (``NAME.train.inter`` …) so peer
libraries train on exactly the same rows, and loaded back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

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
    """Write the split as RecBole atomic files with raw ids (``NAME.train.inter`` …).

    Every file is written to a temporary name first and renamed only when all
    parts are complete; other files in ``directory`` are left alone."""
    name = name or dataset.name
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for part in ("train", "valid", "test"):
            inter = getattr(split, part)
            if inter is None:
                continue
            final = directory / f"{name}.{part}.inter"
            tmp = directory / f".{final.name}.tmp-{os.getpid()}"
            staged.append((tmp, final))
            _frame(inter, dataset.users, dataset.items).to_csv(tmp, sep="\t", index=False)
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return [final for _, final in staged]


_INT_RE = r"^-?(0|[1-9][0-9]*)$"


def _raw_ids(frames: dict[str, pd.DataFrame], col: str) -> tuple[dict[str, np.ndarray], bool]:
    """Each part's ids as text, and whether every id is a canonical integer (then they stay integers)."""
    texts = {part: df[col].astype("string").str.strip().to_numpy(dtype=object) for part, df in frames.items()}
    as_int = all(pd.Series(t, dtype="string").str.fullmatch(_INT_RE).fillna(False).all() for t in texts.values())
    if as_int:
        return {p: t.astype(np.int64) for p, t in texts.items()}, True
    return {p: t.astype(str) for p, t in texts.items()}, False


def load_split_files(
    train: str | Path, test: str | Path, valid: str | Path | None = None, protocol: str = "general"
) -> tuple[Split, Dataset]:
    """Load a split from atomic files with raw ids; ids are coded over their union.

    Ids stay integers when every id in every part is an integer written
    plainly (``42``); otherwise they are text (``007`` keeps its zeros)."""
    frames = {}
    for part, path in (("train", train), ("valid", valid), ("test", test)):
        if path is not None:
            df = read_recbole(path, tokens_as_text=True)
            for col in ("user_id", "item_id"):
                if col not in df.columns:
                    raise DataError(
                        f"missing column {col!r}; expected a RecBole atomic file with "
                        f"user_id:token and item_id:token columns, got {list(df.columns)}",
                        source=str(path),
                        column=col,
                    )
            frames[part] = df
    uids, _ = _raw_ids(frames, "user_id")
    iids, _ = _raw_ids(frames, "item_id")
    users, _ = Vocabulary.from_values(np.concatenate(list(uids.values())), "user")
    items, _ = Vocabulary.from_values(np.concatenate(list(iids.values())), "item")
    parts = {}
    for part, df in frames.items():
        u = users.index(uids[part])
        i = items.index(iids[part])
        ts = None
        if "timestamp" in df.columns:
            tsv = pd.to_numeric(df["timestamp"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isnan(tsv).any():
                row = int(np.flatnonzero(np.isnan(tsv))[0])
                raise DataError(
                    f"expected a number of seconds; got {df['timestamp'].iloc[row]!r} (line {row + 2})",
                    source=str({"train": train, "valid": valid, "test": test}[part]),
                    row=row + 2,
                    column="timestamp",
                )
            ts = tsv.astype(np.int64)
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
