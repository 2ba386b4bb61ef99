"""Cleaning: turn a raw log into validated integer-coded events, counting every drop.

All steps are vectorised over columns; nothing builds a Python object per row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from zenrec.data.ids import ID_RULE, normalize_ids
from zenrec.data.schema import TIMESTAMP_MAX, TIMESTAMP_MIN, CleaningConfig, ColumnMap
from zenrec.data.sparse import counting_order
from zenrec.data.vocab import Vocabulary
from zenrec.errors import DataError, EmptyDataError

__all__ = ["CleaningReport", "CleanedEvents", "EventCleaner", "clean_events"]

log = logging.getLogger(__name__)

REASONS = (
    "missing_user_id",
    "missing_item_id",
    "malformed_user_id",
    "malformed_item_id",
    "missing_timestamp",
    "malformed_timestamp",
    "malformed_value",
    "out_of_range_value",
    "unknown_event",
    "below_rating_threshold",
    "duplicate",
    "k_core",
)


@dataclass
class CleaningReport:
    """Rows read, rows kept and rows dropped per reason (with the first few row labels), and notes
    on what to do about them (e.g. name the file's encoding)."""

    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, reason: str, count: int, examples: list[str]) -> None:
        """Count ``count`` rows dropped for ``reason``; keep the first few labels."""
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
            self.examples.setdefault(reason, examples[:3])

    def to_dict(self) -> dict:
        """A JSON-ready form."""
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dropped": dict(self.dropped),
            "examples": dict(self.examples),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> CleaningReport:
        return cls(d["rows_in"], d["rows_out"], dict(d["dropped"]), dict(d.get("examples", {})),
                   list(d.get("notes", [])))


@dataclass
class CleanedEvents:
    """The output of :func:`clean_events`: coded arrays plus vocabularies."""

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    weight: np.ndarray
    event: np.ndarray
    event_names: tuple[str, ...]
    users: Vocabulary
    items: Vocabulary
    report: CleaningReport


_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _to_arrow(s: pd.Series) -> pa.ChunkedArray:
    """The column as an Arrow chunked array, zero-copy where pandas already holds Arrow data."""
    arr = s.array
    pa_arr = getattr(arr, "_pa_array", None)  # pandas' ArrowExtensionArray
    if isinstance(pa_arr, pa.ChunkedArray):
        return pa_arr
    try:
        out = pa.array(arr, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):  # invalid, type or unsupported conversion
        # mixed Python objects (ints and strings...): compare them as text
        out = pa.array(s.astype("string").array, from_pandas=True)
    return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])


def _null_mask(a: pa.ChunkedArray, nan_is_null: bool = False) -> np.ndarray:
    if a.null_count == 0 and not (nan_is_null and pa.types.is_floating(a.type)):
        return np.zeros(len(a), dtype=bool)
    return pc.is_null(a, nan_is_null=nan_is_null).to_numpy(zero_copy_only=False)


def _to_numpy(a: pa.ChunkedArray, dtype: type, fill: object) -> np.ndarray:
    """Values as a numpy array (nulls replaced by ``fill``), one copy at most."""
    if a.null_count:
        a = pc.fill_null(a, pa.scalar(fill, a.type))
    return np.asarray(a.to_numpy(), dtype=dtype)


def _decode_dictionary(a: pa.ChunkedArray) -> pa.ChunkedArray:
    return a.cast(a.type.value_type) if pa.types.is_dictionary(a.type) else a


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))
    )


def _parse_numbers(text: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """float64 values of number-like strings (NaN elsewhere) and a mask of strings that are numbers."""
    try:  # the common case: every present value is a number
        vals = pc.cast(text, pa.float64())
        return _to_numpy(vals, np.float64, np.nan), ~_null_mask(text)
    except pa.ArrowException:  # not parsable, or a cast Arrow does not support
        pass
    ok = pc.fill_null(pc.match_substring_regex(text, _NUMBER_RE), False)
    vals = pc.cast(pc.if_else(ok, text, pa.scalar(None, text.type)), pa.float64())
    return _to_numpy(vals, np.float64, np.nan), ok.to_numpy(zero_copy_only=False)


def _unknown_events(codes: np.ndarray, uniq: np.ndarray, types: list[str | None]) -> dict[str, int]:
    """Row counts of the event names that map to no type, in first-seen order (missing values not counted)."""
    counts = np.bincount(codes[codes >= 0], minlength=len(uniq))
    return {str(name): int(counts[i]) for i, (name, t) in enumerate(zip(uniq.tolist(), types, strict=True))
            if t is None and counts[i]}


def _text_codes(a: pa.ChunkedArray, lower: bool = False, ids: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dictionary codes of a text column (stripped, empty -> missing = -1), the distinct values, and
    (with ``ids``) a mask of the rows whose id breaks :mod:`zenrec.data.ids`' rule (coded -1 as well).

    The normalisation runs on the dictionary, not on every row."""
    if not pa.types.is_dictionary(a.type):
        a = pc.dictionary_encode(a)
    if a.num_chunks != 1:
        a = a.unify_dictionaries()
    dictionary = a.chunk(0).dictionary if a.num_chunks else pa.array([], pa.string())
    indices = _to_numpy(pa.chunked_array([c.indices for c in a.chunks], a.type.index_type), np.int64, -1)
    if ids:
        d, dbad = normalize_ids(dictionary.cast(pa.string()))
    else:
        d, dbad = pc.utf8_trim_whitespace(dictionary.cast(pa.string())), np.zeros(len(dictionary), dtype=bool)
    if lower:
        d = pc.utf8_lower(d)
    dvals = d.to_numpy(zero_copy_only=False).astype(object)
    dvals[(dvals == "") | dbad] = None
    dcodes, uniques = pd.factorize(dvals, use_na_sentinel=True)
    lut = np.append(dcodes, -1).astype(np.int32)  # index -1 (null) -> -1
    bad = np.append(dbad, False)[indices] if dbad.any() else np.zeros(len(indices), dtype=bool)
    return lut[indices], np.asarray(uniques, dtype=str), bad


def _numeric(a: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN when missing or not a number) and a mask of rows present but not numbers."""
    t = a.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _to_numpy(a.cast(pa.float64()), np.float64, np.nan), np.zeros(len(a), dtype=bool)
    present = ~_null_mask(a)
    if _is_text(t):
        text = pc.utf8_trim_whitespace(_decode_dictionary(a).cast(pa.string()))
        vals, ok = _parse_numbers(text)
        return vals, present & ~ok
    return np.full(len(a), np.nan), present


_UNIT_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _in_range(secs: np.ndarray, missing: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 seconds, the missing mask, and the malformed mask grown by every time outside
    [TIMESTAMP_MIN, TIMESTAMP_MAX]: never cast a float out of int64's range (it would wrap to INT64_MIN)."""
    if secs.dtype.kind == "f":
        secs = np.floor(secs)
        out = ~(missing | bad) & ~((secs >= TIMESTAMP_MIN) & (secs <= TIMESTAMP_MAX))  # NaN/inf are out
        bad = bad | out
        return np.where(missing | bad, 0, secs).astype(np.int64), missing, bad
    out = ~(missing | bad) & ((secs < TIMESTAMP_MIN) | (secs > TIMESTAMP_MAX))
    return (np.where(out, 0, secs) if out.any() else secs), missing, bad | out


def _timestamps(a: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 epoch seconds, a missing mask and a malformed mask.

    Integer columns take a zero-parse fast path; text is read as numbers
    first and as dates (ISO 8601, then any format pandas recognises) only
    on the rows that are not numbers.  A time outside 1970..9999 (what the
    event store keeps) is malformed, whatever its type."""
    n = len(a)
    t = a.type
    no = np.zeros(n, dtype=bool)
    if pa.types.is_dictionary(t):
        a, t = _decode_dictionary(a), t.value_type
    if pa.types.is_integer(t):
        if pa.types.is_unsigned_integer(t) and t.bit_width == 64:  # above 2**63 would wrap negative
            return _in_range(_to_numpy(a, np.float64, 0.0), _null_mask(a), no)
        return _in_range(_to_numpy(a, np.int64, 0), _null_mask(a), no)
    if pa.types.is_timestamp(t):
        per = _UNIT_PER_SECOND[t.unit]
        return _in_range(_to_numpy(a.cast(pa.int64()), np.int64, 0) // per, _null_mask(a), no)
    if pa.types.is_date32(t):
        return _in_range(_to_numpy(a.cast(pa.int32()), np.int64, 0) * 86400, _null_mask(a), no)
    if pa.types.is_date64(t):
        return _in_range(_to_numpy(a.cast(pa.int64()), np.int64, 0) // 1000, _null_mask(a), no)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        vals = _to_numpy(a.cast(pa.float64()), np.float64, np.nan)
        missing = np.isnan(vals)
        return _in_range(vals, missing, ~missing & ~np.isfinite(vals))
    if not _is_text(t):
        return np.zeros(n, dtype=np.int64), _null_mask(a), ~_null_mask(a)
    text = pc.utf8_trim_whitespace(a.cast(pa.string()))
    missing = _null_mask(text) | pc.fill_null(pc.equal(text, ""), False).to_numpy(zero_copy_only=False)
    try:  # all integers written as text
        ints = pc.cast(pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text), pa.int64())
        return _in_range(_to_numpy(ints, np.int64, 0), missing, no)
    except pa.ArrowException:  # not parsable, or a cast Arrow does not support
        pass
    vals, is_num = _parse_numbers(text)
    secs = np.where(is_num, vals, np.nan)
    # pandas reads "now"/"today" as the current time: a silent wrong answer for a log
    relative = pc.fill_null(pc.match_substring_regex(text, r"(?i)^(now|today|tomorrow|yesterday)$"), False)
    rest = np.flatnonzero(~is_num & ~missing & ~relative.to_numpy(zero_copy_only=False))
    if len(rest):
        secs[rest] = _date_seconds(pd.Series(text.take(pa.array(rest)).to_numpy(zero_copy_only=False), dtype=object))
    return _in_range(secs, missing, ~missing & ~np.isfinite(secs))


def _date_seconds(strs: pd.Series) -> np.ndarray:
    """Epoch seconds (float, NaN when not a date) of date strings: ISO 8601 first, then any format pandas knows."""
    out = np.full(len(strs), np.nan)
    todo = np.arange(len(strs))
    for fmt in ("ISO8601", "mixed"):
        if not len(todo):
            break
        parsed = pd.to_datetime(strs.iloc[todo], errors="coerce", utc=True, format=fmt)
        ok = parsed.notna().to_numpy()
        if ok.any():  # subtract in the parsed values' own unit: a year past 2262 does not fit nanoseconds
            epoch = pd.Timestamp(0, tz="UTC").as_unit(parsed.dt.unit)
            out[todo[ok]] = (parsed[ok] - epoch).dt.total_seconds().to_numpy(dtype=np.float64)
        todo = todo[~ok]
    return out


def _ids(a: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Codes (-1 for missing or malformed), the distinct raw ids, a malformed mask, and a mask of the
    malformed ids that are not UTF-8 (bytes of another encoding).

    Integers stay integers (a float column whose values are all whole numbers
    counts as integers); everything else is text under :mod:`zenrec.data.ids`' rule."""
    t = a.type
    n = len(a)
    bad = np.zeros(n, dtype=bool)
    not_utf8 = bad
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        vals = _to_numpy(a.cast(pa.float64()), np.float64, np.nan)
        missing = np.isnan(vals)
        bad = ~missing & ((vals != np.floor(np.where(np.isfinite(vals), vals, 0.5))) | (np.abs(vals) > 2**62))
        ok = ~(missing | bad)
        a = pa.chunked_array([pa.array(np.where(ok, vals, 0).astype(np.int64), mask=~ok)])
        t = a.type
    if pa.types.is_integer(t):
        if a.null_count == n:
            return np.full(n, -1, dtype=np.int32), np.zeros(0, dtype=np.int64), bad, not_utf8
        if a.null_count:  # first-seen order among the rows that have an id
            present = ~_null_mask(a)
            codes = np.full(n, -1, dtype=np.int32)
            codes[present], uniques = _factorize_ints(_to_numpy(a, np.int64, 0)[present])
        else:
            codes, uniques = _factorize_ints(_to_numpy(a, np.int64, 0))
        codes[bad] = -1
        return codes, uniques, bad, not_utf8
    if not _is_text(t):
        try:
            a = a.cast(pa.string())
        except pa.ArrowInvalid:  # bytes that are not UTF-8: those ids are malformed (reported with their lines)
            a, not_utf8 = _utf8_or_null(a)
            bad = bad | not_utf8
    codes, uniques, broken = _text_codes(a, ids=True)
    bad = bad | broken
    codes[bad] = -1
    return codes, uniques, bad, not_utf8


def _utf8_or_null(a: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """A binary column as text, with the values that are not valid UTF-8 nulled; and which those were."""
    values = a.to_pylist()
    out: list[str | None] = []
    invalid = np.zeros(len(values), dtype=bool)
    for j, v in enumerate(values):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                invalid[j], v = True, None
        out.append(v)
    return pa.chunked_array([pa.array(out, type=pa.string())]), invalid


def _recode(codes: np.ndarray, uniques: np.ndarray, name: str) -> tuple[np.ndarray, Vocabulary]:
    """Drop the ids no kept row uses; codes become 0..k-1 in first-seen order."""
    used = np.bincount(codes, minlength=len(uniques)) > 0
    remap = (np.cumsum(used) - 1).astype(np.int32)
    return remap[codes], Vocabulary(uniques[used], name=name)


def _duplicates_sorted(u: np.ndarray, t: np.ndarray, i: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Rows (already sorted by user then time, ties in input order) that repeat an
    earlier row's (user, time, item, event); only runs of equal (user, time) are compared."""
    n = len(u)
    dup = np.zeros(n, dtype=bool)
    if n < 2:
        return dup
    same = (u[1:] == u[:-1]) & (t[1:] == t[:-1])
    if not same.any():
        return dup
    in_run = np.zeros(n, dtype=bool)
    in_run[1:] |= same
    in_run[:-1] |= same
    rows = np.flatnonzero(in_run)
    run_id = np.cumsum(np.concatenate([[True], ~same]), dtype=np.int32 if n < 2**31 else np.int64)[rows]
    key = pd.DataFrame({"r": run_id, "i": i[rows], "e": e[rows]})
    dup[rows[key.duplicated().to_numpy()]] = True
    return dup


def _factorize_ints(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` for int64 ids (codes in first-seen order), with a
    table-lookup fast path when the ids span a dense range."""
    n = len(vals)
    lo, hi = int(vals.min()), int(vals.max())
    span = hi - lo + 1
    if span > max(4 * n, 1 << 20):
        codes, uniques = pd.factorize(vals)
        return codes.astype(np.int32), np.asarray(uniques, dtype=np.int64)
    off = vals - lo
    first = np.full(span, n, dtype=np.int64)
    np.minimum.at(first, off, np.arange(n, dtype=np.int64))
    present = np.flatnonzero(first < n)
    present = present[np.argsort(first[present], kind="stable")]  # first-seen order
    lut = np.empty(span, dtype=np.int32)
    lut[present] = np.arange(len(present), dtype=np.int32)
    return lut[off], present + lo


def _sort_order(u: np.ndarray, t: np.ndarray, n_users: int) -> np.ndarray | None:
    """Stable order by (user, time); ``None`` when the rows are already in that order."""
    if len(u) < 2:
        return None
    du = np.diff(u)
    t_up = np.diff(t) >= 0
    t_sorted = bool(t_up.all())
    if (du >= 0).all() and (t_sorted or ((du > 0) | t_up).all()):
        return None
    del du, t_up
    if t_sorted:  # a time-ordered log: one counting sort by user
        return counting_order(u, n_users)
    return np.lexsort((t, u))



#: the reasons in the order the checks run, which is the order the report lists them in
_CHECK_ORDER = (
    "missing_user_id",
    "malformed_user_id",
    "missing_item_id",
    "malformed_item_id",
    "missing_timestamp",
    "malformed_timestamp",
    "unknown_event",
    "malformed_value",
    "out_of_range_value",
    "below_rating_threshold",
    "duplicate",
    "k_core",
)
#: drops that are no malformed row: ``strict`` does not fail on them
_LENIENT = ("duplicate", "k_core", "below_rating_threshold")

#: ``labels(rows)``: how errors and the report name rows, given their 0-based positions in the log
Labels = Callable[[np.ndarray], Sequence[object]]
#: ``value(column, j)``: the raw value of row ``j`` of the chunk just added, as an error message shows it
Value = Callable[[str, int], object]


@dataclass
class _StrictFailure:
    row: int
    reason: str
    column: str | None
    expected: str
    value: object


def _table_value(table: pa.Table) -> Value:
    """A row's raw value as pandas shows it (what an error message quotes)."""
    return lambda column, j: table.column(column).slice(j, 1).to_pandas(types_mapper=pd.ArrowDtype).iloc[0]


class EventCleaner:
    """Validates and codes a raw event log chunk by chunk, in bounded memory.

    :meth:`add` runs every row-wise check on one chunk (an Arrow table of raw
    columns), counts the rows it drops by reason, and keeps only compact coded
    arrays of the rows that survive: about 21 bytes a row (user and item code,
    time, weight, event type), never a Python object per row.  Ids are coded
    per chunk against the chunk's distinct values.  :meth:`finish` unifies those
    over the chunks (first-seen order, as one pass over the whole log gives),
    then sorts by (user, time), drops duplicates, applies k-core and builds the
    vocabularies.  One chunk holding the whole log is :func:`clean_events`;
    many chunks give the same arrays, vocabularies and report.

    Errors are raised in this order: no row with a usable timestamp (known at
    the end of the log); with ``config.strict``, the first malformed row in log
    order (raised as soon as it is known to be the answer); more unknown event
    types than ``config.max_unknown_event_share`` (known at the end).

    ``labels`` names rows in errors and in the report (default: their 0-based
    position); ``label_word`` is what a label is (``"line"`` or ``"row"``).
    """

    def __init__(
        self,
        columns: ColumnMap | None = None,
        config: CleaningConfig | None = None,
        source: str = "<DataFrame>",
        label_word: str = "row",
        labels: Labels | None = None,
    ) -> None:
        self.columns = columns or ColumnMap()
        self.config = config or CleaningConfig()
        self.source = source
        self.label_word = label_word
        self.rows_in = 0
        self._labels = labels or (lambda rows: [int(r) for r in rows])
        self._checked = False
        self._types = list(self.config.event_weights)
        self._parts: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "item", "timestamp", "weight", "event")}
        self._uniques: dict[str, list[np.ndarray]] = {"user": [], "item": []}
        self._dropped: list[np.ndarray] = []  # log rows dropped by a row-wise check, in order
        self._dropped_all: np.ndarray | None = None
        self._counts: dict[str, int] = {}
        self._first: dict[str, np.ndarray] = {}  # reason -> its first (up to 3) log rows
        self._not_utf8: dict[str, int] = {}  # role -> first log row whose id is not UTF-8
        self._ts_usable = not self.columns.timestamp
        self._ts_first: tuple[int, object] | None = None
        self._strict: _StrictFailure | None = None
        self._unknown: dict[str, int] = {}  # event names of no type -> rows, first-seen order
        self._present: set[str] = set()  # the types the log's event names count as

    # ------------------------------------------------------------------ chunks
    def check_columns(self, names: Sequence[object]) -> None:
        """Fail, naming the columns there are, when a mapped column is not among ``names``."""
        for role, col in self.columns.model_dump().items():
            if col is not None and col not in names:
                raise DataError(
                    f"missing {role} column {col!r}; the columns are {list(map(str, names))} "
                    f"(map yours with --{role} NAME)",
                    source=self.source,
                    column=col,
                )
        self._checked = True

    def add(self, table: pa.Table, value: Value | None = None) -> None:
        """Check and code one chunk of raw rows (the next rows of the log, in order).

        ``value(column, j)`` gives row ``j``'s raw value for an error message
        (default: read from ``table``)."""
        if not self._checked:
            self.check_columns(table.column_names)
        n = table.num_rows
        if n == 0:
            return
        off = self.rows_in
        self.rows_in += n
        value = value or _table_value(table)
        cols, config = self.columns, self.config
        keep = np.ones(n, dtype=bool)
        strict: list[tuple[int, str, str | None, str]] = []

        def drop(reason: str, mask: np.ndarray, column: str | None, expected: str) -> None:
            nonlocal keep
            mask = mask & keep
            if not mask.any():
                return
            rows = np.flatnonzero(mask)
            if config.strict and reason not in _LENIENT:
                strict.append((int(rows[0]), reason, column, expected))
            self._count(reason, len(rows), rows[:3] + off)
            keep &= ~mask

        codes: dict[str, np.ndarray] = {}
        for role, col in (("user", cols.user), ("item", cols.item)):
            c, uniq, bad, not_utf8 = _ids(table.column(col))
            an = "an" if role == "item" else "a"
            drop(f"missing_{role}_id", (c < 0) & ~bad, col, f"{an} {role} id")
            if role not in self._not_utf8 and (not_utf8 & keep).any():
                self._not_utf8[role] = off + int(np.flatnonzero(not_utf8 & keep)[0])
            drop(f"malformed_{role}_id", not_utf8, col, f"{an} {role} id in UTF-8 text; these bytes are in another "
                 "encoding (name it with --encoding, e.g. --encoding latin-1)")
            drop(f"malformed_{role}_id", bad, col, f"an integer or a text {role} id ({ID_RULE})")
            codes[role] = c
            self._uniques[role].append(uniq)
            del c, uniq, bad, not_utf8

        if cols.timestamp:
            ts, missing, bad = _timestamps(table.column(cols.timestamp))
            if (~(missing | bad)).any():
                self._ts_usable = True
            elif not self._ts_usable and self._ts_first is None:  # the log's first rows: where the message points
                first = int(np.flatnonzero(bad | missing)[0])
                self._ts_first = (off + first, value(cols.timestamp, first))
            span = f"from 1970 to 9999 ({TIMESTAMP_MIN} to {TIMESTAMP_MAX} s)"
            drop("missing_timestamp", missing, cols.timestamp, "a timestamp")
            drop("malformed_timestamp", bad, cols.timestamp, f"epoch seconds or an ISO date {span}")
            del missing, bad
        else:
            ts = np.arange(off, off + n, dtype=np.int64)

        weight: np.ndarray | None = None
        types: np.ndarray | None = None
        if cols.event:
            ev = table.column(cols.event)
            if not _is_text(ev.type):
                ev = ev.cast(pa.string())
            ecodes, uniq, _ = _text_codes(ev, lower=True)
            names = [config.event_type(u) for u in uniq.tolist()]  # the log's names as canonical types
            self._present.update(t for t in names if t is not None)
            lut_w = np.array([config.event_weights[t] if t else 0.0 for t in names] + [0.0], dtype=np.float32)
            lut_t = np.array([self._types.index(t) if t else -1 for t in names] + [-1], dtype=np.int16)
            weight = lut_w[ecodes]
            types = lut_t[ecodes]
            for name, count in _unknown_events(ecodes, uniq, names).items():
                self._unknown[name] = self._unknown.get(name, 0) + count
            del ecodes
            drop("unknown_event", types < 0, cols.event,
                 f"one of {sorted(config.event_weights)} (name yours with --event-alias NAME=TYPE, or set weights "
                 "with --event-weight NAME=W)")

        if cols.value:
            val, bad = _numeric(table.column(cols.value))
            drop("malformed_value", bad, cols.value, "a number")
            lo = -np.inf if config.min_value is None else config.min_value
            hi = np.inf if config.max_value is None else config.max_value
            out = ~np.isnan(val) & ((val < lo) | (val > hi))
            drop("out_of_range_value", out, cols.value, f"a value in [{lo}, {hi}]")
            if config.rating_threshold is not None:
                drop("below_rating_threshold", ~(val >= config.rating_threshold), cols.value, "")
            if config.value_as_weight:
                vw = np.nan_to_num(val, nan=1.0).astype(np.float32)
                weight = vw if weight is None else weight * vw
            del val, bad

        if strict and self._strict is None:  # the chunk's first malformed row is the log's first
            j, reason, column, expected = min(strict)
            self._strict = _StrictFailure(off + j, reason, column, expected, value(column, j) if column else None)
        if self._strict is not None and self._ts_usable:  # no error comes before it any more
            self._raise_strict()

        every = bool(keep.all())
        if not every:
            self._dropped.append(np.flatnonzero(~keep) + off)

        def kept(a: np.ndarray) -> np.ndarray:
            return a if every else a[keep]

        self._parts["user"].append(kept(codes.pop("user")))
        self._parts["item"].append(kept(codes.pop("item")))
        self._parts["timestamp"].append(kept(ts))
        if weight is not None:
            self._parts["weight"].append(kept(weight))
        if types is not None:
            self._parts["event"].append(kept(types).astype(np.int8))

    def _count(self, reason: str, count: int, rows: np.ndarray) -> None:
        self._counts[reason] = self._counts.get(reason, 0) + count
        first = self._first.get(reason)
        self._first[reason] = rows if first is None else np.concatenate([first, rows])[:3]

    # ------------------------------------------------------------------ the whole log
    def _label(self, row: int) -> object:
        return self._labels(np.array([row], dtype=np.int64))[0]

    def _raise_strict(self) -> None:
        f = self._strict
        assert f is not None
        label = self._label(f.row)
        raise DataError(
            f"{f.reason.replace('_', ' ')}: expected {f.expected}; got {f.value!r} ({self.label_word} {label})",
            source=self.source,
            row=int(label) if self.label_word == "line" else None,  # type: ignore[call-overload]
            column=f.column,
        )

    def _log_rows(self, positions: np.ndarray) -> np.ndarray:
        """The log rows of positions among the rows the row-wise checks kept."""
        if not self._dropped:
            return positions
        if self._dropped_all is None:
            d = np.concatenate(self._dropped)
            self._dropped_all = d - np.arange(len(d))  # kept rows before each dropped row
        return positions + np.searchsorted(self._dropped_all, positions, side="right")

    def _unify(self, role: str) -> tuple[list[np.ndarray | None], np.ndarray]:
        """Each chunk's code → log-wide code lookup (None: the same), and the log's distinct ids in
        first-seen order."""
        parts = self._uniques.pop(role)
        if len(parts) == 1:
            return [None], parts[0]
        if all(p.dtype.kind in "iu" for p in parts if len(p)):
            codes, uniques = pd.factorize(np.concatenate([p.astype(np.int64) for p in parts]))
            uniques = np.asarray(uniques, dtype=np.int64)
        else:  # text (a chunk of integers among text ones counts as text, never happens with one reader)
            enc = pc.dictionary_encode(pa.chunked_array(
                [pa.array(p.astype(str), pa.string()) for p in parts], pa.string()).combine_chunks())
            codes = enc.indices.to_numpy(zero_copy_only=False)
            uniques = np.asarray(enc.dictionary.to_numpy(zero_copy_only=False), dtype=str)
        bounds = np.cumsum([0] + [len(p) for p in parts])
        return [codes[a:b].astype(np.int32) for a, b in zip(bounds[:-1], bounds[1:], strict=True)], uniques

    def _column(self, name: str, luts: list[np.ndarray | None] | None = None) -> np.ndarray:
        """One column of the kept rows, over every chunk (chunk codes mapped through ``luts``), written into one
        array as each chunk's piece is let go: the peak is the column plus one piece."""
        parts = self._parts[name]
        self._parts[name] = []
        if len(parts) == 1 and (luts is None or luts[0] is None):
            return parts.pop()
        out = np.empty(sum(len(p) for p in parts), dtype=parts[0].dtype)
        at = 0
        for k in range(len(parts)):
            part, parts[k] = parts[k], None  # type: ignore[call-overload]
            lut = None if luts is None else luts[k]
            if lut is None:
                out[at : at + len(part)] = part
            else:
                np.take(lut, part, out=out[at : at + len(part)])
            at += len(part)
            del part
        return out

    def finish(self) -> CleanedEvents:
        """The cleaned log: errors that need the whole log, then sort, duplicates, k-core and vocabularies.

        The returned arrays are sorted by (user, time), ties kept in log order."""
        cols, config, source = self.columns, self.config, self.source
        n = self.rows_in
        if n == 0:
            raise EmptyDataError("no rows to ingest", source=source)
        if not self._ts_usable:
            assert self._ts_first is not None
            row, value = self._ts_first
            span = f"from 1970 to 9999 ({TIMESTAMP_MIN} to {TIMESTAMP_MAX} s)"
            try:  # a log in milliseconds (or micro-) is the usual reason for times past 9999
                hint = "; these look like milliseconds: divide them by 1000" if float(value) > TIMESTAMP_MAX else ""  # type: ignore[arg-type]
            except (TypeError, ValueError, OverflowError):
                hint = ""
            raise DataError(
                f"no row has a usable timestamp: expected epoch seconds or a date {span}, such as 2024-05-01T12:00:00; "
                f"first value {value!r} ({self.label_word} {self._label(row)}){hint}",
                source=source,
                column=cols.timestamp,
            )
        if self._strict is not None:
            self._raise_strict()
        report = CleaningReport(rows_in=n)
        if self._not_utf8:
            first = self._label(self._not_utf8.get("user", self._not_utf8.get("item", 0)))
            report.notes.append(f"ids that are not UTF-8 text were dropped (the first on {self.label_word} {first}); "
                                "if the file is in another encoding, name it with --encoding (e.g. --encoding latin-1)")
        if self._unknown:
            unknown = dict(sorted(self._unknown.items(), key=lambda kv: -kv[1]))  # ties: first seen first
            listed = ", ".join(f"{name!r} ({count:,} rows)" for name, count in list(unknown.items())[:10])
            listed += f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            n_unknown = sum(unknown.values())
            fix = (f"say what they are with --event-alias {next(iter(unknown))}=TYPE (TYPE one of "
                   f"{', '.join(config.event_weights)}), or weigh them with --event-weight NAME=W")
            if n_unknown > config.max_unknown_event_share * n:
                raise DataError(f"{n_unknown:,} of {n:,} rows ({n_unknown / n:.1%}) have an event type zenrec does "
                                f"not know: {listed}; {fix}, or drop them with --allow-drops",
                                source=source, column=cols.event)
            report.notes.append(f"dropped unknown event types {listed}: {fix}")

        # every row-wise check is done: code the ids log-wide, then sort the survivors by (user, time)
        user_luts, uuniq = self._unify("user")
        item_luts, iuniq = self._unify("item")
        u_s = self._column("user", user_luts)
        t_s = self._column("timestamp")
        order = _sort_order(u_s, t_s, len(uuniq))
        if order is not None:  # one column at a time: a single copy is alive beside the columns
            u_s = u_s[order]
            t_s = t_s[order]
        i_s = self._column("item", item_luts)
        if order is not None:
            i_s = i_s[order]
        known = sorted(self._present, key=self._types.index)
        event_names = tuple(known)
        if cols.event:
            remap = np.array([known.index(t) if t in known else 0 for t in self._types], dtype=np.int8)
            e_s = remap[self._column("event")]
            if order is not None:
                e_s = e_s[order]
        else:
            e_s = np.zeros(len(u_s), dtype=np.int8)
        if self._parts["weight"]:
            w_s = self._column("weight")
            if order is not None:
                w_s = w_s[order]
        else:
            w_s = np.ones(len(u_s), dtype=np.float32)
        alive = np.ones(len(u_s), dtype=bool)

        def drop_sorted(reason: str, mask: np.ndarray) -> None:
            """Count rows of the sorted survivors as dropped for ``reason`` (named by their log rows)."""
            positions = np.flatnonzero(mask) if order is None else order[mask]
            self._count(reason, len(positions), self._log_rows(np.sort(positions)[:3]))

        if config.drop_duplicates and len(u_s) > 1:
            dup = _duplicates_sorted(u_s, t_s, i_s, e_s)
            if dup.any():
                drop_sorted("duplicate", dup)
                alive &= ~dup
            del dup

        if config.min_user_interactions or config.min_item_interactions:
            removed = np.zeros(len(u_s), dtype=bool)
            while True:
                ucount = np.bincount(u_s, weights=alive, minlength=len(uuniq))
                icount = np.bincount(i_s, weights=alive, minlength=len(iuniq))
                bad_rows = alive & (
                    (ucount[u_s] < config.min_user_interactions) | (icount[i_s] < config.min_item_interactions)
                )
                if not bad_rows.any():
                    break
                alive &= ~bad_rows
                removed |= bad_rows
            if removed.any():
                drop_sorted("k_core", removed)

        if not alive.all():
            u_s = u_s[alive]
            t_s = t_s[alive]
            i_s = i_s[alive]
            e_s = e_s[alive]
            w_s = w_s[alive]
        order = alive = None  # type: ignore[assignment]
        reasons = [r for r in _CHECK_ORDER if r in self._counts]
        shown = np.unique(np.concatenate([self._first[r] for r in reasons])) if reasons else np.zeros(0, np.int64)
        names = dict(zip(shown.tolist(), self._labels(shown), strict=True)) if len(shown) else {}
        for r in reasons:
            report.add(r, self._counts[r], [f"{self.label_word} {names[j]}" for j in self._first[r].tolist()])
        if len(u_s) == 0:
            raise EmptyDataError(
                f"every row was dropped while cleaning ({report.dropped}); check the column mapping and filters",
                source=source,
            )
        user, users = _recode(u_s, uuniq, "user")
        del u_s
        item, items = _recode(i_s, iuniq, "item")
        del i_s
        report.rows_out = len(user)
        if report.dropped:
            log.info("%s: kept %d of %d rows; dropped %s", source, len(user), n, report.dropped)
        return CleanedEvents(user=user, item=item, timestamp=t_s, weight=w_s, event=e_s, event_names=event_names,
                             users=users, items=items, report=report)


def _frame_labels(df: pd.DataFrame, first_line: int | None,
                  lines: Callable[[], np.ndarray | None] | None) -> Labels:
    """Rows named by index label, or (with ``first_line``) by file line."""
    if first_line is None:
        return lambda rows: [df.index[j] for j in rows]
    found: list[np.ndarray | None] = []

    def labels(rows: np.ndarray) -> list[int]:
        if not found:
            arr = lines() if lines is not None else None
            found.append(arr if arr is not None and len(arr) == len(df) else None)
        arr = found[0]
        return [int(arr[j]) if arr is not None else int(j + first_line) for j in rows]

    return labels


def clean_events(
    df: pd.DataFrame,
    columns: ColumnMap | None = None,
    config: CleaningConfig | None = None,
    source: str = "<DataFrame>",
    first_line: int | None = None,
    lines: Callable[[], np.ndarray | None] | None = None,
) -> CleanedEvents:
    """Validate and code a raw event table (one chunk of :class:`EventCleaner`).

    ``first_line`` is the file line of the first data row (2 for a file with a
    header); rows are then named by line, otherwise by DataFrame index label.
    ``lines``, when given, returns each row's line where rows and lines differ
    (blank lines, values spanning lines); it is called only if a row is named.
    Raises :class:`DataError` for a missing column, a column with no usable
    value, or (with ``config.strict``) the first malformed row.

    The returned arrays are sorted by (user, time), ties kept in input order.
    """
    columns = columns or ColumnMap()
    if len(df) == 0:
        raise EmptyDataError("no rows to ingest", source=source)
    cleaner = EventCleaner(columns, config, source, "line" if first_line is not None else "row",
                           _frame_labels(df, first_line, lines))
    cleaner.check_columns(list(df.columns))
    table = pa.table({col: _to_arrow(df[col]) for col in dict.fromkeys(columns.required())})
    cleaner.add(table, value=lambda col, j: df[col].iloc[j])
    return cleaner.finish()
