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
from zenrec.data.clean import CleaningReport, clean_events
from zenrec.data.interactions import Interactions
from zenrec.data.readers import Format, _base_suffix, _guess_format, read_table, record_lines
from zenrec.data.schema import DEFAULT_EVENT_WEIGHTS, CleaningConfig, ColumnMap
from zenrec.data.vocab import Vocabulary
from zenrec.errors import ArtifactError

__all__ = ["Dataset", "DATASET_FORMAT"]

DATASET_FORMAT = 1


@dataclass
class Dataset:
    """Everything ingest produces; models see only :attr:`interactions`.

    ``items`` is an optional side table indexed by item index (e.g. titles).
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

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, events={len(self.interactions)}, users={len(self.users)}, items={len(self.items)})"

    @property
    def fingerprint(self) -> str:
        """A short hash of the coded events, stored in model manifests."""
        h = hashlib.sha256()
        for a in (self.interactions.user, self.interactions.item, self.interactions.timestamp):
            h.update(np.ascontiguousarray(a).tobytes())
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
    ) -> Dataset:
        """Read and clean a log file (CSV/TSV/Parquet/JSON Lines/RecBole/MovieLens); ``encoding``
        names a text file's encoding when it is not UTF-8 (``latin-1``, ``cp1252``, ``utf-16``...)."""
        path = Path(path)
        fmt = format or _guess_format(path)
        wanted = (columns or ColumnMap()).required() if fmt in ("csv", "tsv", "parquet") else None
        df = read_table(path, fmt, columns=wanted, encoding=encoding)
        # rows are named by their line in text files (1 = first line), by position in Parquet
        if fmt == "parquet":
            first_line = None
        elif fmt == "jsonl" or (fmt == "movielens" and _base_suffix(path) in (".dat", ".data")):
            first_line = 1
        else:
            first_line = 2
        # where pyarrow's rows and the file's lines can differ (blank lines, values spanning lines)
        lines = functools.partial(record_lines, path, fmt, encoding) if fmt in ("csv", "tsv", "jsonl") else None
        return cls.from_frame(
            df, columns, cleaning, name=name or path.name.split(".")[0], source=str(path), first_line=first_line,
            lines=lines,
        )

    def with_item_table(self, table: pd.DataFrame, id_column: str) -> Dataset:
        """Attach item side data (e.g. titles): rows are aligned to item indices."""
        idx = self.items.index(table[id_column].to_numpy(), missing="mask")
        aligned = pd.DataFrame(index=pd.RangeIndex(len(self.items)))
        keep = idx >= 0
        for col in table.columns:
            if col == id_column:
                continue
            values = pd.Series([None] * len(self.items), dtype=object)
            values.iloc[idx[keep]] = table[col].to_numpy(dtype=object)[keep]
            aligned[col] = values.astype("string") if table[col].dtype.kind not in "iuf" else values
        self.item_table = aligned
        return self

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
            pq.write_table(events, tmp / "interactions.parquet")
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
                },
            )

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        """Load a directory written by :meth:`save`."""
        path = Path(path)
        m = read_manifest(path, "dataset", DATASET_FORMAT)
        try:
            df = pq.read_table(path / "interactions.parquet").to_pandas()
            users = Vocabulary(pq.read_table(path / "users.parquet").column("id").to_numpy(), "user")
            items = Vocabulary(pq.read_table(path / "items.parquet").column("id").to_numpy(), "item")
            table = None
            if (path / "item_table.parquet").exists():
                table = pq.read_table(path / "item_table.parquet").to_pandas()
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise ArtifactError(f"{path}: corrupted dataset ({exc})") from None
        inter = Interactions(
            df["user"].to_numpy(), df["item"].to_numpy(), m["n_users"], m["n_items"],
            df["timestamp"].to_numpy(), df["weight"].to_numpy(), df["event"].to_numpy(),
            tuple(m.get("event_names", ())),
        )
        events = m.get("events") or {}  # datasets written before aliases: the defaults they were cleaned with
        try:
            aliases = {str(k): str(v) for k, v in dict(events.get("aliases", {})).items()}
            weights = {str(k): float(v) for k, v in dict(events.get("weights", DEFAULT_EVENT_WEIGHTS)).items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"{path}/manifest.json: corrupted 'events' ({exc})") from None
        return cls(inter, users, items, table, CleaningReport.from_dict(m["cleaning"]), m.get("name", path.name),
                   aliases, weights)
