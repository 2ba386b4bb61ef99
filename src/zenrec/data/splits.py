"""Train/validation/test splits: per-user random ratio, global temporal, leave-last-out.

All are vectorised and deterministic under a seed.  A split can be exported
as RecBole-style atomic files with raw ids (``NAME.train.inter`` …) so peer
libraries train on exactly the same rows, and loaded back.

A split may name *target event types* (``split_dataset(ds, target_events="purchase")``):
the rows of every part stay the same and training still sees every type, but
only held-out events of those types are evaluation targets (see
:meth:`Split.targets`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from zenrec.data.clean import _to_arrow
from zenrec.data.dataset import Dataset
from zenrec.data.interactions import Interactions
from zenrec.data.readers import read_recbole
from zenrec.data.schema import DEFAULT_EVENT_ALIASES, DEFAULT_EVENT_WEIGHTS
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
    "resolve_event_types",
]

Protocol = Literal["general", "temporal", "sequential"]


@dataclass
class Split:
    """Train / validation / test interactions over one id space."""

    train: Interactions
    valid: Interactions | None
    test: Interactions
    protocol: str = "general"
    #: canonical event types whose held-out events are evaluation targets; None: every type
    target_events: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        nv = len(self.valid) if self.valid is not None else 0
        targets = f", targets={','.join(self.target_events)}" if self.target_events else ""
        return f"Split({self.protocol}: train={len(self.train)}, valid={nv}, test={len(self.test)}{targets})"

    def present_event_types(self) -> tuple[str, ...]:
        """The event types with at least one row in some part, in the data's code order."""
        names = self.train.event_names or self.test.event_names
        if not names:
            return ()
        codes = set()
        for part in (self.train, self.valid, self.test):
            if part is not None and len(part):
                codes.update(np.unique(part.event).tolist())
        return tuple(n for c, n in enumerate(names) if c in codes)

    def with_target_events(
        self, types: str | Sequence[str] | None, aliases: Mapping[str, str] | None = None
    ) -> Split:
        """The same split with only held-out events of ``types`` as evaluation targets.

        ``types`` is a type name, a comma list (``"purchase,cart"``) or a list;
        each is a canonical type (view, click, favorite, cart, purchase, rating)
        or an alias the dataset declares in ``aliases`` (``buy`` → ``purchase``).
        ``None`` restores every type as a target.  A type absent from the data
        raises :class:`~zenrec.errors.ConfigError` listing the available ones.
        """
        if types is None:
            return replace(self, target_events=None)
        return replace(self, target_events=resolve_event_types(types, self.present_event_types(), aliases))

    def targets(self, part: Literal["valid", "test"]) -> Interactions:
        """The rows of a held-out part that are evaluation targets (of the target types, if any).

        The masking rule (an item already in the user's history is no target)
        is applied by the evaluator, which knows what it masks.
        """
        inter = self.valid if part == "valid" else self.test
        if part not in ("valid", "test") or inter is None:
            raise ConfigError(f"no {part!r} part to take targets from; expected 'valid' (when present) or 'test'")
        if self.target_events is None:
            return inter
        names = inter.event_names or self.train.event_names
        codes = [names.index(t) for t in self.target_events if t in names]
        if not names or not codes:
            raise ConfigError(
                f"the target event types {', '.join(self.target_events)} are not in this split's data; "
                f"available: {', '.join(self.present_event_types()) or 'none (no event types)'}"
            )
        return inter.subset(np.isin(inter.event, codes))

    @property
    def train_valid(self) -> Interactions:
        """Training and validation rows together (for refitting before testing)."""
        return self.train if self.valid is None else self.train.concat(self.valid)


def resolve_event_types(
    types: str | Sequence[str],
    available: Sequence[str],
    aliases: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Canonical event types for user-given names, checked against the ``available`` ones.

    Names match without regard to case and may be aliases the dataset declares
    (``aliases``: log name → type, e.g. ``{"buy": "purchase"}``) or zenrec's
    default aliases (``favourite``); a comma-separated string is split.  An
    unknown or absent name raises :class:`~zenrec.errors.ConfigError` listing
    what is available (with its aliases).
    """
    raw = types.split(",") if isinstance(types, str) else list(types)
    names = [str(t).strip().lower() for t in raw if str(t).strip()]
    amap = {str(k).strip().lower(): str(v).strip().lower() for k, v in (aliases or {}).items()}
    available = tuple(available)

    def listing() -> str:
        if not available:
            return "none: this data has no event types (ingest the log with --event COLUMN)"
        parts = []
        for t in available:
            also = sorted(a for a, v in amap.items() if v == t and a != t)
            parts.append(f"{t} (or {', '.join(also)})" if also else t)
        return ", ".join(parts)

    if not names:
        raise ConfigError(f"the target event types must name at least one type; got {types!r}; available: {listing()}")
    out: list[str] = []
    for name in names:
        canon = amap.get(name, name)
        canon = DEFAULT_EVENT_ALIASES.get(canon, canon) if canon not in available else canon
        if canon not in available:
            known = " (a known type, but no row of the data has it)" if canon in DEFAULT_EVENT_WEIGHTS else ""
            raise ConfigError(f"target event type {name!r} is not in the data{known}; available: {listing()}")
        if canon not in out:
            out.append(canon)
    return tuple(out)


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


def _shuffled_by_user(user: np.ndarray, key: np.ndarray) -> np.ndarray:
    """``np.lexsort((key, user))`` (the rows of each user ordered by a random ``key`` in [0, 1), ties by row)
    in a fifth of its time: one sort of ``user << 32 | the key's first 32 bits``; rows whose user and first
    32 bits are equal (a few in 50M) are then put in lexsort's order."""
    top = (np.asarray(key, dtype=np.float64) * 4294967296.0).astype(np.uint64)  # floor(key · 2^32), exact
    composite = (np.asarray(user).astype(np.uint64) << np.uint64(32)) | top
    del top
    order = np.argsort(composite)
    ordered = composite[order]
    tie = np.flatnonzero(ordered[1:] == ordered[:-1])
    del ordered, composite
    if len(tie):
        breaks = np.diff(tie) > 1
        starts = tie[np.concatenate([[True], breaks])]
        ends = tie[np.concatenate([breaks, [True]])] + 2
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            run = order[a:b]
            order[a:b] = run[np.lexsort((run, key[run]))]
    return order


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
    order = _shuffled_by_user(inter.user, rng.random(n))
    counts = np.bincount(inter.user, minlength=inter.n_users)
    indptr = inter.seq_indptr
    pos = np.arange(n, dtype=np.int64)
    pos -= indptr[inter.user[order]]
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
    del pos, u
    part = np.empty(n, dtype=np.int8)
    part[order] = part_sorted
    del order, part_sorted  # only the part of each row is left beside the rows: the parts are copied next
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


def split_dataset(
    dataset: Dataset,
    protocol: Protocol = "general",
    seed: int = 2020,
    target_events: str | Sequence[str] | None = None,
) -> Split:
    """The protocol's split of a dataset (see the design's evaluation protocols).

    ``target_events`` (e.g. ``"purchase"`` or ``"purchase,cart"``; canonical
    types or the dataset's aliases such as ``buy``) restricts the evaluation
    targets to held-out events of those types; the split itself, and what
    models train on, stay the same (:meth:`Split.with_target_events`).
    """
    if protocol == "general":
        split = random_split(dataset.interactions, (0.8, 0.1, 0.1), seed)
    elif protocol == "temporal":
        split = temporal_split(dataset.interactions, (0.8, 0.1, 0.1))
    elif protocol == "sequential":
        split = leave_last_out(dataset.interactions)
    else:
        raise ConfigError(
            f"the 'protocol' parameter must be one of general, temporal, sequential; got {protocol!r}"
        )
    if target_events is not None:
        split = split.with_target_events(target_events, dataset.event_aliases)
    return split


def _frame(inter: Interactions, users: Vocabulary, items: Vocabulary) -> pd.DataFrame:
    cols = {
        "user_id:token": users.ids(inter.user),
        "item_id:token": items.ids(inter.item),
        "timestamp:float": inter.timestamp,
    }
    if inter.event_names:  # the event type of each row, so targets can be chosen from the files too
        cols["event:token"] = np.asarray(inter.event_names, dtype=object)[inter.event]
    return pd.DataFrame(cols)


def _targets_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.targets.json"


def save_split(split: Split, dataset: Dataset, directory: str | Path, name: str | None = None) -> list[Path]:
    """Write the split as RecBole atomic files with raw ids (``NAME.train.inter`` …).

    Rows carry an ``event:token`` column when the data has event types.  A
    split with target event types also writes ``NAME.targets.json`` (the
    types and the dataset's aliases), which :func:`load_split` reads back.
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
        if split.target_events is not None:
            final = _targets_path(directory, name)
            tmp = directory / f".{final.name}.tmp-{os.getpid()}"
            staged.append((tmp, final))
            tmp.write_text(json.dumps({"target_events": list(split.target_events),
                                       "event_aliases": dict(dataset.event_aliases)}, indent=2) + "\n")
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return [final for _, final in staged]


_INT_RE = r"^-?(0|[1-9][0-9]*)$"


def _texts(frames: dict[str, pd.DataFrame], col: str, paths: Mapping[str, str | Path | None], what: str,
           lower: bool = False) -> dict[str, pa.ChunkedArray]:
    """Each part's column as stripped Arrow text (no Python object per row); an empty value is an error
    naming its line."""
    texts = {}
    for part, df in frames.items():
        t = pc.utf8_trim_whitespace(_to_arrow(df[col]).cast(pa.string()))
        if lower:
            t = pc.utf8_lower(t)
        empty = pc.fill_null(pc.equal(t, ""), True)
        if pc.any(empty).as_py():
            row = int(np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0])
            raise DataError(f"expected {what}; got an empty value (line {row + 2})", source=str(paths[part]),
                            row=row + 2, column=col)
        texts[part] = t
    return texts


def _coded_ids(texts: dict[str, pa.ChunkedArray], name: str) -> tuple[dict[str, np.ndarray], Vocabulary]:
    """Each part's codes over the ids of all parts (first-seen order), and their vocabulary: integers when
    every id is an integer written plainly, text otherwise."""
    whole = pa.chunked_array([c for t in texts.values() for c in t.chunks], pa.string())
    uniques: np.ndarray | None = None
    if pc.all(pc.match_substring_regex(whole, _INT_RE)).as_py() is not False:
        try:
            codes, uniques = pd.factorize(whole.cast(pa.int64()).to_numpy())
        except pa.ArrowInvalid:  # beyond int64: text
            uniques = None
    if uniques is None:
        enc = pc.dictionary_encode(whole.combine_chunks())
        codes = enc.indices.to_numpy(zero_copy_only=False)
        uniques = np.asarray(enc.dictionary.to_numpy(zero_copy_only=False), dtype=str)
    bounds = np.cumsum([0] + [len(t) for t in texts.values()])
    parts = {p: codes[a:b].astype(np.int32) for p, a, b in zip(texts, bounds[:-1], bounds[1:], strict=True)}
    return parts, Vocabulary(uniques, name)


def load_split_files(
    train: str | Path, test: str | Path, valid: str | Path | None = None, protocol: str = "general"
) -> tuple[Split, Dataset]:
    """Load a split from atomic files with raw ids; ids are coded over their union.

    Ids stay integers when every id in every part is an integer written
    plainly (``42``); otherwise they are text (``007`` keeps its zeros).
    An ``event`` column, when every part has one, gives the rows their event
    types (canonical types first, in zenrec's order)."""
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
    paths = {"train": train, "valid": valid, "test": test}
    uids, users = _coded_ids(_texts(frames, "user_id", paths, "a user id"), "user")
    iids, items = _coded_ids(_texts(frames, "item_id", paths, "an item id"), "item")
    event_names, event_codes = _event_codes(frames, paths)
    parts = {}
    for part, df in frames.items():
        u, i = uids.pop(part), iids.pop(part)
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
        ev = event_codes.get(part)
        parts[part] = Interactions(u, i, len(users), len(items), ts, event=ev, event_names=event_names)
    split = Split(parts["train"], parts.get("valid"), parts["test"], protocol)
    whole = split.train_valid.concat(split.test)
    return split, Dataset(whole, users, items, name=Path(train).name.split(".")[0])


def _event_codes(
    frames: dict[str, pd.DataFrame], paths: Mapping[str, str | Path | None]
) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Event type names and each part's codes from the ``event`` columns (none unless every part has one)."""
    if not frames or not all("event" in df.columns for df in frames.values()):
        return (), {}
    texts = _texts(frames, "event", paths, "an event type", lower=True)
    enc = pc.dictionary_encode(pa.chunked_array([c for t in texts.values() for c in t.chunks], pa.string())
                               .combine_chunks())
    found = enc.dictionary.to_pylist()  # the distinct names, first seen first
    order = list(DEFAULT_EVENT_WEIGHTS)
    names = tuple(sorted(found, key=lambda t: (order.index(t) if t in order else len(order), t)))
    if len(names) > 127:
        raise DataError(f"{len(names)} distinct event types; at most 127 are supported", column="event")
    codes = np.array([names.index(t) for t in found], dtype=np.int8)[enc.indices.to_numpy(zero_copy_only=False)]
    bounds = np.cumsum([0] + [len(t) for t in texts.values()])
    return names, {p: codes[a:b] for p, a, b in zip(texts, bounds[:-1], bounds[1:], strict=True)}


def load_split(directory: str | Path, name: str | None = None) -> tuple[Split, Dataset]:
    """Load files written by :func:`save_split` (with its target event types, when it wrote them)."""
    directory = Path(directory)
    trains = sorted(directory.glob(f"{name or '*'}.train.inter"))
    if not trains:
        raise DataError("no NAME.train.inter file here (expected a split written by `zenrec split`)", source=str(directory))
    stem = trains[0].name[: -len(".train.inter")]
    valid = directory / f"{stem}.valid.inter"
    split, ds = load_split_files(trains[0], directory / f"{stem}.test.inter", valid if valid.exists() else None)
    targets = _targets_path(directory, stem)
    if targets.exists():
        try:
            meta = json.loads(targets.read_text())
            types, aliases = list(meta["target_events"]), dict(meta.get("event_aliases") or {})
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"not a target-events file ({exc})", source=str(targets)) from None
        ds.event_aliases = {str(k): str(v) for k, v in aliases.items()}
        split = split.with_target_events(types, ds.event_aliases)
    return split, ds
