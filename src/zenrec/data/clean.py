"""Cleaning: turn a raw log into validated integer-coded events, counting every drop.

All steps are vectorised over columns; nothing builds a Python object per row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from zenrec.data.schema import CleaningConfig, ColumnMap
from zenrec.data.vocab import Vocabulary
from zenrec.errors import DataError, EmptyDataError

__all__ = ["CleaningReport", "CleanedEvents", "clean_events"]

log = logging.getLogger(__name__)

REASONS = (
    "missing_user_id",
    "missing_item_id",
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
    """Rows read, rows kept and rows dropped per reason (with the first few row labels)."""

    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

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
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CleaningReport":
        return cls(d["rows_in"], d["rows_out"], dict(d["dropped"]), dict(d.get("examples", {})))


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


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _numeric(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """float64 values and a mask of rows that are present but not numbers."""
    if _is_numeric(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(s), dtype=bool)
    present = s.notna().to_numpy()
    vals = pd.to_numeric(s.astype("string").str.strip(), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return vals, present & np.isnan(vals)


def _timestamps(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 epoch seconds, a missing mask and a malformed mask."""
    missing = s.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(s) or (
        isinstance(s.dtype, pd.ArrowDtype) and s.dtype.kind == "M"
    ):
        dt = pd.to_datetime(s, utc=True)
        vals = dt.astype("int64").to_numpy() // 10**9 if not missing.any() else None
        if vals is None:
            secs = (dt - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
            vals = np.nan_to_num(secs, nan=0).astype(np.int64)
        return vals, missing, np.zeros(len(s), dtype=bool)
    vals, bad = _numeric(s)
    if bad.any():
        # not numbers: try dates on the rows that are not numeric
        strs = s[bad].astype("string").str.strip()
        parsed = pd.to_datetime(strs, errors="coerce", utc=True, format="mixed")
        ok = parsed.notna().to_numpy()
        idx = np.flatnonzero(bad)
        secs = (parsed[ok] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
        vals[idx[ok]] = secs
        bad[idx[ok]] = False
    finite = np.isfinite(vals)
    vals = np.where(finite, vals, 0).astype(np.int64)
    missing = missing | (~finite & ~bad)
    return vals, missing, bad


def _ids(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """factorised codes (-1 for missing) and the unique raw ids."""
    if pd.api.types.is_float_dtype(s) and not isinstance(s.dtype, pd.ArrowDtype):
        vals = s.to_numpy()
        ok = np.isfinite(vals)
        if np.all(vals[ok] == np.round(vals[ok])):
            s = pd.Series(np.where(ok, vals, 0).astype(np.int64)).where(ok)
            s = s.astype("Int64")
    if not _is_numeric(s):
        s = s.astype("string").str.strip().replace("", pd.NA)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    uniq = np.asarray(uniques.to_numpy() if hasattr(uniques, "to_numpy") else uniques)
    if uniq.dtype.kind == "f":
        uniq = uniq.astype(np.int64)
    elif uniq.dtype.kind == "O":
        uniq = uniq.astype(str)
    return codes.astype(np.int64), uniq


def _recode(codes: np.ndarray, uniques: np.ndarray, name: str) -> tuple[np.ndarray, Vocabulary]:
    used, inverse = np.unique(codes, return_inverse=True)
    return inverse.astype(np.int32), Vocabulary(uniques[used], name=name)


def clean_events(
    df: pd.DataFrame,
    columns: ColumnMap | None = None,
    config: CleaningConfig | None = None,
    source: str = "<DataFrame>",
    first_line: int | None = None,
) -> CleanedEvents:
    """Validate and code a raw event table.

    ``first_line`` is the file line of the first data row (2 for a file with a
    header); rows are then named by line, otherwise by DataFrame index label.
    Raises :class:`DataError` for a missing column, a column with no usable
    value, or (with ``config.strict``) the first malformed row.
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
            )
    labels = (np.arange(n) + first_line) if first_line is not None else np.asarray(df.index)
    label_word = "line" if first_line is not None else "row"
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
                f"{reason.replace('_', ' ')}: expected {expected}; got {value!r} ({label_word} {labels[i]})",
                source=source,
                row=int(labels[i]) if first_line is not None else None,
                column=column,
            )
        first = np.flatnonzero(mask)[:3]
        report.add(reason, int(mask.sum()), [f"{label_word} {labels[j]}" for j in first])
        keep &= ~mask

    ucodes, uuniq = _ids(df[columns.user])
    icodes, iuniq = _ids(df[columns.item])
    drop("missing_user_id", ucodes < 0, columns.user, "a user id")
    drop("missing_item_id", icodes < 0, columns.item, "an item id")

    if columns.timestamp:
        ts, ts_missing, ts_bad = _timestamps(df[columns.timestamp])
        usable = ~(ts_missing | ts_bad)
        if not usable.any():
            first = int(np.flatnonzero(ts_bad | ts_missing)[0])
            raise DataError(
                "no row has a usable timestamp: expected epoch seconds or a date such as "
                f"2024-05-01T12:00:00; first value {df[columns.timestamp].iloc[first]!r} ({label_word} {labels[first]})",
                source=source,
                column=columns.timestamp,
            )
        drop("missing_timestamp", ts_missing, columns.timestamp, "a timestamp")
        drop("malformed_timestamp", ts_bad, columns.timestamp, "epoch seconds or an ISO date")
    else:
        ts = np.arange(n, dtype=np.int64)

    weight = np.ones(n, dtype=np.float32)
    event_codes = np.zeros(n, dtype=np.int8)
    event_names: tuple[str, ...] = ()
    if columns.event:
        ev = df[columns.event].astype("string").str.strip().str.lower()
        codes, uniques = pd.factorize(ev, use_na_sentinel=True)
        uniq = [str(u) for u in uniques]
        known = [u for u in uniq if u in config.event_weights]
        event_names = tuple(known)
        lut_w = np.array([config.event_weights.get(u, 0.0) for u in uniq] + [0.0], dtype=np.float32)
        lut_c = np.array([known.index(u) if u in known else -1 for u in uniq] + [-1], dtype=np.int16)
        weight = lut_w[codes]
        ec = lut_c[codes]
        drop(
            "unknown_event",
            ec < 0,
            columns.event,
            f"one of {sorted(config.event_weights)} (set weights with --event-weight NAME=W)",
        )
        event_codes = np.where(ec < 0, 0, ec).astype(np.int8)

    if columns.value:
        val, bad = _numeric(df[columns.value])
        drop("malformed_value", bad, columns.value, "a number")
        lo = -np.inf if config.min_value is None else config.min_value
        hi = np.inf if config.max_value is None else config.max_value
        out = ~np.isnan(val) & ((val < lo) | (val > hi))
        drop("out_of_range_value", out, columns.value, f"a value in [{lo}, {hi}]")
        if config.rating_threshold is not None:
            drop("below_rating_threshold", ~(val >= config.rating_threshold), columns.value, "")
        if config.value_as_weight:
            weight = weight * np.nan_to_num(val, nan=1.0).astype(np.float32)

    if config.drop_duplicates:
        idx = np.flatnonzero(keep)
        key = pd.DataFrame({"u": ucodes[idx], "i": icodes[idx], "t": ts[idx], "e": event_codes[idx]})
        dup = np.zeros(n, dtype=bool)
        dup[idx[key.duplicated().to_numpy()]] = True
        drop("duplicate", dup, None, "")

    if config.min_user_interactions or config.min_item_interactions:
        kc = np.zeros(n, dtype=bool)
        while True:
            idx = np.flatnonzero(keep & ~kc)
            ucount = np.bincount(ucodes[idx], minlength=len(uuniq))
            icount = np.bincount(icodes[idx], minlength=len(iuniq))
            bad_rows = (ucount[ucodes[idx]] < config.min_user_interactions) | (
                icount[icodes[idx]] < config.min_item_interactions
            )
            if not bad_rows.any():
                break
            kc[idx[bad_rows]] = True
        drop("k_core", kc, None, "")

    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        raise EmptyDataError(
            f"every row was dropped while cleaning ({report.dropped}); check the column mapping and filters",
            source=source,
        )
    user, users = _recode(ucodes[idx], uuniq, "user")
    item, items = _recode(icodes[idx], iuniq, "item")
    report.rows_out = len(idx)
    if report.dropped:
        log.info("%s: kept %d of %d rows; dropped %s", source, len(idx), n, report.dropped)
    return CleanedEvents(
        user=user,
        item=item,
        timestamp=ts[idx],
        weight=weight[idx].astype(np.float32),
        event=event_codes[idx],
        event_names=event_names,
        users=users,
        items=items,
        report=report,
    )
