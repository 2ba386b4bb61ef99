"""A synthetic behaviour log of any size, made and written a chunk at a time (scale tests, benchmarks).

Users come in *sessions*: bursts of events seconds to minutes apart.  Who
starts a session and which items get viewed both follow power laws
(Zipf-like; ranks shuffled so that popularity is not tied to the id).  A
session opens with a view; each later event is another view, or a click, a
cart or a purchase of the item viewed last.  Rows are in time order and the
log is dirty the way real ones are: exact duplicate rows (an event logged
twice, next to each other) and a few rows without a user, without an item,
without a time, or with an event type nobody declared (``hover``).

Columns: ``user_id``, ``item_id``, ``timestamp`` (epoch seconds), ``event``.
:func:`event_log_chunks` makes the rows ``chunk_rows`` at a time and
:func:`write_event_log` writes them to CSV or Parquet as they come, so memory
stays bounded whatever the number of rows: 50M rows take about a minute.
Everything is vectorised numpy; nothing loops per event.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from zenrec._io import atomic_file
from zenrec.errors import ConfigError

__all__ = ["EVENT_TYPES", "UNKNOWN_EVENT", "LOG_SCHEMA", "event_log_chunks", "write_event_log"]

#: The event types of the log, in funnel order.
EVENT_TYPES: tuple[str, ...] = ("view", "click", "cart", "purchase")
#: The type of each event after a session's first (which is a view): overall about 70 % views.
_EVENT_P = np.array([0.62, 0.24, 0.09, 0.05])
#: The undeclared event type of the dirty rows.
UNKNOWN_EVENT = "hover"
#: Columns and types of every chunk (a missing value is a null: an empty field in CSV).
LOG_SCHEMA = pa.schema([("user_id", pa.int64()), ("item_id", pa.int64()), ("timestamp", pa.int64()),
                        ("event", pa.string())])
_EVENT_NAMES = np.array([*EVENT_TYPES, UNKNOWN_EVENT])


class _Zipf:
    """Draws of ids 1..n with p(rank k) ∝ (k + offset)^-exponent, ranks shuffled once."""

    def __init__(self, rng: np.random.Generator, n: int, exponent: float, offset: float) -> None:
        p = (np.arange(n) + offset) ** -exponent
        self.cdf = np.cumsum(p) / p.sum()
        self.ids = rng.permutation(n).astype(np.int64) + 1

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        rank = np.searchsorted(self.cdf, rng.random(size), side="right").clip(max=len(self.ids) - 1)
        return self.ids[rank]


def _check(name: str, value: float, lo: float, hi: float | None = None) -> None:
    if not (value >= lo and (hi is None or value <= hi)):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"the {name!r} parameter of the synthetic event log must be {bound}; got {value!r}")


def event_log_chunks(
    rows: int,
    n_users: int | None = None,
    n_items: int | None = None,
    chunk_rows: int = 1 << 21,
    session_length: float = 8.0,
    gap_seconds: float = 40.0,
    duplicate_frac: float = 0.005,
    malformed_frac: float = 0.0001,
    start: int = 1_700_000_000,
    days: int = 365,
    seed: int = 0,
    item_exponent: float = 1.0,
) -> Iterator[pa.Table]:
    """The log's rows (``rows`` in all, duplicates and dirty rows included) as tables of ``chunk_rows``.

    ``n_users`` and ``n_items`` default to ``rows / 40`` and ``rows / 100``;
    ``session_length`` is the mean number of events of a session and
    ``gap_seconds`` the mean time between them; the log spans ``days`` days
    from ``start``.  Each chunk covers its own stretch of that time, so the
    chunks follow each other in time.  The same arguments give the same log.
    Item popularity falls as ``(rank + 10) ** -item_exponent``: with the
    default 1, 5M rows touch about 530k items of a 1M-item catalogue; with a
    flatter 0.5, about 920k.
    """
    _check("rows", rows, 1)
    _check("chunk_rows", chunk_rows, 1)
    _check("session_length", session_length, 1)
    _check("gap_seconds", gap_seconds, 0)
    _check("duplicate_frac", duplicate_frac, 0, 0.5)
    _check("malformed_frac", malformed_frac, 0, 0.5)
    _check("days", days, 1)
    _check("item_exponent", item_exponent, 0, 4)
    n_users = n_users or max(rows // 40, 10)
    n_items = n_items or max(rows // 100, 10)
    _check("n_users", n_users, 1)
    _check("n_items", n_items, 1)
    rng = np.random.default_rng(seed)
    users = _Zipf(rng, n_users, 0.8, 20.0)
    items = _Zipf(rng, n_items, item_exponent, 10.0)
    span = days * 86_400
    bounds = list(range(0, rows, chunk_rows)) + [rows]
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        crng = np.random.default_rng([seed, c])
        t0, t1 = start + span * lo // rows, start + span * hi // rows
        yield _chunk(crng, hi - lo, users, items, t0, max(t1, t0 + 1), session_length, gap_seconds, duplicate_frac,
                     malformed_frac, at_least_one_of_each=c == 0 and rows >= 100)


def _chunk(rng: np.random.Generator, rows: int, users: _Zipf, items: _Zipf, t0: int, t1: int, session_length: float,
           gap_seconds: float, duplicate_frac: float, malformed_frac: float, at_least_one_of_each: bool) -> pa.Table:
    n_dup = int(rows * duplicate_frac)
    n = rows - n_dup
    # sessions: geometric lengths (mean session_length) until they cover n events
    lengths = rng.geometric(1.0 / session_length, size=int(n / session_length * 1.2) + 16)
    while lengths.sum() < n:
        lengths = np.concatenate([lengths, rng.geometric(1.0 / session_length, size=len(lengths))])
    cut = int(np.searchsorted(np.cumsum(lengths), n))
    lengths = lengths[: cut + 1]
    lengths[-1] -= int(lengths.sum()) - n
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    session = np.repeat(np.arange(len(lengths)), lengths)
    opens = np.zeros(n, dtype=bool)
    opens[first] = True
    # times: a start anywhere in the chunk's stretch, then exponential gaps
    gaps = rng.exponential(gap_seconds, n).astype(np.int64) if gap_seconds else np.zeros(n, dtype=np.int64)
    gaps[opens] = 0
    elapsed = np.cumsum(gaps)
    ts = rng.integers(t0, t1, len(lengths))[session] + elapsed - elapsed[first][session]
    np.minimum(ts, t1 - 1, out=ts)
    # types: a session opens with a view; a later event acts on the item viewed last
    kind = rng.choice(len(EVENT_TYPES), size=n, p=_EVENT_P).astype(np.int8)
    kind[opens] = 0
    viewed = items.draw(rng, n)
    last_view = np.maximum.accumulate(np.where(kind == 0, np.arange(n), 0))
    item = viewed[last_view]
    user = users.draw(rng, len(lengths))[session]
    order = np.argsort(ts, kind="stable")  # sessions interleave
    # an event logged twice: the copy right after the original
    rows_at = _with_copies(order, n_dup, rng)
    user, item, ts, kind = user[rows_at], item[rows_at], ts[rows_at], kind[rows_at]
    # dirty rows: no user, no item, no time, an undeclared event type
    n_bad = int(round(rows * malformed_frac))
    if at_least_one_of_each:
        n_bad = max(n_bad, 4)
    bad = rng.choice(rows, size=min(n_bad, rows), replace=False)
    what = np.arange(len(bad)) % 4
    missing = [np.zeros(rows, dtype=bool) for _ in range(3)]
    for k in range(3):
        missing[k][bad[what == k]] = True
    kind[bad[what == 3]] = len(EVENT_TYPES)
    return pa.table(
        [pa.array(user, mask=missing[0]), pa.array(item, mask=missing[1]), pa.array(ts, mask=missing[2]),
         pa.array(_EVENT_NAMES[kind], pa.string())],
        schema=LOG_SCHEMA,
    )


def _with_copies(order: np.ndarray, n_dup: int, rng: np.random.Generator) -> np.ndarray:
    """Row positions in time order, with ``n_dup`` random rows repeated right after themselves."""
    n = len(order)
    copies = np.sort(rng.integers(0, n, n_dup))
    return order[np.sort(np.concatenate([np.arange(n), copies]), kind="stable")]


def write_event_log(path: str | Path, rows: int, format: str | None = None, **options: object) -> int:
    """Write :func:`event_log_chunks`' log to ``path`` (CSV, or Parquet for a ``.parquet`` name or
    ``format="parquet"``) a chunk at a time, atomically; returns the rows written.

    ``options`` go to :func:`event_log_chunks` (``n_users``, ``chunk_rows``, ``seed``...)."""
    path = Path(path)
    fmt = format or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"the synthetic event log is written as csv or parquet; got {fmt!r}")
    written = 0
    with atomic_file(path) as tmp:
        writer: pacsv.CSVWriter | pq.ParquetWriter
        if fmt == "csv":
            writer = pacsv.CSVWriter(tmp, LOG_SCHEMA, write_options=pacsv.WriteOptions(quoting_style="none"))
        else:
            writer = pq.ParquetWriter(tmp, LOG_SCHEMA)
        with writer:
            for table in event_log_chunks(rows, **options):  # type: ignore[arg-type]
                writer.write_table(table)
                written += table.num_rows
    return written
