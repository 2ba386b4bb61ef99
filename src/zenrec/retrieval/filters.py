"""The attribute-filter language: business rules over an item table as a boolean mask (:func:`attribute_filter`).

A rule is a string (``"genre ~ Drama, year >= 1990"``) or a mapping
(``{"year": {"ge": 1990}}``); clauses are joined by AND.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from zenrec.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["attribute_filter", "MAX_CLAUSES", "MAX_VALUES"]

#: clauses one rule may hold
MAX_CLAUSES = 100
#: values an ``in`` / ``not_in`` list may hold
MAX_VALUES = 10_000

_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains")
_SYMBOLS = {"==": "eq", "=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "~": "contains"}
_CLAUSE = re.compile(
    r"^\s*(?P<col>[^\s=!<>~]+?)\s*(?:(?P<sym><=|>=|!=|==|=|<|>|~)|\s(?P<word>not\s+in|in)\s)\s*(?P<value>.*?)\s*$",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"\s*(?:,|;|\s+and\s+)\s*", re.IGNORECASE)


def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def _parse_rule(rule: str | Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """A rule as ``(column, operator, value)`` clauses, all of which must hold."""
    clauses: list[tuple[str, str, Any]] = []
    if isinstance(rule, str):
        for part in _SPLIT.split(rule.strip()):
            if not part:
                continue
            m = _CLAUSE.match(part)
            if m is None or not m.group("value"):
                raise ConfigError(
                    f"filter: cannot read {part!r}; write clauses like genre=Comedy, price<20, "
                    "genre in Comedy|Drama, genres~Comedy, joined by ',' or 'and'"
                )
            col = m.group("col")
            if m.group("sym"):
                op = _SYMBOLS[m.group("sym")]
                value: Any = _unquote(m.group("value"))
            else:
                op = "not_in" if m.group("word").lower().startswith("not") else "in"
                value = _checked_value(col, op, [_unquote(v.strip()) for v in m.group("value").split("|")])
            clauses.append((col, op, value))
    elif isinstance(rule, Mapping):
        for col, spec in rule.items():
            if isinstance(spec, Mapping):
                if not spec:
                    raise ConfigError(f"filter: the condition on column {col!r} is empty")
                for op, value in spec.items():
                    if op not in _OPS:
                        raise ConfigError(
                            f"filter: unknown operator {op!r} on column {col!r}; use one of {', '.join(_OPS)}"
                        )
                    clauses.append((str(col), op, _checked_value(col, op, value)))
            elif isinstance(spec, (list, tuple, set, frozenset, np.ndarray)):
                clauses.append((str(col), "in", _checked_value(col, "in", list(spec))))
            else:
                clauses.append((str(col), "eq", _checked_value(col, "eq", spec)))
    else:
        raise ConfigError(f"filter: a rule must be a string or a dict; got {type(rule).__name__}")
    if not clauses:
        raise ConfigError("filter: the rule is empty")
    if len(clauses) > MAX_CLAUSES:
        raise ConfigError(f"filter: {len(clauses)} clauses; at most {MAX_CLAUSES} are read")
    return clauses


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, np.integer, np.floating, np.bool_))


def _checked_value(col: Any, op: str, value: Any) -> Any:
    """A rule value of the shape its operator reads: a string, number or boolean, or for ``in``/``not_in``
    a list of at most :data:`MAX_VALUES` of them; anything else (an object, a nested list, null) is a
    ConfigError naming the column and operator."""
    if op in ("in", "not_in"):
        if isinstance(value, (list, tuple)):
            if len(value) > MAX_VALUES:
                raise ConfigError(f"filter: operator {op!r} on column {col!r} lists {len(value)} values; "
                                  f"at most {MAX_VALUES} are read")
            bad = [v for v in value if not _is_scalar(v)]
            if not bad:
                return list(value)
            raise ConfigError(f"filter: operator {op!r} on column {col!r} needs a list of strings, numbers or "
                              f"booleans; it holds {type(bad[0]).__name__} {_short(bad[0])}")
        return value  # a single value: refused with a clear message where it is applied
    if not _is_scalar(value):
        raise ConfigError(f"filter: operator {op!r} on column {col!r} needs a string, number or boolean; "
                          f"got {type(value).__name__} {_short(value)}")
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _coerce(series: pd.Series, col: str, value: Any) -> Any:
    """``value`` in the type of ``series`` (numbers for numeric columns, …), or a ConfigError."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ConfigError(f"filter: column {col!r} is boolean; {value!r} is not true or false")
    if pd.api.types.is_numeric_dtype(series.dtype):
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            return value
        try:
            return float(str(value))
        except ValueError:
            raise ConfigError(f"filter: column {col!r} is numeric; {value!r} is not a number") from None
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            return pd.Timestamp(value)
        except (ValueError, TypeError):
            raise ConfigError(f"filter: column {col!r} holds dates; {value!r} is not a date") from None
    return value


def _apply(series: pd.Series, col: str, op: str, value: Any) -> np.ndarray:
    import pandas as pd

    if op in ("in", "not_in"):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
            raise ConfigError(f"filter: operator {op!r} on column {col!r} needs a list of values; got {value!r}")
        hit = series.isin([_coerce(series, col, v) for v in value]).to_numpy(dtype=bool)
        return hit if op == "in" else ~hit
    if op == "contains":
        needle = str(value)
        if pd.api.types.is_string_dtype(series.dtype) or isinstance(series.dtype, pd.CategoricalDtype):
            if series.map(lambda c: isinstance(c, (list, tuple, set, frozenset, np.ndarray))).any():
                return series.map(
                    lambda c: isinstance(c, (list, tuple, set, frozenset, np.ndarray)) and needle in list(c)
                ).to_numpy(dtype=bool)
            pattern = rf"(?:^|\|){re.escape(needle)}(?:\||$)"
            return series.astype("string").str.contains(pattern, regex=True, na=False).to_numpy(dtype=bool)
        raise ConfigError(f"filter: operator 'contains' needs a text or list column; {col!r} is {series.dtype}")
    v = _coerce(series, col, value)
    try:
        with np.errstate(invalid="ignore"):
            out = {
                "eq": lambda: series == v,
                "ne": lambda: series != v,
                "lt": lambda: series < v,
                "le": lambda: series <= v,
                "gt": lambda: series > v,
                "ge": lambda: series >= v,
            }[op]()
    except TypeError:
        raise ConfigError(f"filter: cannot compare column {col!r} ({series.dtype}) with {value!r}") from None
    # a missing value passes only "ne" (as NaN != v does), in text columns (pd.NA) as in numeric ones
    return out.fillna(op == "ne").to_numpy(dtype=bool) if hasattr(out, "fillna") else np.asarray(out, dtype=bool)


def attribute_filter(item_table: pd.DataFrame, rule: str | Mapping[str, Any], n_items: int | None = None) -> np.ndarray:
    """Boolean ``allowed`` mask from a business rule over item attributes (row i = item i).

    ``rule`` is a dict — ``{"genre": "Comedy"}`` (equals), ``{"genre":
    ["Comedy", "Drama"]}`` (one of), ``{"price": {"lt": 20}}`` with operators
    eq, ne, lt, le, gt, ge, in, not_in, contains — or the same as a string:
    ``"genre=Comedy, price<20"``, ``"genre in Comedy|Drama"``,
    ``"genres~Comedy"`` (a list cell holds the value, or a ``|``-separated
    text such as ``"Action|Comedy"`` has it as one part).  All clauses must
    hold; a missing value (NaN, None) passes ``ne`` and ``not_in`` and fails
    every other operator.  Unknown columns,
    operators and values of the wrong type raise :class:`ConfigError`.
    """
    import pandas as pd

    if not isinstance(item_table, pd.DataFrame):
        raise ConfigError(f"filter: the item table must be a pandas DataFrame; got {type(item_table).__name__}")
    if n_items is not None and len(item_table) != n_items:
        raise ConfigError(f"filter: the item table has {len(item_table)} rows; the catalogue has {n_items} items")
    mask = np.ones(len(item_table), dtype=bool)
    for col, op, value in _parse_rule(rule):
        if col not in item_table.columns:
            cols = ", ".join(repr(str(c)) for c in item_table.columns)
            raise ConfigError(f"filter: no column {col!r} in the item table (columns: {cols})")
        mask &= _apply(item_table[col], col, op, value)
    return mask
