"""Side information in typed containers: :class:`ItemFeatures`, :class:`UserFeatures`, :class:`Side`.

Rows are item (user) indices of the dataset's vocabulary, so a model reads
``features.text[i]`` for item ``i`` with no id mapping of its own.  Four
kinds of item column (users have categorical, numeric and vector columns,
see :class:`UserFeatures`; :class:`Side` holds both):

* **text** — one string per item (titles, descriptions; several columns are
  joined), encoded by a model or by :class:`~zenrec.features.text.SentenceEncoder`;
* **categorical / multi-hot** — :class:`MultiHot`: up to ``k`` codes per item
  into a value vocabulary (a genre, or ``"Action|Comedy"`` split on ``|``);
* **vectors** — precomputed float vectors (image embeddings, …), one per item;
* **text_vectors** — sentence vectors of ``text`` when already encoded;
* **numeric** — one float per item per column (a price), NaN = missing.

Everything is a plain numpy array (unicode for strings), so a model can
store what it needs in its ``.npz`` state without pickle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from zenrec.errors import ConfigError, DataError

if TYPE_CHECKING:
    from zenrec.data.dataset import Dataset
    from zenrec.data.vocab import Vocabulary
    from zenrec.features.text import SentenceEncoder

__all__ = ["ItemFeatures", "MultiHot", "Side", "UserFeatures"]


@dataclass(frozen=True)
class MultiHot:
    """Up to ``k`` values per item: ``codes`` is ``n_items × k`` int32, 0 = none,
    ``c > 0`` = ``values[c - 1]``."""

    codes: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.ndim != 2 or codes.dtype.kind not in "iu":
            raise ConfigError(f"MultiHot codes must be an n_items × k integer matrix; got {codes.dtype} "
                              f"of shape {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() > len(self.values)):
            raise ConfigError(f"MultiHot codes must lie in [0, {len(self.values)}]; got {codes.min()}..{codes.max()}")

    @property
    def n_values(self) -> int:
        return len(self.values)

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[str]]) -> MultiHot:
        """From one list of values per item (empty = none); values sorted for a stable vocabulary."""
        vocab = np.asarray(sorted({str(v) for r in rows for v in r}), dtype=np.str_)
        index = {v: i + 1 for i, v in enumerate(vocab.tolist())}
        k = max((len(set(r)) for r in rows), default=0)
        codes = np.zeros((len(rows), max(k, 1)), dtype=np.int32)
        for i, r in enumerate(rows):
            c = sorted({index[str(v)] for v in r})
            codes[i, : len(c)] = c
        return cls(codes, vocab)


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


class _Columns:
    """A feature table's columns aligned to rows ``0 … n-1`` (by position, or by raw id through a vocabulary)."""

    def __init__(self, table: pd.DataFrame, what: str, n: int | None, wanted: Sequence[str],
                 id_column: str | None, vocab: Vocabulary | None) -> None:
        if not isinstance(table, pd.DataFrame):
            raise DataError(f"{what} features need a pandas DataFrame; got {type(table).__name__}")
        absent = [c for c in [*wanted, *([id_column] if id_column else [])] if c not in table.columns]
        if absent:
            raise DataError(f"no such column; the table has {list(table.columns)}", column=absent[0])
        self.table = table
        if id_column is not None:
            if vocab is None:
                raise ConfigError(f"'id_column' needs the '{what}s' vocabulary to align rows to {what} indices")
            self.n = len(vocab) if n is None else n
            idx = vocab.index(table[id_column].to_numpy(), missing="mask")
            keep = idx >= 0
            self.pos = np.full(self.n, -1, dtype=np.int64)
            self.pos[idx[keep]] = np.flatnonzero(keep)
        else:
            self.n = len(table) if n is None else n
            if len(table) != self.n:
                raise DataError(f"the {what} table has {len(table)} rows; expected one per {what} ({self.n}); "
                                f"pass id_column= and {what}s= to align by id")
            self.pos = np.arange(self.n)

    def column(self, col: str) -> list:
        """One value per row (None where a row has no line in the table)."""
        vals = self.table[col].to_numpy(dtype=object)
        return [None if p < 0 else vals[p] for p in self.pos]

    def categorical(self, categorical: Sequence[str], multi_hot: Mapping[str, str]) -> dict[str, MultiHot]:
        cats: dict[str, MultiHot] = {}
        for c in categorical:
            cats[c] = MultiHot.from_lists([[] if _missing(v) else [str(v)] for v in self.column(c)])
        for c, sep in multi_hot.items():
            rows = []
            for v in self.column(c):
                if _missing(v):
                    rows.append([])
                elif isinstance(v, str):
                    rows.append([s.strip() for s in v.split(sep) if s.strip()])
                else:
                    rows.append([str(s) for s in v])
            cats[c] = MultiHot.from_lists(rows)
        return cats

    def vectors(self, vectors: Sequence[str]) -> dict[str, np.ndarray]:
        vecs: dict[str, np.ndarray] = {}
        for c in vectors:
            cells = self.column(c)
            dims = {len(v) for v in cells if v is not None and not _missing(v)}
            if len(dims) != 1:
                raise DataError(f"vector cells must all have one length; found lengths {sorted(dims)}", column=c)
            d = dims.pop()
            m = np.zeros((self.n, d), dtype=np.float32)
            for i, v in enumerate(cells):
                if v is not None and not _missing(v):
                    try:
                        m[i] = np.asarray(v, dtype=np.float32)
                    except (TypeError, ValueError):
                        raise DataError(f"expected {d} numbers; got {v!r}", column=c,
                                        row=int(self.pos[i])) from None
            vecs[c] = m
        return vecs

    def numeric(self, numeric: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for c in numeric:
            vals = np.full(self.n, np.nan, dtype=np.float64)
            for i, v in enumerate(self.column(c)):
                if v is not None and not _missing(v):
                    try:
                        vals[i] = float(v)
                    except (TypeError, ValueError):
                        raise DataError(f"expected a number; got {v!r}", column=c, row=int(self.pos[i])) from None
            out[c] = vals.astype(np.float32)
        return out


@dataclass(frozen=True)
class ItemFeatures:
    """Side information for items ``0 … n_items-1`` (see the module docstring)."""

    n_items: int
    text: np.ndarray | None = None
    categorical: Mapping[str, MultiHot] = field(default_factory=dict)
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    text_vectors: np.ndarray | None = None
    numeric: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.n_items
        _check_numeric("ItemFeatures", n, self.numeric)
        if self.text is not None:
            text = np.asarray(self.text)
            if text.shape != (n,) or text.dtype.kind != "U":
                raise ConfigError(f"ItemFeatures.text must be a unicode array of {n} strings; "
                                  f"got {text.dtype} of shape {text.shape}")
        for name, mh in self.categorical.items():
            if not isinstance(mh, MultiHot) or mh.codes.shape[0] != n:
                raise ConfigError(f"ItemFeatures.categorical[{name!r}] must be a MultiHot with {n} rows")
        for name, v in {**self.vectors, **({"text_vectors": self.text_vectors}
                                          if self.text_vectors is not None else {})}.items():
            v = np.asarray(v)
            if v.ndim != 2 or v.shape[0] != n or v.dtype.kind != "f":
                raise ConfigError(f"vectors {name!r} must be a float matrix with {n} rows; "
                                  f"got {v.dtype} of shape {v.shape}")
            if not np.isfinite(v).all():
                raise DataError("vectors must be finite (use zeros for items without one)", column=name)

    def __repr__(self) -> str:
        parts = [f"n_items={self.n_items}"]
        if self.text is not None:
            parts.append("text")
        parts += [f"{k}[{m.n_values}]" for k, m in self.categorical.items()]
        parts += [f"{k}[{v.shape[1]}d]" for k, v in self.vectors.items()]
        if self.text_vectors is not None:
            parts.append(f"text_vectors[{self.text_vectors.shape[1]}d]")
        parts += [f"{k}[num]" for k in self.numeric]
        return f"ItemFeatures({', '.join(parts)})"

    # ------------------------------------------------------------ building
    @classmethod
    def from_frame(
        cls,
        table: pd.DataFrame,
        n_items: int | None = None,
        *,
        text: str | Sequence[str] = (),
        categorical: Sequence[str] = (),
        multi_hot: Mapping[str, str] | None = None,
        vectors: Sequence[str] = (),
        id_column: str | None = None,
        items: Vocabulary | None = None,
        numeric: Sequence[str] = (),
    ) -> ItemFeatures:
        """Features from a table.

        Without ``id_column``, row ``i`` describes item ``i`` (the layout of
        :attr:`zenrec.data.Dataset.item_table`).  With ``id_column`` and the
        dataset's ``items`` vocabulary, rows are matched by raw id; ids not in
        the vocabulary are ignored and items without a row get empty features.

        ``text`` columns are joined with ``". "``; each ``categorical`` column
        holds one value per item; each ``multi_hot`` column holds a string split
        on its separator (``{"genres": "|"}``) or a list; each ``vectors``
        column holds one equal-length numeric sequence per item (missing = zeros);
        each ``numeric`` column one number per item (missing = NaN).
        """
        multi_hot = dict(multi_hot or {})
        text_cols = [text] if isinstance(text, str) else list(text)
        cols = _Columns(table, "item", n_items, [*text_cols, *categorical, *multi_hot, *vectors, *numeric],
                        id_column, items)
        text_arr = None
        if text_cols:
            parts = [cols.column(c) for c in text_cols]
            joined = [". ".join(str(v).strip() for v in row if not _missing(v) and str(v).strip())
                      for row in zip(*parts, strict=True)]
            text_arr = np.asarray(joined, dtype=np.str_) if cols.n else np.zeros(0, dtype="<U1")
        return cls(cols.n, text_arr, cols.categorical(categorical, multi_hot), cols.vectors(vectors),
                   numeric=cols.numeric(numeric))

    @classmethod
    def from_dataset(cls, dataset: Dataset, **columns) -> ItemFeatures:
        """Features from ``dataset.item_table`` (see :meth:`from_frame` for ``columns``); without
        ``columns``, the feature columns declared at ingest (``dataset.item_columns``)."""
        if dataset.item_table is None:
            raise DataError(f"dataset {dataset.name!r} has no item table; attach one with with_item_table()")
        if not columns:
            declared = dataset.item_columns
            if not declared:
                raise DataError(f"dataset {dataset.name!r} declares no item feature columns; name them "
                                "(text=, categorical=, ...) or ingest with --item-text/--item-cat/...")
            columns = {"text": declared.text, "categorical": declared.categorical,
                       "multi_hot": dict(declared.multi_hot), "numeric": declared.numeric}
        return cls.from_frame(dataset.item_table, len(dataset.items), **columns)

    @classmethod
    def declared(cls, dataset: Dataset) -> ItemFeatures | None:
        """The features declared at ingest (``dataset.item_columns``), or None when it declares none."""
        if dataset.item_table is None or not dataset.item_columns:
            return None
        return cls.from_dataset(dataset)

    def with_text_vectors(self, encoder: SentenceEncoder | None = None) -> ItemFeatures:
        """A copy with ``text_vectors`` filled by the sentence encoder (default: bundled MiniLM, cached)."""
        if self.text is None:
            raise ConfigError("these item features have no text to encode")
        if encoder is None:
            from zenrec.features.text import SentenceEncoder

            encoder = SentenceEncoder()
        return replace(self, text_vectors=encoder.encode(self.text))

    def subset(self, items: np.ndarray) -> ItemFeatures:
        """Features of the given item indices, in that order (e.g. new items to score)."""
        items = np.asarray(items, dtype=np.int64)
        return ItemFeatures(
            len(items),
            None if self.text is None else self.text[items],
            {k: MultiHot(m.codes[items], m.values) for k, m in self.categorical.items()},
            {k: v[items] for k, v in self.vectors.items()},
            None if self.text_vectors is None else self.text_vectors[items],
            {k: np.asarray(v)[items] for k, v in self.numeric.items()},
        )


def _check_numeric(what: str, n: int, numeric: Mapping[str, np.ndarray]) -> None:
    for name, v in numeric.items():
        v = np.asarray(v)
        if v.shape != (n,) or v.dtype.kind not in "fiu":
            raise ConfigError(f"{what}.numeric[{name!r}] must be {n} numbers; got {v.dtype} of shape {v.shape}")
        if np.isinf(v).any():
            raise DataError("numeric features must be finite or NaN (missing)", column=name)


def _check_table(what: str, n: int, categorical: Mapping[str, MultiHot], vectors: Mapping[str, np.ndarray]) -> None:
    for name, mh in categorical.items():
        if not isinstance(mh, MultiHot) or mh.codes.shape[0] != n:
            raise ConfigError(f"{what}.categorical[{name!r}] must be a MultiHot with {n} rows")
    for name, v in vectors.items():
        v = np.asarray(v)
        if v.ndim != 2 or v.shape[0] != n or v.dtype.kind != "f":
            raise ConfigError(f"vectors {name!r} must be a float matrix with {n} rows; got {v.dtype} of shape {v.shape}")
        if not np.isfinite(v).all():
            raise DataError("vectors must be finite (use zeros for rows without one)", column=name)


@dataclass(frozen=True)
class UserFeatures:
    """Side information for users ``0 … n_users-1``: the user-side twin of :class:`ItemFeatures`.

    * **categorical / multi-hot** — :class:`MultiHot` per column (a country, ``"news|sport"``);
    * **numeric** — one float per user per column (age, tenure), NaN = missing;
      a model standardises them with statistics of its training users;
    * **vectors** — precomputed float vectors (profile embeddings, …), one per user.
    """

    n_users: int
    categorical: Mapping[str, MultiHot] = field(default_factory=dict)
    numeric: Mapping[str, np.ndarray] = field(default_factory=dict)
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.n_users
        _check_table("UserFeatures", n, self.categorical, self.vectors)
        _check_numeric("UserFeatures", n, self.numeric)
        if not (self.categorical or self.numeric or self.vectors):
            raise ConfigError("UserFeatures needs at least one categorical, numeric or vector column")

    def __repr__(self) -> str:
        parts = [f"n_users={self.n_users}"]
        parts += [f"{k}[{m.n_values}]" for k, m in self.categorical.items()]
        parts += [f"{k}[num]" for k in self.numeric]
        parts += [f"{k}[{v.shape[1]}d]" for k, v in self.vectors.items()]
        return f"UserFeatures({', '.join(parts)})"

    @classmethod
    def from_frame(
        cls,
        table: pd.DataFrame,
        n_users: int | None = None,
        *,
        categorical: Sequence[str] = (),
        multi_hot: Mapping[str, str] | None = None,
        numeric: Sequence[str] = (),
        vectors: Sequence[str] = (),
        id_column: str | None = None,
        users: Vocabulary | None = None,
    ) -> UserFeatures:
        """Features from a table: row ``i`` describes user ``i``, or rows are matched by raw id
        through ``id_column`` and the dataset's ``users`` vocabulary (users without a row get
        empty features).  Columns are read as in :meth:`ItemFeatures.from_frame`; each
        ``numeric`` column holds one number per user (missing = NaN)."""
        multi_hot = dict(multi_hot or {})
        cols = _Columns(table, "user", n_users, [*categorical, *multi_hot, *numeric, *vectors], id_column, users)
        return cls(cols.n, cols.categorical(categorical, multi_hot), cols.numeric(numeric), cols.vectors(vectors))

    @classmethod
    def from_dataset(cls, dataset: Dataset, table: pd.DataFrame, id_column: str, **columns) -> UserFeatures:
        """Features from a user table keyed by raw user id ``id_column``, aligned to ``dataset.users``."""
        return cls.from_frame(table, len(dataset.users), id_column=id_column, users=dataset.users, **columns)

    def subset(self, users: np.ndarray) -> UserFeatures:
        """Features of the given user indices, in that order (e.g. new users to score)."""
        users = np.asarray(users, dtype=np.int64)
        return UserFeatures(
            len(users),
            {k: MultiHot(m.codes[users], m.values) for k, m in self.categorical.items()},
            {k: np.asarray(v)[users] for k, v in self.numeric.items()},
            {k: np.asarray(v)[users] for k, v in self.vectors.items()},
        )


@dataclass(frozen=True)
class Side:
    """Item and user side information together, for ``fit(..., side=Side(items=..., users=...))``.

    Models that read side information also take a bare :class:`ItemFeatures`
    or :class:`UserFeatures`; :meth:`of` turns any of the three into a ``Side``.
    """

    items: ItemFeatures | None = None
    users: UserFeatures | None = None

    def __post_init__(self) -> None:
        if self.items is not None and not isinstance(self.items, ItemFeatures):
            raise ConfigError(f"Side.items must be ItemFeatures; got {type(self.items).__name__}")
        if self.users is not None and not isinstance(self.users, UserFeatures):
            raise ConfigError(f"Side.users must be UserFeatures; got {type(self.users).__name__}")

    @classmethod
    def of(cls, side: Side | ItemFeatures | UserFeatures | None) -> Side:
        """``side`` as a :class:`Side` (``None`` = no side information)."""
        if side is None:
            return cls()
        if isinstance(side, Side):
            return side
        if isinstance(side, ItemFeatures):
            return cls(items=side)
        if isinstance(side, UserFeatures):
            return cls(users=side)
        raise ConfigError(f"side must be ItemFeatures, UserFeatures or Side(items=..., users=...); "
                          f"got {type(side).__name__}")
