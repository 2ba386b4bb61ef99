"""Cleaning: turn a raw log into validated integer-coded events, counting every drop.

All steps are vectorised over columns; nothing builds a Python object per row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from zenrec.data.ids import ID_RULE, normalize_ids
from zenrec.data.schema import TIMESTAMP_MAX, TIMESTAMP_MIN, CleaningConfig, ColumnMap
from zenrec.data.vocab import Vocabulary
from zenrec.errors import DataError, EmptyDataError

__all__ = ["CleaningReport", "CleanedEvents", "clean_events"]

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
    """Row counts of the event names that map to no type, most frequent first (missing values not counted)."""
    counts = np.bincount(codes[codes >= 0], minlength=len(uniq))
    found = {str(name): int(counts[i]) for i, (name, t) in enumerate(zip(uniq.tolist(), types, strict=True))
             if t is None and counts[i]}
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


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
        fill = pc.min(a).as_py() if a.null_count else 0  # a real id, so the range stays tight
        codes, uniques = _factorize_ints(_to_numpy(a, np.int64, fill))
        if a.null_count:
            codes[_null_mask(a)] = -1
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


def _bits(n: int) -> int:
    return max(int(n - 1).bit_length(), 1)


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
    run_id = np.cumsum(np.concatenate([[True], ~same]))[rows]
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


def _stable_order_by(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Stable order of rows by small non-negative integer keys: a counting sort,
    O(n + n_keys), done by SciPy's COO->CSR conversion (rows keep input order)."""
    n = len(keys)
    cols = np.arange(n, dtype=np.int32 if n < 2**31 - 1 else np.int64)
    m = sp.csr_matrix((np.ones(n, dtype=np.int8), (keys, cols)), shape=(n_keys, max(n, 1)))
    return m.indices


def _sort_order(u: np.ndarray, t: np.ndarray, n_users: int) -> np.ndarray | None:
    """Stable order by (user, time); ``None`` when the rows are already in that order."""
    if len(u) < 2:
        return None
    du = np.diff(u)
    t_sorted = bool((np.diff(t) >= 0).all())
    if (du >= 0).all() and (t_sorted or ((du > 0) | (np.diff(t) >= 0)).all()):
        return None
    if t_sorted:  # a time-ordered log: one counting sort by user
        return _stable_order_by(u, n_users)
    return np.lexsort((t, u))


def clean_events(
    df: pd.DataFrame,
    columns: ColumnMap | None = None,
    config: CleaningConfig | None = None,
    source: str = "<DataFrame>",
    first_line: int | None = None,
    lines: Callable[[], np.ndarray | None] | None = None,
) -> CleanedEvents:
    """Validate and code a raw event table.

    ``first_line`` is the file line of the first data row (2 for a file with a
    header); rows are then named by line, otherwise by DataFrame index label.
    ``lines``, when given, returns each row's line where rows and lines differ
    (blank lines, values spanning lines); it is called only if a row is named.
    Raises :class:`DataError` for a missing column, a column with no usable
    value, or (with ``config.strict``) the first malformed row.

    The returned arrays are sorted by (user, time), ties kept in input order.
    """
    columns = columns or ColumnMap()
    config = config or CleaningConfig()
    n = len(df)
    if n == 0:
        raise EmptyDataError("no rows to ingest", source=source)
    for role, col in columns.model_dump().items():
        if col is not None and col not in df.columns:
            raise DataError(
                f"missing {role} column {col!r}; the columns are {list(map(str, df.columns))} "
                f"(map yours with --{role} NAME)",
                source=source,
                column=col,
            )
    label_word = "line" if first_line is not None else "row"

    line_of: list[np.ndarray | None] = []

    def label(j: int) -> object:
        if first_line is None:
            return df.index[j]
        if lines is not None and not line_of:
            found = lines()
            line_of.append(found if found is not None and len(found) == n else None)
        return int(line_of[0][j]) if line_of and line_of[0] is not None else int(j + first_line)

    report = CleaningReport(rows_in=n)
    keep = np.ones(n, dtype=bool)

    def drop(reason: str, mask: np.ndarray, column: str | None, expected: str) -> None:
        nonlocal keep
        mask = mask & keep
        if not mask.any():
            return
        if config.strict and reason not in ("duplicate", "k_core", "below_rating_threshold"):
            i = int(np.flatnonzero(mask)[0])
            value = df[column].iloc[i] if column else None
            raise DataError(
                f"{reason.replace('_', ' ')}: expected {expected}; got {value!r} ({label_word} {label(i)})",
                source=source,
                row=int(label(i)) if first_line is not None else None,
                column=column,
            )
        first = np.flatnonzero(mask)[:3]
        report.add(reason, int(mask.sum()), [f"{label_word} {label(j)}" for j in first])
        keep &= ~mask

    first_not_utf8: object = None
    coded = {}
    for role, col in (("user", columns.user), ("item", columns.item)):
        codes, uniq, bad, not_utf8 = _ids(_to_arrow(df[col]))
        an = "an" if role == "item" else "a"
        drop(f"missing_{role}_id", (codes < 0) & ~bad, col, f"{an} {role} id")
        if first_not_utf8 is None and (not_utf8 & keep).any():
            first_not_utf8 = label(int(np.flatnonzero(not_utf8 & keep)[0]))
        drop(f"malformed_{role}_id", not_utf8, col, f"{an} {role} id in UTF-8 text; these bytes are in another "
             "encoding (name it with --encoding, e.g. --encoding latin-1)")
        drop(f"malformed_{role}_id", bad, col, f"an integer or a text {role} id ({ID_RULE})")
        coded[role] = codes, uniq
        del codes, uniq, bad, not_utf8
    (ucodes, uuniq), (icodes, iuniq) = coded.pop("user"), coded.pop("item")
    if first_not_utf8 is not None:
        report.notes.append(f"ids that are not UTF-8 text were dropped (the first on {label_word} {first_not_utf8}); "
                            "if the file is in another encoding, name it with --encoding (e.g. --encoding latin-1)")

    if columns.timestamp:
        ts, ts_missing, ts_bad = _timestamps(_to_arrow(df[columns.timestamp]))
        span = f"from 1970 to 9999 ({TIMESTAMP_MIN} to {TIMESTAMP_MAX} s)"
        if not (~(ts_missing | ts_bad)).any():
            first = int(np.flatnonzero(ts_bad | ts_missing)[0])
            value = df[columns.timestamp].iloc[first]
            try:  # a log in milliseconds (or micro-) is the usual reason for times past 9999
                hint = "; these look like milliseconds: divide them by 1000" if float(value) > TIMESTAMP_MAX else ""
            except (TypeError, ValueError, OverflowError):
                hint = ""
            raise DataError(
                f"no row has a usable timestamp: expected epoch seconds or a date {span}, such as 2024-05-01T12:00:00; "
                f"first value {value!r} ({label_word} {label(first)}){hint}",
                source=source,
                column=columns.timestamp,
            )
        drop("missing_timestamp", ts_missing, columns.timestamp, "a timestamp")
        drop("malformed_timestamp", ts_bad, columns.timestamp, f"epoch seconds or an ISO date {span}")
        del ts_missing, ts_bad
    else:
        ts = np.arange(n, dtype=np.int64)

    weight: np.ndarray | None = None
    event_codes: np.ndarray | None = None
    event_names: tuple[str, ...] = ()
    if columns.event:
        ev = _to_arrow(df[columns.event])
        if not _is_text(ev.type):
            ev = ev.cast(pa.string())
        codes, uniq, _ = _text_codes(ev, lower=True)
        types = [config.event_type(u) for u in uniq.tolist()]  # the log's names as canonical types
        known = sorted({t for t in types if t is not None}, key=list(config.event_weights).index)
        event_names = tuple(known)
        lut_w = np.array([config.event_weights[t] if t else 0.0 for t in types] + [0.0], dtype=np.float32)
        lut_c = np.array([known.index(t) if t else -1 for t in types] + [-1], dtype=np.int16)
        weight = lut_w[codes]
        ec = lut_c[codes]
        unknown = _unknown_events(codes, uniq, types)
        del codes
        if unknown:
            listed = ", ".join(f"{name!r} ({count:,} rows)" for name, count in list(unknown.items())[:10])
            listed += f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            n_unknown = sum(unknown.values())
            fix = (f"say what they are with --event-alias {next(iter(unknown))}=TYPE (TYPE one of "
                   f"{', '.join(config.event_weights)}), or weigh them with --event-weight NAME=W")
            if n_unknown > config.max_unknown_event_share * n:
                raise DataError(f"{n_unknown:,} of {n:,} rows ({n_unknown / n:.1%}) have an event type zenrec does "
                                f"not know: {listed}; {fix}, or drop them with --allow-drops",
                                source=source, column=columns.event)
            report.notes.append(f"dropped unknown event types {listed}: {fix}")
        drop(
            "unknown_event",
            ec < 0,
            columns.event,
            f"one of {sorted(config.event_weights)} (set weights with --event-weight NAME=W)",
        )
        event_codes = np.where(ec < 0, 0, ec).astype(np.int8)
        del ec

    if columns.value:
        val, bad = _numeric(_to_arrow(df[columns.value]))
        drop("malformed_value", bad, columns.value, "a number")
        lo = -np.inf if config.min_value is None else config.min_value
        hi = np.inf if config.max_value is None else config.max_value
        out = ~np.isnan(val) & ((val < lo) | (val > hi))
        drop("out_of_range_value", out, columns.value, f"a value in [{lo}, {hi}]")
        if config.rating_threshold is not None:
            drop("below_rating_threshold", ~(val >= config.rating_threshold), columns.value, "")
        if config.value_as_weight:
            vw = np.nan_to_num(val, nan=1.0).astype(np.float32)
            weight = vw if weight is None else weight * vw
        del val, bad

    # every row-wise check is done: gather the survivors once, sorted by (user, time)
    idx = np.flatnonzero(keep)
    u_s = ucodes[idx]
    t_s = ts[idx]
    order = _sort_order(u_s, t_s, len(uuniq))
    if order is not None:
        idx = idx[order]
        u_s, t_s = u_s[order], t_s[order]
    del order, ucodes, ts
    i_s = icodes[idx]
    del icodes
    e_s = event_codes[idx] if event_codes is not None else np.zeros(len(idx), dtype=np.int8)
    w_s = weight[idx] if weight is not None else np.ones(len(idx), dtype=np.float32)
    del event_codes, weight
    alive = np.ones(len(idx), dtype=bool)

    if config.drop_duplicates and len(idx) > 1:
        dup = _duplicates_sorted(u_s, t_s, i_s, e_s)
        if dup.any():
            full = np.zeros(n, dtype=bool)
            full[idx[dup]] = True
            drop("duplicate", full, None, "")
            alive &= ~dup
        del dup

    if config.min_user_interactions or config.min_item_interactions:
        removed = np.zeros(len(idx), dtype=bool)
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
            full = np.zeros(n, dtype=bool)
            full[idx[removed]] = True
            drop("k_core", full, None, "")

    if not alive.all():
        idx = idx[alive]
        u_s, t_s, i_s, e_s, w_s = u_s[alive], t_s[alive], i_s[alive], e_s[alive], w_s[alive]
    if len(idx) == 0:
        raise EmptyDataError(
            f"every row was dropped while cleaning ({report.dropped}); check the column mapping and filters",
            source=source,
        )
    user, users = _recode(u_s, uuniq, "user")
    del u_s
    item, items = _recode(i_s, iuniq, "item")
    del i_s
    report.rows_out = len(idx)
    if report.dropped:
        log.info("%s: kept %d of %d rows; dropped %s", source, len(idx), n, report.dropped)
    return CleanedEvents(
        user=user,
        item=item,
        timestamp=t_s,
        weight=w_s,
        event=e_s,
        event_names=event_names,
        users=users,
        items=items,
        report=report,
    )
