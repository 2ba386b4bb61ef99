"""Paired significance of the difference between two models evaluated on the same users.

Both models' per-user values of a metric (``evaluate(..., per_user_metrics=True)``,
same users in the same order) are compared pairwise:

* **p-value**: the two-sided Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`)
  on the per-user differences.  Users whose two values are equal (a zero
  difference) carry no information about which model is better and are
  dropped, Wilcoxon's own rule (``zero_method="wilcox"``); tied non-zero
  differences share their mean rank, and scipy's ``"auto"`` method uses the
  exact distribution for small samples without ties, the normal approximation
  with tie correction otherwise.  When no difference is non-zero (two
  identical models, or a row compared with itself) the p-value is exactly 1.
* **confidence interval**: a seeded percentile bootstrap of the mean
  difference (users resampled with replacement, ``resamples`` times).

>>> import numpy as np
>>> paired_comparison(np.array([0.5, 0.2, 0.0]), np.array([0.5, 0.2, 0.0])).p_value
1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from zenrec.errors import ConfigError

__all__ = ["PairedComparison", "paired_comparison", "paired_comparisons", "bootstrap_mean_ci", "wilcoxon_p",
           "TEST_NAME"]

#: how the p-value is computed, as recorded beside the numbers
TEST_NAME = "wilcoxon signed-rank, two-sided, zero differences dropped"


@dataclass(frozen=True)
class PairedComparison:
    """``a`` against ``b`` on the same users: mean difference ``a − b``, its bootstrap interval, the p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_users: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready form (``p`` for the p-value)."""
        return {"diff": self.diff, "ci_low": self.ci_low, "ci_high": self.ci_high, "p": self.p_value,
                "n_users": self.n_users}


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(f"paired values must be two 1-d arrays over the same users; got shapes {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ConfigError("paired values need at least one user")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError("paired values must be finite numbers")
    return a, b


def wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; 1.0 when none is non-zero."""
    from scipy.stats import wilcoxon

    d = np.asarray(diff, dtype=np.float64)
    if not np.any(d != 0):
        return 1.0
    p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p) else min(p, 1.0)


def bootstrap_mean_ci(
    values: np.ndarray, resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of ``values`` (users × columns, or one column).

    Every column is resampled with the same user draws (``seed``), so the
    intervals of several metrics come from one set of resamples.  Returns the
    lower and upper bounds per column (scalars as 0-d arrays for a 1-d input).
    """
    if not isinstance(resamples, (int, np.integer)) or isinstance(resamples, bool) or resamples <= 0:
        raise ConfigError(f"the 'resamples' parameter must be a positive integer; got {resamples!r}")
    if not 0 < confidence < 1:
        raise ConfigError(f"the 'confidence' parameter must lie in (0, 1); got {confidence!r}")
    v = np.asarray(values, dtype=np.float64)
    one = v.ndim == 1
    v = v.reshape(len(v), -1)
    n = v.shape[0]
    if n == 0:
        raise ConfigError("a bootstrap needs at least one value")
    rng = np.random.default_rng(seed)
    means = np.empty((int(resamples), v.shape[1]))
    chunk = max(1, min(int(resamples), 4_000_000 // n))
    for s in range(0, int(resamples), chunk):
        b = min(chunk, int(resamples) - s)
        draws = rng.integers(0, n, size=(b, n))
        # how often each user was drawn in each resample, then the weighted means of all columns at once
        counts = np.bincount((draws + np.arange(b)[:, None] * n).ravel(), minlength=b * n).reshape(b, n)
        means[s : s + b] = counts @ v / n
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return (lo[0], hi[0]) if one else (lo, hi)


def paired_comparison(
    a: np.ndarray, b: np.ndarray, resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> PairedComparison:
    """Compare per-user values ``a`` with ``b`` (same users, same order): see the module docstring."""
    return paired_comparisons({"x": a}, {"x": b}, resamples, seed, confidence)["x"]


def paired_comparisons(
    a: Mapping[str, np.ndarray],
    b: Mapping[str, np.ndarray],
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, PairedComparison]:
    """:func:`paired_comparison` for every metric the two share (metric → per-user values).

    The bootstrap draws the same users for every metric (one set of resamples),
    so it costs about as much as one comparison.
    """
    keys = [k for k in a if k in b]
    if not keys:
        return {}
    pairs = [_check_pair(a[k], b[k]) for k in keys]
    n = {len(x) for x, _ in pairs}
    if len(n) != 1:
        raise ConfigError(f"paired values must cover the same users for every metric; got lengths {sorted(n)}")
    d = np.column_stack([x - y for x, y in pairs])
    lo, hi = bootstrap_mean_ci(d, resamples, seed, confidence)
    return {
        k: PairedComparison(float(d[:, j].mean()), float(lo[j]), float(hi[j]), wilcoxon_p(d[:, j]), d.shape[0])
        for j, k in enumerate(keys)
    }
