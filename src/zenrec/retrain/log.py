"""The training log: the raw rows a version is trained on, read from a base dataset and the event store.

:class:`TrainingLog` holds them (user, item, timestamp, weight, event type,
store seq, the version whose served list the event answers) and is kept in every version written by
:func:`zenrec.retrain.retrain` as :data:`TRAINING_LOG_FILE`.
:func:`gather_training_log` builds a run's log (mode ``full`` or
``incremental``); :func:`read_store_events` reads store events page by page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zenrec.data.dataset import Dataset
from zenrec.data.events import EventTypes
from zenrec.data.interactions import Interactions
from zenrec.data.vocab import Vocabulary
from zenrec.errors import ArtifactError, ConfigError, DataError
from zenrec.store.erasure import TOMBSTONES, ErasureLog, erasure_dir
from zenrec.store.events import EventStore
from zenrec.store.registry import ModelRegistry, VersionInfo

__all__ = ["TrainingLog", "read_store_events", "gather_training_log", "TRAINING_LOG_FILE"]

#: the training log inside a version directory written by :func:`retrain`
TRAINING_LOG_FILE = "training_log.npz"
#: store events read per query
_PAGE = 50_000


def _text(values: Any) -> np.ndarray:
    """Ids as a unicode array (never object dtype, which would need pickle)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    return np.asarray([str(v) for v in arr.tolist()], dtype=str) if len(arr) else np.empty(0, dtype="<U1")


def _as_integers(ids: np.ndarray) -> np.ndarray:
    """Text ids as int64 when every one is an integer in canonical decimal form (``"7"``, not ``"07"``), else as is."""
    if len(ids) == 0:
        return ids
    canonical = pd.Series(ids, dtype="string").str.fullmatch(r"-?(?:0|[1-9][0-9]{0,17})")
    return ids.astype(np.int64) if bool(canonical.all()) else ids


def integer_ids_lost(log: TrainingLog, integer_ids: tuple[bool, bool]) -> list[str]:
    """Which of the wanted integer id kinds the log cannot keep (its ids are not all integers)."""
    lost = []
    for kind, col, want in (("user", log.user, integer_ids[0]), ("item", log.item, integer_ids[1])):
        if want and _as_integers(col).dtype.kind == "U":
            lost.append(kind)
    return lost


@dataclass(frozen=True)
class TrainingLog:
    """The raw rows a version is trained on, in order: base rows first, then store events by ``seq``.

    Ids are text (a base dataset's integer ids become their decimal form).
    ``weight`` is the strength the model trains on; ``seq`` is the store seq,
    0 for rows of the base dataset.  ``served_by`` is the model version whose
    served list the event answers (its ``list_id`` was one of that version's
    lists), ``""`` for other rows; logs written before it existed read as all
    ``""``.
    """

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    weight: np.ndarray
    event: np.ndarray
    seq: np.ndarray
    served_by: np.ndarray = field(default=None)  # type: ignore[assignment]  # None: no row answers a list

    _COLUMNS = ("user", "item", "timestamp", "weight", "event", "seq", "served_by")

    def __post_init__(self) -> None:
        if self.served_by is None:
            object.__setattr__(self, "served_by", np.full(len(self.user), "", dtype="<U1"))

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def empty(cls) -> TrainingLog:
        """A log without rows."""
        return cls(_text([]), _text([]), np.empty(0), np.empty(0, np.float32), _text([]), np.empty(0, np.int64))

    @classmethod
    def from_dataset(cls, ds: Dataset) -> TrainingLog:
        """Rows of a dataset from ``zenrec ingest`` (its cleaned weights; seq 0)."""
        inter = ds.interactions
        names = np.asarray(list(inter.event_names) or [""], dtype=str)
        codes = np.clip(inter.event.astype(np.int64), 0, len(names) - 1)
        return cls(
            _text(ds.users.ids(inter.user)), _text(ds.items.ids(inter.item)),
            inter.timestamp.astype(np.float64), inter.weight.astype(np.float32), names[codes],
            np.zeros(len(inter), dtype=np.int64),
        )

    @classmethod
    def from_records(cls, records: Sequence[Any], events: EventTypes | None = None,
                     dropped: dict[str, int] | None = None) -> TrainingLog:
        """Rows of store events (:class:`~zenrec.store.events.EventRecord`), in the order given.

        Each type is read through ``events`` (the vocabulary declared at ingest; default: the canonical
        types): an alias becomes its type and weighs as it, a name the vocabulary does not know is left out
        and counted in ``dropped`` (the rule of ``zenrec ingest`` and of the server, which refuses it).
        """
        events = events or EventTypes()
        kept, types = [], []
        for r in records:
            t = events.canonical(r.type)
            if t is None:
                if dropped is not None:
                    dropped[r.type] = dropped.get(r.type, 0) + 1
                continue
            kept.append(r)
            types.append(t)
        if not kept:
            return cls.empty()
        return cls(
            _text([r.user for r in kept]), _text([r.item for r in kept]),
            np.asarray([r.timestamp for r in kept], dtype=np.float64),
            np.asarray([events.weights[t] for t in types], dtype=np.float32),
            _text(types), np.asarray([r.seq for r in kept], dtype=np.int64),
            np.asarray([r.model_version or "" for r in kept], dtype=str),
        )

    def concat(self, other: TrainingLog) -> TrainingLog:
        """This log's rows followed by ``other``'s."""
        return TrainingLog(*(np.concatenate([getattr(self, c), getattr(other, c)]) for c in self._COLUMNS))

    def subset(self, mask: np.ndarray) -> TrainingLog:
        """The rows where ``mask`` holds, in order."""
        return TrainingLog(*(getattr(self, c)[mask] for c in self._COLUMNS))

    def equals(self, other: TrainingLog) -> bool:
        """Same rows in the same order."""
        return all(np.array_equal(getattr(self, c), getattr(other, c)) for c in self._COLUMNS)

    @property
    def last_event_seq(self) -> int:
        """The largest store seq in the log (0 when it holds no store event)."""
        return int(self.seq.max()) if len(self) else 0

    @property
    def trained_until(self) -> float | None:
        """The largest event timestamp, None for an empty log."""
        return float(self.timestamp.max()) if len(self) else None

    def save(self, path: str | Path) -> None:
        """Write the log as a compressed ``.npz`` of plain arrays (no pickle)."""
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **{c: getattr(self, c) for c in self._COLUMNS})

    @classmethod
    def load(cls, path: str | Path) -> TrainingLog:
        """Read a log written by :meth:`save` (never unpickling anything)."""
        import zipfile

        try:
            with np.load(path, allow_pickle=False) as z:
                # served_by is absent from logs written before it existed
                cols = [z[c] for c in cls._COLUMNS if c in z.files or c != "served_by"]
        except FileNotFoundError:
            raise ArtifactError(f"{path}: missing") from None
        except (ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise ArtifactError(f"{path}: corrupted training log ({exc})") from None
        if len({len(c) for c in cols}) != 1:
            raise ArtifactError(f"{path}: corrupted training log (columns of different lengths)")
        return cls(*cols)

    def to_dataset(self, titles: Mapping[str, str] | None = None, name: str = "retrain",
                   integer_ids: tuple[bool, bool] = (False, False), events: EventTypes | None = None) -> Dataset:
        """Code the rows into a :class:`Dataset` (ids in first-seen order), with item titles when given.

        ``integer_ids`` (users, items): the data the version descends from had integer ids, so ids that are
        all integers in decimal form become integers again (a client reads the same JSON types after a
        retrain); ids that are not all integers stay text.
        """
        if len(self) == 0:
            raise DataError("no events to train on")
        users, u = Vocabulary.from_values(_as_integers(self.user) if integer_ids[0] else self.user, "user")
        items, i = Vocabulary.from_values(_as_integers(self.item) if integer_ids[1] else self.item, "item")
        names, codes = np.unique(self.event, return_inverse=True)
        if len(names) > np.iinfo(np.int8).max:  # more types than the event code holds: drop the codes
            names, codes = np.empty(0, dtype=str), np.zeros(len(self), dtype=np.int64)
        inter = Interactions(
            u, i, len(users), len(items), np.floor(self.timestamp).astype(np.int64), self.weight,
            codes.astype(np.int8), tuple(str(n) for n in names),
        )
        table = None
        if titles:
            table = pd.DataFrame({"title": pd.Series([titles.get(x, "") for x in items.all_ids], dtype="string")})
        ev = events or EventTypes()
        return Dataset(inter, users, items, table, name=name, event_aliases=dict(ev.aliases),
                       event_weights=dict(ev.weights))


def read_store_events(store: EventStore, after_seq: int = 0, page: int = _PAGE, events: EventTypes | None = None,
                      dropped: dict[str, int] | None = None) -> TrainingLog:
    """Every event stored after ``after_seq``, in ``seq`` order, read page by page (``seq`` ascending).

    Types are read through ``events`` as :meth:`TrainingLog.from_records` does (unknown ones counted in
    ``dropped``).
    """
    parts = []
    seq = int(after_seq)
    while True:
        records = store.events_since(seq, limit=page)
        if not records:
            break
        parts.append(TrainingLog.from_records(records, events, dropped))
        seq = records[-1].seq
        if len(records) < page:
            break
    out = TrainingLog.empty()
    for p in parts:
        out = out.concat(p)
    return out


def _titles(*sources: tuple[Vocabulary, np.ndarray | None]) -> dict[str, str]:
    """Raw item id (text) → title from (vocabulary, titles) pairs; the first source wins."""
    out: dict[str, str] = {}
    for vocab, titles in reversed(sources):
        if titles is not None:
            out.update(zip(_text(vocab.all_ids).tolist(), np.asarray(titles, dtype=str).tolist(), strict=True))
    return out


def _dataset_titles(ds: Dataset) -> np.ndarray | None:
    """Item titles of a dataset's item table, in item order, when it has them."""
    t = ds.item_table
    if t is None or "title" not in t.columns:
        return None
    return t["title"].astype("string").fillna("").to_numpy(dtype=str)


def _training_log_of(info: VersionInfo) -> TrainingLog:
    """The training log kept in a version written by :func:`retrain` (ConfigError for other versions)."""
    f = info.path / str(info.extra.get("training_log") or TRAINING_LOG_FILE)
    if not f.is_file() or info.last_event_seq is None:
        raise ConfigError(
            f"the current version {info.id} has no training log and last_event_seq (it was not written by "
            "`zenrec retrain`); run --mode full once"
        )
    return TrainingLog.load(f)


def _tombstones(root: Path) -> ErasureLog | None:
    """The erasure log of a registry when it holds tombstones (`zenrec forget`), else None."""
    if not (erasure_dir(root) / TOMBSTONES).is_file():
        return None
    return ErasureLog(erasure_dir(root), create_key=False)


def gather_training_log(reg: ModelRegistry, info: VersionInfo | None, mode: str, base: str | Path | None,
                        store_url: str | None, events: EventTypes | None = None,
                        dropped: dict[str, int] | None = None) -> tuple[TrainingLog, int, Dataset | None]:
    """The training log of a run, how many store events it read, and the base dataset (full mode).

    ``full``: the base dataset's rows, then every stored event.  ``incremental``:
    the current version ``info``'s training log, then only the events stored
    after its ``last_event_seq``.  Store event types are read through
    ``events`` (default: the base dataset's vocabulary, else the canonical
    types); unknown ones are left out and counted in ``dropped``.
    """
    if mode == "incremental":
        if info is None:
            raise ConfigError("incremental mode starts from the current version, and none is promoted; "
                              "run --mode full first")
        if base is not None:
            raise ConfigError("a base dataset is read only in full mode; incremental mode starts from the "
                              "current version's training log")
    base_ds = Dataset.load(base) if base is not None else None
    log = TrainingLog.from_dataset(base_ds) if base_ds is not None else TrainingLog.empty()
    after = 0
    if info is not None and mode == "incremental":
        log = _training_log_of(info)
        after = int(info.last_event_seq or 0)
    store = EventStore(store_url or reg.events_url())
    try:
        vocab = events or (base_ds.events if base_ds is not None else None)
        new = read_store_events(store, after, events=vocab, dropped=dropped)
    finally:
        store.close()
    log = log.concat(new)
    stones = _tombstones(reg.root)
    if stones is not None:  # users erased by `zenrec forget` stay out of every later retrain
        log = log.subset(stones.keep_mask(log.user))
    if len(log) == 0:
        raise DataError(f"nothing to train on: the event store {store.url} holds no events"
                        + (" and no base dataset was given" if base is None else ""))
    return log, len(new), base_ds
