"""Out-of-core ingest: a CSV/TSV/Parquet log read a chunk at a time and cleaned chunk by chunk.

:func:`clean_file` streams the file through pyarrow's CSV reader (or a Parquet
file's record batches), hands each chunk of raw columns to an
:class:`~zenrec.data.clean.EventCleaner`, and lets the text of a chunk go once
the chunk is coded.  What stays is about 21 bytes per kept row (user and item
codes, time, weight, event type) plus the distinct ids; the sort, duplicate
and k-core steps then run on those compact arrays.  Peak memory therefore
grows with the number of events at that rate, not with the size of the file's
text, and no step builds a Python object per row.

Why chunked Arrow rather than DuckDB or polars (measured on a 10M-event log:
``docs/scaling.md``, ``benchmarks/bench_ingest_engines.py``): reading is under
half of an ingest's CPU time.  polars reads CSV in about half the CPU time of
pyarrow's streaming reader (a fifth of the ingest saved), DuckDB in about the
same; the cleaning written as DuckDB SQL took five times as long and four
times the memory.  pyarrow's reader is the one zenrec's whole-file path
already used, so every hostile-file behaviour (any ``--encoding``, binary
files, ragged lines named by their line, files cut short) holds unchanged
(polars reads UTF-8 only); the cleaning code (the 1 % unknown-event rule,
``--strict``, aliases, duplicates) is one implementation for a DataFrame and
a 50M-row file alike; and no dependency is added.  Like DuckDB's and polars'
readers, a streaming reader fixes a column's type from a sample: a later
text value in a numeric column makes the read start over with the wider type
(:class:`~zenrec.data.readers.ReadAgain`).

JSON Lines, MovieLens and RecBole files are read whole (they are the small
formats); :meth:`zenrec.data.Dataset.from_file` picks the path by format.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from zenrec.data.clean import CleanedEvents, EventCleaner, Labels
from zenrec.data.readers import (
    BATCH_ROWS,
    STREAMED_FORMATS,
    Format,
    ReadAgain,
    guess_format,
    read_batches,
    record_lines,
)
from zenrec.data.schema import CleaningConfig, ColumnMap
from zenrec.errors import ConfigError, EmptyDataError

__all__ = ["clean_file", "CHUNK_ROWS", "STREAMED_FORMATS"]

log = logging.getLogger(__name__)

#: rows cleaned at a time by default (each chunk's raw columns are freed once it is coded)
CHUNK_ROWS = BATCH_ROWS


def _line_labels(path: Path, fmt: Format, encoding: str | None) -> Labels:
    """Rows named by the line they start on (one scan of the file, up to the last row named)."""

    def labels(rows: np.ndarray) -> list[int]:
        lines = record_lines(path, fmt, encoding, rows=rows)
        return [int(x) for x in (lines if lines is not None else np.asarray(rows, dtype=np.int64) + 2)]

    return labels


def _read_ahead(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The tables of ``tables``, the next one read in a thread while the caller works on this one
    (pyarrow parses without holding the GIL: on two cores reading and cleaning overlap).

    At most two tables wait besides the caller's; an error of the reader is raised here, in order."""
    box: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for table in tables:
                if not put(("table", table)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the caller, who raises it
            put(("error", exc))
        finally:
            tables.close()  # type: ignore[attr-defined]

    reader = threading.Thread(target=run, name="zenrec-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


def clean_file(
    path: str | Path,
    columns: ColumnMap | None = None,
    config: CleaningConfig | None = None,
    format: Format | None = None,
    encoding: str | None = None,
    chunk_rows: int | None = None,
    delimiter: str | None = None,
) -> CleanedEvents:
    """Read and clean a CSV/TSV/Parquet log ``chunk_rows`` rows at a time (default :data:`CHUNK_ROWS`);
    ``delimiter``: a CSV file's field delimiter when it is not a comma.

    The result, the report and every error are those of reading the whole file
    and calling :func:`~zenrec.data.clean.clean_events` on it: rows are named by
    their file line in CSV/TSV (by their 0-based position in Parquet).  A CSV
    column whose values change kind after pyarrow's first block (integer ids,
    then text ones) is read again from the start as the wider type, a file
    with a row longer than a block with larger blocks (:class:`~zenrec.data.readers.ReadAgain`).
    """
    path = Path(path)
    fmt = format or guess_format(path)
    if fmt not in STREAMED_FORMATS:
        raise ConfigError(f"clean_file reads {', '.join(STREAMED_FORMATS)}; got {fmt!r} (use Dataset.from_file)")
    columns = columns or ColumnMap()
    labels = None if fmt == "parquet" else _line_labels(path, fmt, encoding)
    types: dict[str, pa.DataType] = {}
    block: int | None = None
    while True:
        cleaner = EventCleaner(columns, config, str(path), "row" if fmt == "parquet" else "line", labels)
        try:
            for table in _read_ahead(read_batches(path, fmt, columns.required(), encoding, chunk_rows or CHUNK_ROWS,
                                                  types, block, delimiter)):
                cleaner.add(table)
                del table
        except ReadAgain as again:
            log.info("%s: %s; reading the file again", path, again)
            if again.column is not None and again.type is not None:
                types[again.column] = again.type
            block = again.block_size or block
            continue
        if cleaner.rows_in == 0:
            raise EmptyDataError("the file has a header but no rows; expected at least one data row", source=str(path))
        return cleaner.finish()
