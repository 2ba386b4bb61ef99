"""Sparse-matrix helpers shared by models and artifacts: CSR packing into plain arrays, padded row blocks,
and the counting sort a CSR conversion is."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

__all__ = ["pack_csr", "unpack_csr", "padded_row_blocks", "row_items", "counting_order"]


def padded_row_blocks(
    rows: sp.csr_matrix, block: int = 256
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(row indices, item index B×L, value B×L, mask B×L)`` for blocks of non-empty CSR rows.

    Rows are left-aligned and padded to the block's longest row (index 0,
    value 0, mask False), so per-row work becomes batched array work.
    """
    rows = rows.tocsr()
    lens = np.diff(rows.indptr)
    nonempty = np.flatnonzero(lens)
    for s in range(0, len(nonempty), block):
        r = nonempty[s : s + block]
        n = lens[r]
        mask = np.arange(n.max())[None, :] < n[:, None]
        pos = rows.indptr[r][:, None] + np.arange(n.max())[None, :]
        pos = np.where(mask, pos, 0)
        yield r, np.where(mask, rows.indices[pos], 0), np.where(mask, rows.data[pos], 0), mask


def pack_csr(prefix: str, m: sp.csr_matrix, binary: bool = False) -> dict[str, np.ndarray]:
    """A CSR matrix as ``PREFIX_indices``/``PREFIX_indptr`` (and ``PREFIX_data`` unless binary) arrays."""
    out = {f"{prefix}_indices": m.indices, f"{prefix}_indptr": m.indptr}
    if not binary:
        out[f"{prefix}_data"] = m.data
    return out


def unpack_csr(arrays: dict[str, np.ndarray], prefix: str, shape: tuple[int, int]) -> sp.csr_matrix:
    """The matrix :func:`pack_csr` stored; without ``PREFIX_data`` every entry is 1.

    Raises ``ValueError`` unless the arrays form a valid ``shape`` matrix
    (pointers monotone and matching the indices, every index in range).
    """
    ind = arrays[f"{prefix}_indices"]
    data = arrays.get(f"{prefix}_data")
    if data is None:
        data = np.ones(len(ind), np.float32)
    indptr = arrays[f"{prefix}_indptr"]
    if ind.dtype.kind not in "iu" or indptr.dtype.kind not in "iu" or ind.ndim != 1 or indptr.ndim != 1:
        raise ValueError(f"{prefix}: CSR indices must be 1-d integer arrays; got {ind.dtype}{ind.shape} and "
                         f"{indptr.dtype}{indptr.shape}")
    try:
        m = sp.csr_matrix((data, ind, indptr), shape=shape)
        m.check_format(full_check=True)  # out-of-range indices would make scipy read outside its buffers
    except ValueError as exc:
        raise ValueError(f"{prefix}_indices/{prefix}_indptr do not form a {shape[0]}×{shape[1]} matrix ({exc})"
                         ) from None
    return m


def row_items(m: sp.csr_matrix, row: int) -> np.ndarray:
    """The column indices stored in one row of a CSR matrix, as int64 (a user's items)."""
    return m.indices[m.indptr[row] : m.indptr[row + 1]].astype(np.int64)


def counting_order(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Stable order of rows by small non-negative integer keys: a counting sort, O(n + n_keys),
    done by SciPy's COO->CSR conversion (rows of one key keep their input order).

    >>> counting_order(np.array([2, 0, 2, 1, 0]), 3).tolist()
    [1, 4, 3, 0, 2]
    """
    n = len(keys)
    cols = np.arange(n, dtype=np.int32 if n < 2**31 - 1 else np.int64)
    m = sp.csr_matrix((np.ones(n, dtype=np.int8), (keys, cols)), shape=(n_keys, max(n, 1)))
    return m.indices
