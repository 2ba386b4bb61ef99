"""What a closed-form fit will cost before it starts: peak memory by formula, time from a measured rate.

EASE's fit is one dense ``n × n`` Gram matrix and its inverse (about n³
flops); ItemKNN's is a dense block of similarities at a time plus the kept
neighbours.  Neither reports progress while it runs, so before a large fit
(:func:`worth_telling`) the model says what to expect: a line through the
``zenrec.train`` logger at INFO and an ``"estimate"``
:class:`~zenrec.train.progress.TrainEvent` to ``TrainOptions.callback``
(the CLI prints it on stderr).

Memory is a formula of the sizes (each :class:`FitEstimate` states it).
Time is the work divided by a rate measured once per process on this
machine by a small calibration of the same operation (:func:`lapack_rate`,
:func:`similarity_rates`), so it tracks the machine and its current load,
not a constant.  It is an estimate: a larger matrix usually runs LAPACK at a
higher rate than the small calibration, so EASE's time errs on the long side
(on an idle 2-core machine: 1.0× the real fit at 4,000 items, 1.4× at 9,000;
memory within 25% of the traced peak at 1,500–8,000 items).
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["FitEstimate", "ease_estimate", "itemknn_estimate", "lapack_rate", "similarity_rates", "worth_telling",
           "format_bytes"]

#: a fit estimated to take longer than this many seconds is announced (``ZENREC_ESTIMATE_SECONDS`` overrides)
MIN_SECONDS = 5.0
#: … or to need more than this many MB at its peak (``ZENREC_ESTIMATE_MB`` overrides)
MIN_MB = 500.0
#: the Cholesky calibration's matrix size
CALIBRATION_N = 1536


@dataclass(frozen=True)
class FitEstimate:
    """Expected ``seconds`` and ``peak_bytes`` of a fit, with the ``basis`` of each number."""

    model: str
    n_items: int
    seconds: float
    peak_bytes: int
    memory_basis: str
    time_basis: str

    def line(self) -> str:
        """One line for a terminal or a log, e.g. ``ease on 24,500 items: about 4.8 GB peak memory and 5m20s …``."""
        from zenrec.train.progress import format_seconds

        return (f"{self.model} on {self.n_items:,} items: about {format_bytes(self.peak_bytes)} peak memory and "
                f"{format_seconds(self.seconds)} (estimate; memory: {self.memory_basis}; time: {self.time_basis})")


def format_bytes(n: float) -> str:
    """``512 MB``, ``4.8 GB``."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value >= 0 and math.isfinite(value) else default


def worth_telling(est: FitEstimate) -> bool:
    """True when the fit is large enough to announce: over ``$ZENREC_ESTIMATE_SECONDS`` (5) seconds or
    ``$ZENREC_ESTIMATE_MB`` (500) MB."""
    return (est.seconds > _env_float("ZENREC_ESTIMATE_SECONDS", MIN_SECONDS)
            or est.peak_bytes > _env_float("ZENREC_ESTIMATE_MB", MIN_MB) * 1e6)


@functools.cache
def lapack_rate(n: int = CALIBRATION_N) -> float:
    """Flops per second of a float32 Cholesky factorisation + inverse (``spotrf`` + ``spotri``, n³ flops)
    of an ``n × n`` matrix on this machine: the best of two runs, measured once per process."""
    from scipy.linalg import lapack

    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    spd = a @ a.T + n * np.eye(n, dtype=np.float32)
    best = math.inf
    for _ in range(2):
        t = time.perf_counter()
        chol, _ = lapack.spotrf(spd, lower=1, overwrite_a=0, clean=0)
        lapack.spotri(chol, lower=1, overwrite_c=1)
        best = min(best, time.perf_counter() - t)
    return n**3 / max(best, 1e-9)


@functools.cache
def similarity_rates(block: int = 256, n: int = 4096, users: int = 4000, per_user: int = 20) -> tuple[float, float]:
    """``(similarity cells per second, co-occurrences per second)`` on this machine, measured once per process.

    Cells: ItemKNN's dense block step (co-occurrences made dense, cosine
    denominators, division, top-k) on a random ``block × n`` block.
    Co-occurrences: the sparse product ``XᵀX`` (the Gram matrix of EASE, the
    co-occurrence counts of ItemKNN) of a random ``users × n`` matrix with
    ``per_user`` items per user, per ``(user, item, item)`` triple.
    """
    import scipy.sparse as sp

    from zenrec.retrieval.topk import topk

    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(users), per_user)
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, rng.integers(0, n, len(rows)))), shape=(users, n))
    x.sum_duplicates()
    xt = x.T.tocsr()
    sq = np.asarray(x.multiply(x).sum(axis=0)).ravel().astype(np.float64)
    t = time.perf_counter()
    co = (xt[:block] @ x).toarray().astype(np.float32)
    denom = np.power(sq[:block, None], 0.5) * np.power(sq[None, :], 0.5) + 10.0
    sim = co / np.maximum(denom, 1e-12).astype(np.float32)
    topk(sim, 200)
    cell_s = time.perf_counter() - t
    t = time.perf_counter()
    xt @ x
    pair_s = time.perf_counter() - t
    triples = float((np.diff(x.indptr).astype(np.float64) ** 2).sum())
    return block * n / max(cell_s, 1e-9), triples / max(pair_s, 1e-9)


def _pairs(n_users: int, nnz: int) -> float:
    """Co-occurring (user, item, item) triples Σ_u d_u², by the even spread ``nnz² / n_users`` (a lower bound)."""
    return nnz * nnz / max(n_users, 1)


def ease_estimate(n_users: int, n_items: int, nnz: int, flops_rate: float | None = None,
                  pair_rate: float | None = None) -> FitEstimate:
    """EASE's fit: peak ``max(2 · 4n², 4n² + 8g) + 12 · nnz`` bytes, time ``n³ / flops_rate`` plus the Gram matrix.

    ``g = min(n², nnz²/n_users)`` estimates the non-zeros of the sparse Gram
    matrix ``XᵀX``, held (8 bytes each) while it becomes dense; otherwise the
    peak is two float32 ``n × n`` matrices (the Gram matrix and its inverse's
    copy).  The inverse costs about n³ flops (Cholesky n³/3 + triangular
    inverse 2n³/3) at ``flops_rate`` (default: :func:`lapack_rate`, measured);
    the sparse Gram matrix ``nnz²/n_users`` co-occurrences at ``pair_rate``
    (default: :func:`similarity_rates`, measured).
    """
    n = int(n_items)
    g = min(float(n) * n, _pairs(n_users, nnz))
    peak = int(max(2 * 4 * n * n, 4 * n * n + 8 * g) + 12 * nnz)
    rate = flops_rate if flops_rate is not None else lapack_rate()
    pairs = pair_rate if pair_rate is not None else similarity_rates()[1]
    basis = f"n³ = {float(n) ** 3:.2g} flops at {rate / 1e9:.1f} GFLOP/s" + (
        "" if flops_rate is not None else f", measured by a {CALIBRATION_N}×{CALIBRATION_N} Cholesky inverse here")
    return FitEstimate("ease", n, float(n) ** 3 / rate + _pairs(n_users, nnz) / pairs, peak,
                       f"two float32 {n:,}² matrices (4 bytes × n² each)", basis)


def itemknn_estimate(n_users: int, n_items: int, nnz: int, k: int = 200, block_size: int = 2048,
                     rates: tuple[float, float] | None = None) -> FitEstimate:
    """ItemKNN's fit: peak ``28 · b · n + 40 · n · k`` bytes (b = the block size), time from measured rates.

    A block of ``b × n`` similarities is held as float32 co-occurrences,
    float64 denominators and float32 similarities plus top-k work (about 28
    bytes per cell, measured); the ``k`` kept neighbours per item take about
    40 bytes each while the sparse result is assembled.  Time: ``n²`` cells at
    the measured cell rate plus ``nnz²/n_users`` co-occurrences at the
    measured pair rate (default :func:`similarity_rates`).
    """
    n = int(n_items)
    b = min(block_size, n)
    kk = min(k, max(n - 1, 1))
    peak = int(28 * b * n + 40 * n * kk + 24 * nnz)
    cell_rate, pair_rate = rates if rates is not None else similarity_rates()
    seconds = float(n) * n / cell_rate + _pairs(n_users, nnz) / pair_rate
    return FitEstimate("itemknn", n, seconds, peak,
                       f"a {b:,} × {n:,} similarity block (~28 bytes per cell) and {kk} neighbours per item",
                       f"{float(n) ** 2:.2g} similarities at {cell_rate / 1e6:.0f}M/s and {_pairs(n_users, nnz):.2g} "
                       f"co-occurrences at {pair_rate / 1e6:.0f}M/s, measured on a small block here")
