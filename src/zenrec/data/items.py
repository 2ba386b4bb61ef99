"""An item table's declared feature columns (:class:`ItemColumns`) and the checks an item table passes.

``zenrec ingest --items items.csv --item-text title --item-cat brand ...``
declares which columns of the item table are features and of what kind; the
dataset stores that declaration (its manifest) beside the table, so a model
that reads item content (the two-tower) finds it with no further flags.  The
features themselves are built from it by :mod:`zenrec.features.side` (this
floor does not import it).

:func:`check_item_table` is what every item table passes before it is
attached: the id column and each declared column exist, the table has rows,
every row has a valid and unique item id, and numeric columns hold numbers;
each failure is a :class:`~zenrec.errors.DataError` naming the file, the
row (the file line for text files) and the column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zenrec.data.ids import normalize_id
from zenrec.errors import ConfigError, DataError, EmptyDataError

__all__ = ["ItemColumns", "check_item_table"]

#: The kinds of item feature column, in the order they are listed.
KINDS = ("text", "categorical", "multi_hot", "numeric")


@dataclass(frozen=True)
class ItemColumns:
    """Which columns of an item table are features, by kind.

    * ``text`` — free text (titles, descriptions; several are joined);
    * ``categorical`` — one value per item (a brand);
    * ``multi_hot`` — column → separator: several values in one cell (``"a|b"``);
    * ``numeric`` — one number per item (a price; empty = missing).
    """

    text: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    multi_hot: Mapping[str, str] = field(default_factory=dict)
    numeric: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for kind in ("text", "categorical", "numeric"):
            object.__setattr__(self, kind, tuple(str(c) for c in getattr(self, kind)))
        object.__setattr__(self, "multi_hot", {str(c): str(s) for c, s in dict(self.multi_hot).items()})
        seen: dict[str, str] = {}
        for kind, col in self.declared():
            if col in seen:
                raise ConfigError(f"item column {col!r} is declared twice ({seen[col]} and {kind}); "
                                  "give each column one kind")
            seen[col] = kind
        for col, sep in self.multi_hot.items():
            if not sep:
                raise ConfigError(f"the separator of multi-hot item column {col!r} must not be empty")

    def __bool__(self) -> bool:
        return bool(self.text or self.categorical or self.multi_hot or self.numeric)

    def declared(self) -> list[tuple[str, str]]:
        """``(kind, column)`` for every declared column, kinds in :data:`KINDS` order."""
        return [(kind, c) for kind in KINDS for c in getattr(self, kind)]

    @property
    def names(self) -> list[str]:
        """Every declared column."""
        return [c for _, c in self.declared()]

    def describe(self) -> str:
        """One line for people: ``text title, description; categorical brand``."""
        return "; ".join(f"{kind.replace('_', '-')} {', '.join(getattr(self, kind))}"
                         for kind in KINDS if getattr(self, kind))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (the dataset manifest's ``item_features``)."""
        return {"text": list(self.text), "categorical": list(self.categorical), "multi_hot": dict(self.multi_hot),
                "numeric": list(self.numeric)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ItemColumns:
        """The inverse of :meth:`to_dict` (``ValueError``/``TypeError`` on a malformed mapping)."""
        if not isinstance(d, Mapping):
            raise TypeError(f"expected a mapping; got {type(d).__name__}")
        unknown = set(d) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kinds {sorted(unknown)}")
        lists = {}
        for kind in ("text", "categorical", "numeric"):
            v = d.get(kind, [])
            if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
                raise TypeError(f"{kind!r} must be a list of column names")
            lists[kind] = tuple(v)
        mh = d.get("multi_hot", {})
        if not isinstance(mh, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mh.items()):
            raise TypeError("'multi_hot' must map column names to separators")
        return cls(lists["text"], lists["categorical"], dict(mh), lists["numeric"])


_LISTS = (list, tuple, np.ndarray)


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v))


def _as_text(s: pd.Series) -> pd.Series:
    """A column as strings (missing stays missing); whole-number floats lose their ``.0``."""
    if s.dtype.kind == "f":
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(vals)
        if (vals[ok] == np.floor(vals[ok])).all():
            return pd.Series([str(int(v)) if o else None for v, o in zip(vals, ok, strict=True)],
                             index=s.index, dtype="string")
    return pd.Series([None if _missing(v) else str(v) for v in s.to_numpy(dtype=object)], index=s.index,
                     dtype="string")


def check_item_table(
    table: pd.DataFrame,
    id_column: str,
    columns: ItemColumns | None = None,
    *,
    integer_ids: bool = False,
    source: str = "<DataFrame>",
    label: Callable[[int], int] | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """The item ids and the table with declared columns in their types, after every check.

    ``integer_ids``: the log's item ids are integers, so the table's must be
    too.  ``label(i)`` names row ``i`` in messages (its file line); without
    it rows are named by position (0 = first).  Text, categorical and
    multi-hot columns become strings (whole-number floats without ``.0``),
    numeric ones float64 with NaN for missing; string ids are stripped as
    in the log.  Raises :class:`DataError` (``EmptyDataError`` for no rows).
    """
    columns = columns or ItemColumns()
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"an item table must be a pandas DataFrame; got {type(table).__name__}", source=source)
    have = [str(c) for c in table.columns]
    for col in [id_column, *columns.names]:
        if col not in table.columns:
            what = "id column" if col == id_column else "declared column"
            raise DataError(f"no {what} {col!r} in the item table; its columns are {have}"
                            + (" (name it with --item-key)" if col == id_column else ""), source=source, column=col)
    if id_column in columns.names:
        raise ConfigError(f"item column {id_column!r} is the id column (--item-key); it cannot be a feature too")
    if len(table) == 0:
        raise EmptyDataError("the item table has no rows", source=source)

    def where(i: int) -> int:
        return int(label(i)) if label is not None else int(i)

    word = "line" if label is not None else "row"
    raw = table[id_column].to_numpy(dtype=object)
    ids: list[Any] = []
    for i, v in enumerate(raw):
        if _missing(v):
            raise DataError(f"no item id ({word} {where(i)})", source=source, row=where(i), column=id_column)
        if integer_ids:
            try:
                f = float(v) if isinstance(v, (float, np.floating)) else None
                iv = int(v) if f is None else int(f)
                if f is not None and f != iv:
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                raise DataError(f"item id {v!r} is not an integer, as the log's item ids are ({word} {where(i)})",
                                source=source, row=where(i), column=id_column) from None
            ids.append(iv)
        else:
            text = str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer() else str(v)
            try:
                ids.append(normalize_id(text))
            except ValueError as exc:
                raise DataError(f"item id {v!r} {exc} ({word} {where(i)})", source=source, row=where(i),
                                column=id_column) from None
    arr = np.asarray(ids, dtype=np.int64 if integer_ids else np.str_)
    dup = pd.Index(arr).duplicated(keep=False)
    if dup.any():
        first, *rest = np.flatnonzero(dup)
        again = next(j for j in rest if arr[j] == arr[first])
        raise DataError(f"duplicate item id {arr[first].item()!r} ({word}s {where(first)} and {where(again)}); "
                        "the item table needs one row per item", source=source, row=where(again), column=id_column)
    out = table.copy()
    for col in [*columns.text, *columns.categorical]:
        out[col] = _as_text(table[col])
    for col, sep in columns.multi_hot.items():
        cells = table[col].to_numpy(dtype=object)
        if any(isinstance(v, _LISTS) for v in cells):  # a list per cell (JSON Lines, Parquet): joined with sep
            out[col] = _as_text(pd.Series([sep.join(map(str, v)) if isinstance(v, _LISTS) else v for v in cells],
                                          index=table.index))
        else:
            out[col] = _as_text(table[col])
    for col in columns.numeric:
        out[col] = _numbers(table[col], col, source, where, word)
    return arr, out


def _numbers(s: pd.Series, col: str, source: str, where: Callable[[int], int], word: str) -> pd.Series:
    """A numeric column as float64 (NaN = missing); the first cell that is not a finite number fails."""
    vals = np.full(len(s), np.nan)
    for i, v in enumerate(s.to_numpy(dtype=object)):
        if _missing(v) or (isinstance(v, str) and not v.strip()):
            continue
        try:
            x = float(v.strip() if isinstance(v, str) else v)
        except (TypeError, ValueError):
            x = None
        if x is None or not np.isfinite(x):
            raise DataError(f"expected a number; got {v!r} ({word} {where(i)})", source=source, row=where(i),
                            column=col)
        vals[i] = x
    return pd.Series(vals, index=s.index, dtype=np.float64)

