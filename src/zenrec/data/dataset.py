"""``Dataset``: cleaned interactions plus their vocabularies, item table and report."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from zenrec import __version__
from zenrec._io import atomic_dir, read_manifest, write_json
from zenrec.data.clean import CleanedEvents, CleaningReport, clean_events
from zenrec.data.events import EventTypes
from zenrec.data.ingest import STREAMED_FORMATS, clean_file
from zenrec.data.interactions import Interactions
from zenrec.data.items import ItemColumns, check_item_table
from zenrec.data.readers import Format, _base_suffix, guess_format, read_table, record_lines
from zenrec.data.schema import DEFAULT_EVENT_WEIGHTS, CleaningConfig, ColumnMap
from zenrec.data.vocab import Vocabulary
from zenrec.errors import ArtifactError, DataError

__all__ = ["Dataset", "DATASET_FORMAT"]

DATASET_FORMAT = 1


@dataclass
class Dataset:
    """Everything ingest produces; models see only :attr:`interactions`.

    ``item_table`` is an optional side table indexed by item index (e.g. titles);
    ``item_columns`` declares which of its columns are item features (text,
    categorical, multi-hot, numeric) for the models that read content.
    """

    interactions: Interactions
    users: Vocabulary
    items: Vocabulary
    item_table: pd.DataFrame | None = None
    report: CleaningReport = field(default_factory=CleaningReport)
    name: str = "dataset"
    #: the log's own event names and the types they count as (``buy`` → ``purchase``), declared at ingest
    event_aliases: dict[str, str] = field(default_factory=dict)
    #: the weight of each event type the dataset was cleaned with
    event_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    #: the item table's feature columns, declared at ingest (None: the table, if any, is for display)
    item_columns: ItemColumns | None = None

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, events={len(self.interactions)}, users={len(self.users)}, items={len(self.items)})"

    @property
    def events(self) -> EventTypes:
        """The event vocabulary declared at ingest (aliases and weights), carried into models trained on it."""
        return EventTypes(dict(self.event_weights), dict(self.event_aliases))

    @property
    def fingerprint(self) -> str:
        """A short hash of the coded events, stored in model manifests."""
        h = hashlib.sha256()
        for a in (self.interactions.user, self.interactions.item, self.interactions.timestamp):
            h.update(np.ascontiguousarray(a))  # the array's own buffer: no copy of a 50M-row column
        return h.hexdigest()[:16]

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        columns: ColumnMap | None = None,
        cleaning: CleaningConfig | None = None,
        name: str = "dataset",
        source: str = "<DataFrame>",
        first_line: int | None = None,
        lines: Callable[[], np.ndarray | None] | None = None,
    ) -> Dataset:
        """Clean a raw DataFrame into a dataset (``first_line``, ``lines``: see :func:`clean_events`)."""
        ev = clean_events(df, columns, cleaning, source=source, first_line=first_line, lines=lines)
        return cls._from_cleaned(ev, cleaning, name)

    @classmethod
    def _from_cleaned(cls, ev: CleanedEvents, cleaning: CleaningConfig | None, name: str) -> Dataset:
        inter = Interactions(
            ev.user, ev.item, len(ev.users), len(ev.items), ev.timestamp, ev.weight, ev.event, ev.event_names
        )
        config = cleaning or CleaningConfig()
        return cls(inter, ev.users, ev.items, None, ev.report, name, dict(config.event_aliases),
                   dict(config.event_weights))

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        columns: ColumnMap | None = None,
        cleaning: CleaningConfig | None = None,
        format: Format | None = None,
        name: str | None = None,
        encoding: str | None = None,
        chunk_rows: int | None = None,
        delimiter: str | None = None,
    ) -> Dataset:
        """Read and clean a log file (CSV/TSV/Parquet/JSON Lines/RecBole/MovieLens); ``encoding``
        names a text file's encoding when it is not UTF-8 (``latin-1``, ``cp1252``, ``utf-16``...),
        ``delimiter`` a CSV file's field delimiter when it is not a comma (``";"``, ``"|"``).

        CSV, TSV and Parquet files are read and cleaned ``chunk_rows`` rows at a
        time (default :data:`~zenrec.data.ingest.CHUNK_ROWS`; see
        :func:`~zenrec.data.ingest.clean_file`): memory grows with the events
        kept, not with the size of the file.  The other formats are read whole."""
        path = Path(path)
        fmt = format or guess_format(path)
        name = name or path.name.split(".")[0]
        if fmt in STREAMED_FORMATS:
            return cls._from_cleaned(clean_file(path, columns, cleaning, fmt, encoding, chunk_rows, delimiter),
                                     cleaning, name)
        df = read_table(path, fmt, encoding=encoding, delimiter=delimiter)
        # rows are named by their line in text files (1 = first line)
        if fmt == "jsonl" or (fmt == "movielens" and _base_suffix(path) in (".dat", ".data")):
            first_line = 1
        else:
            first_line = 2
        # where pyarrow's rows and the file's lines can differ (blank lines, values spanning lines)
        lines = functools.partial(record_lines, path, fmt, encoding) if fmt == "jsonl" else None
        return cls.from_frame(df, columns, cleaning, name=name, source=str(path), first_line=first_line, lines=lines)

    def with_item_table(
        self,
        table: pd.DataFrame,
        id_column: str,
        columns: ItemColumns | None = None,
        *,
        cold_items: bool | None = None,
        source: str = "<DataFrame>",
        label: Callable[[int], int] | None = None,
    ) -> Dataset:
        """Attach item side data (titles, features): rows are aligned to item indices.

        ``columns`` declares the table's feature columns (kept with the dataset,
        see :class:`~zenrec.data.items.ItemColumns`).  With ``cold_items``
        (default: when ``columns`` declares features), items of the table that
        have no event join the item vocabulary after the others, with no
        interactions (**cold items**, which a content model can recommend);
        otherwise they are left out.  The table is checked first
        (:func:`~zenrec.data.items.check_item_table`; ``source`` and ``label``
        name the file and its rows in errors).
        """
        columns = columns if columns else None
        cold_items = columns is not None if cold_items is None else cold_items
        ids, table = check_item_table(table, id_column, columns, integer_ids=self.items.is_integer and cold_items,
                                      source=source, label=label)
        idx = self.items.index(ids, missing="mask")
        keep = idx >= 0
        if (columns or cold_items) and not keep.any():
            raise DataError(f"none of the {len(ids):,} item ids of the item table is an item of the log (e.g. "
                            f"{ids[0].item()!r}; the log has {self.items.ids([0])[0].item()!r}): check --item-key",
                            source=source, column=id_column)
        if cold_items and not keep.all():
            n_old = len(self.items)
            self.items = Vocabulary(np.concatenate([self.items.to_array(), ids[~keep]]), "item")
            self.interactions = self.interactions.with_n_items(len(self.items))
            idx[~keep] = np.arange(n_old, len(self.items))
            keep[:] = True
        numeric = set(columns.numeric) if columns else set()
        aligned = pd.DataFrame(index=pd.RangeIndex(len(self.items)))
        for col in table.columns:
            if col == id_column:
                continue
            values = pd.Series([None] * len(self.items), dtype=object)
            values.iloc[idx[keep]] = table[col].to_numpy(dtype=object)[keep]
            if col in numeric:
                aligned[col] = values.astype(np.float64)
            else:
                aligned[col] = values.astype("string") if table[col].dtype.kind not in "iuf" else values
        self.item_table = aligned
        self.item_columns = columns
        return self

    def with_item_file(
        self,
        path: str | Path,
        id_column: str,
        columns: ItemColumns | None = None,
        *,
        cold_items: bool | None = None,
        format: Format | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
    ) -> Dataset:
        """Read an item table (CSV/TSV/Parquet/JSON Lines) and attach it with :meth:`with_item_table`;
        errors name the file and the line (the row, in Parquet)."""
        path = Path(path)
        fmt = format or guess_format(path)
        table = read_table(path, fmt, encoding=encoding, delimiter=delimiter)
        label = None
        if fmt != "parquet":
            first = 1 if fmt == "jsonl" else 2
            found: list[np.ndarray | None] = []

            def label(i: int) -> int:
                if not found:
                    lines = record_lines(path, fmt, encoding) if fmt in ("csv", "tsv", "jsonl") else None
                    found.append(lines if lines is not None and len(lines) == len(table) else None)
                return int(found[0][i]) if found[0] is not None else i + first

        return self.with_item_table(table, id_column, columns, cold_items=cold_items, source=str(path), label=label)

    def save(self, path: str | Path) -> None:
        """Write to a directory (Parquet + JSON manifest), atomically."""
        inter = self.interactions
        with atomic_dir(path) as tmp:
            events = pa.table(
                {
                    "user": inter.user,
                    "item": inter.item,
                    "timestamp": inter.timestamp,
                    "weight": inter.weight,
                    "event": inter.event,
                }
            )  # zero-copy views of the arrays, no DataFrame in between
            # dictionary pages only where values repeat (weights, types): a third faster on 50M-row columns
            pq.write_table(events, tmp / "interactions.parquet", use_dictionary=["weight", "event"])
            pq.write_table(pa.table({"id": self.users.to_array()}), tmp / "users.parquet")
            pq.write_table(pa.table({"id": self.items.to_array()}), tmp / "items.parquet")
            if self.item_table is not None:
                pq.write_table(pa.Table.from_pandas(self.item_table, preserve_index=False), tmp / "item_table.parquet")
            write_json(
                tmp / "manifest.json",
                {
                    "kind": "dataset",
                    "format_version": DATASET_FORMAT,
                    "zenrec_version": __version__,
                    "name": self.name,
                    "n_events": len(inter),
                    "n_users": inter.n_users,
                    "n_items": inter.n_items,
                    "event_names": list(inter.event_names),
                    "fingerprint": self.fingerprint,
                    "cleaning": self.report.to_dict(),
                    "events": {"aliases": self.event_aliases, "weights": self.event_weights},
                    **({"item_features": self.item_columns.to_dict()}
                       if self.item_columns and self.item_table is not None else {}),
                },
            )

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        """Load a directory written by :meth:`save`."""
        path = Path(path)
        m = read_manifest(path, "dataset", DATASET_FORMAT)
        try:
            cols = _read_columns(path / "interactions.parquet", ("user", "item", "timestamp", "weight", "event"))
            users = Vocabulary(pq.read_table(path / "users.parquet").column("id").to_numpy(), "user")
            items = Vocabulary(pq.read_table(path / "items.parquet").column("id").to_numpy(), "item")
            table = None
            if (path / "item_table.parquet").exists():
                table = pq.read_table(path / "item_table.parquet").to_pandas()
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise ArtifactError(f"{path}: corrupted dataset ({exc})") from None
        inter = Interactions(
            cols["user"], cols["item"], m["n_users"], m["n_items"], cols["timestamp"], cols["weight"], cols["event"],
            tuple(m.get("event_names", ())),
        )
        # datasets written before aliases: the defaults they were cleaned with
        events = EventTypes.from_dict(m.get("events"), f"{path}/manifest.json")
        aliases, weights = dict(events.aliases), dict(events.weights)
        item_columns = _item_columns(path, m, table, len(items))
        return cls(inter, users, items, table, CleaningReport.from_dict(m["cleaning"]), m.get("name", path.name),
                   aliases, weights, item_columns=item_columns)


def _read_columns(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Columns of a Parquet file as numpy arrays, one column at a time (no DataFrame, no second copy
    of the whole table: the peak is the arrays plus one column's Arrow buffers)."""
    out: dict[str, np.ndarray] = {}
    with pq.ParquetFile(path) as pf:
        for name in names:
            a = pf.read(columns=[name]).column(0).to_numpy()
            out[name] = a if a.flags.writeable else a.copy()  # a view of Arrow's buffer is read-only
    return out


def _item_columns(path: Path, manifest: dict, table: pd.DataFrame | None, n_items: int) -> ItemColumns | None:
    """The declared item feature columns of a saved dataset (None for datasets written before them)."""
    if table is not None and len(table) != n_items:
        raise ArtifactError(f"{path}: the item table has {len(table)} rows for {n_items} items")
    if manifest.get("item_features") is None:
        return None
    try:
        columns = ItemColumns.from_dict(manifest["item_features"])
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}/manifest.json: corrupted 'item_features' ({exc})") from None
    absent = [c for c in columns.names if table is None or c not in table.columns]
    if absent:
        raise ArtifactError(f"{path}: the item table lacks the declared feature column {absent[0]!r}")
    return columns or None
