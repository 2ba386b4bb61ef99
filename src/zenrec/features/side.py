"""Item side information in one typed container: :class:`ItemFeatures`.

Rows are item indices (the dataset's item vocabulary), so a model reads
``features.text[i]`` for item ``i`` with no id mapping of its own.  Four
kinds of column:

* **text** — one string per item (titles, descriptions; several columns are
  joined), encoded by a model or by :class:`~zenrec.features.text.SentenceEncoder`;
* **categorical / multi-hot** — :class:`MultiHot`: up to ``k`` codes per item
  into a value vocabulary (a genre, or ``"Action|Comedy"`` split on ``|``);
* **vectors** — precomputed float vectors (image embeddings, …), one per item;
* **text_vectors** — sentence vectors of ``text`` when already encoded.

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

__all__ = ["ItemFeatures", "MultiHot"]


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


@dataclass(frozen=True)
class ItemFeatures:
    """Side information for items ``0 … n_items-1`` (see the module docstring)."""

    n_items: int
    text: np.ndarray | None = None
    categorical: Mapping[str, MultiHot] = field(default_factory=dict)
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    text_vectors: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.n_items
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
    ) -> ItemFeatures:
        """Features from a table.

        Without ``id_column``, row ``i`` describes item ``i`` (the layout of
        :attr:`zenrec.data.Dataset.item_table`).  With ``id_column`` and the
        dataset's ``items`` vocabulary, rows are matched by raw id; ids not in
        the vocabulary are ignored and items without a row get empty features.

        ``text`` columns are joined with ``". "``; each ``categorical`` column
        holds one value per item; each ``multi_hot`` column holds a string split
        on its separator (``{"genres": "|"}``) or a list; each ``vectors``
        column holds one equal-length numeric sequence per item (missing = zeros).
        """
        if not isinstance(table, pd.DataFrame):
            raise DataError(f"item features need a pandas DataFrame; got {type(table).__name__}")
        multi_hot = dict(multi_hot or {})
        text_cols = [text] if isinstance(text, str) else list(text)
        wanted = [*text_cols, *categorical, *multi_hot, *vectors, *([id_column] if id_column else [])]
        absent = [c for c in wanted if c not in table.columns]
        if absent:
            raise DataError(f"no such column; the table has {list(table.columns)}", column=absent[0])
        if id_column is not None:
            if items is None:
                raise ConfigError("'id_column' needs the 'items' vocabulary to align rows to item indices")
            n = len(items) if n_items is None else n_items
            idx = items.index(table[id_column].to_numpy(), missing="mask")
            keep = idx >= 0
            pos = np.full(n, -1, dtype=np.int64)
            pos[idx[keep]] = np.flatnonzero(keep)
        else:
            n = len(table) if n_items is None else n_items
            if len(table) != n:
                raise DataError(f"the item table has {len(table)} rows; expected one per item ({n}); "
                                "pass id_column= and items= to align by id")
            pos = np.arange(n)

        def column(col: str) -> list:
            vals = table[col].to_numpy(dtype=object)
            return [None if p < 0 else vals[p] for p in pos]

        text_arr = None
        if text_cols:
            cols = [column(c) for c in text_cols]
            joined = [". ".join(str(v).strip() for v in row if not _missing(v) and str(v).strip())
                      for row in zip(*cols, strict=True)]
            text_arr = np.asarray(joined, dtype=np.str_) if n else np.zeros(0, dtype="<U1")
        cats: dict[str, MultiHot] = {}
        for c in categorical:
            cats[c] = MultiHot.from_lists([[] if _missing(v) else [str(v)] for v in column(c)])
        for c, sep in multi_hot.items():
            rows = []
            for v in column(c):
                if _missing(v):
                    rows.append([])
                elif isinstance(v, str):
                    rows.append([s.strip() for s in v.split(sep) if s.strip()])
                else:
                    rows.append([str(s) for s in v])
            cats[c] = MultiHot.from_lists(rows)
        vecs: dict[str, np.ndarray] = {}
        for c in vectors:
            cells = column(c)
            dims = {len(v) for v in cells if v is not None and not _missing(v)}
            if len(dims) != 1:
                raise DataError(f"vector cells must all have one length; found lengths {sorted(dims)}", column=c)
            d = dims.pop()
            m = np.zeros((n, d), dtype=np.float32)
            for i, v in enumerate(cells):
                if v is not None and not _missing(v):
                    try:
                        m[i] = np.asarray(v, dtype=np.float32)
                    except (TypeError, ValueError):
                        raise DataError(f"expected {d} numbers; got {v!r}", column=c,
                                        row=int(pos[i])) from None
            vecs[c] = m
        return cls(n, text_arr, cats, vecs)

    @classmethod
    def from_dataset(cls, dataset: Dataset, **columns) -> ItemFeatures:
        """Features from ``dataset.item_table`` (see :meth:`from_frame` for ``columns``)."""
        if dataset.item_table is None:
            raise DataError(f"dataset {dataset.name!r} has no item table; attach one with with_item_table()")
        return cls.from_frame(dataset.item_table, len(dataset.items), **columns)

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
        )
