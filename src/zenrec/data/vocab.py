"""A reversible mapping between raw ids (strings or integers) and 0..n-1."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd

from zenrec.errors import UnknownIdError

__all__ = ["Vocabulary"]

#: lookups of up to this many ids go one by one through the hash table
_FEW = 16


class Vocabulary:
    """Maps raw ids to contiguous integer indices and back.

    Raw ids keep their type: integers stay ``int64``, everything else is a
    string.  Lookups are vectorised through a :class:`pandas.Index`.

    >>> v = Vocabulary(["b", "a", "c"])
    >>> v.index(["a", "c"]).tolist()
    [1, 2]
    >>> v.ids([0, 2]).tolist()
    ['b', 'c']
    """

    __slots__ = ("_ids", "_index", "name")

    def __init__(self, ids: Iterable | np.ndarray, name: str = "id") -> None:
        arr = np.asarray(list(ids) if not isinstance(ids, (np.ndarray, pd.Index, pd.Series)) else ids)
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.dtype.kind == "b" or arr.dtype.kind == "f":
            raise TypeError(f"{name} ids must be integers or strings; got {arr.dtype}")
        else:
            arr = arr.astype(str)
        index = pd.Index(arr)
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise ValueError(f"{name} vocabulary has duplicate id {dup!r}")
        self._ids = arr
        self._index = index
        self.name = name

    @classmethod
    def from_values(cls, values: np.ndarray | pd.Series, name: str = "id") -> tuple[Vocabulary, np.ndarray]:
        """Build a vocabulary from raw values (first-seen order) and encode them."""
        codes, uniques = pd.factorize(np.asarray(values), sort=False)
        return cls(np.asarray(uniques), name=name), codes.astype(np.int32)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: object) -> bool:
        return self._coerce_one(raw) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self._ids, other._ids)

    def __repr__(self) -> str:
        return f"Vocabulary({self.name}, n={len(self)})"

    @property
    def is_integer(self) -> bool:
        """True when the raw ids are integers."""
        return self._ids.dtype.kind == "i"

    def _coerce(self, raw: np.ndarray) -> np.ndarray:
        if self.is_integer:
            if raw.dtype.kind in "iu":
                return raw.astype(np.int64)
            out = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce")
            # ids that are not integers cannot be in an integer vocabulary
            return out.to_numpy(dtype=float, na_value=np.nan)
        return raw.astype(str)

    def _coerce_one(self, raw: object) -> object:
        return self._coerce(np.asarray([raw]))[0]

    def index(
        self, raw: Iterable | np.ndarray, missing: Literal["raise", "mask"] = "raise"
    ) -> np.ndarray:
        """Indices of raw ids; unknown ids raise, or become -1 with ``missing='mask'``."""
        arr = np.asarray(list(raw) if not isinstance(raw, (np.ndarray, pd.Series, pd.Index)) else raw)
        keys = self._coerce(arr)
        if len(keys) <= _FEW:  # one hash lookup each: get_indexer costs far more on a few ids
            codes = np.fromiter((self._loc(k) for k in keys), dtype=np.int64, count=len(keys))
        else:
            codes = self._index.get_indexer(keys).astype(np.int64)
        if missing == "raise" and (codes < 0).any():
            bad = arr[np.flatnonzero(codes < 0)[0]]
            raise UnknownIdError(f"unknown {self.name} {bad!r}: not seen in the training data")
        return codes

    def _loc(self, key: object) -> int:
        try:
            return int(self._index.get_loc(key))
        except (KeyError, TypeError):  # TypeError: a NaN or other unhashable-as-id key
            return -1

    def ids(self, idx: Iterable | np.ndarray) -> np.ndarray:
        """Raw ids of indices (the inverse of :meth:`index`)."""
        return self._ids[np.asarray(idx, dtype=np.int64)]

    @property
    def all_ids(self) -> np.ndarray:
        """Every raw id, in index order."""
        return self._ids

    def to_array(self) -> np.ndarray:
        """A pickle-free array to store (``int64`` or unicode)."""
        return self._ids
