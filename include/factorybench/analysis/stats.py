"""Statistics of one metric: robust baseline, Mann-Whitney with effect sizes, Benjamini-Hochberg.

Median and MAD rather than mean and standard deviation, because one bad night
(a node with a broken GPU) should not widen the band that judges the next ten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import stdtr

MAD_SCALE = 1.4826  # MAD * 1.4826 estimates the standard deviation of Gaussian noise


@dataclass(frozen=True)
class Baseline:
    """The rolling baseline: the last N comparable valid runs since the latest accepted change.

    Median and MAD size a change (the robust z-score: one odd past run does not
    move it); mean and standard deviation give its p-value, because with 5-10
    runs the MAD is so unstable that |z| > 4 happens in 1-5 % of unchanged runs.
    """

    median: float
    mad: float
    scale: float  # max(MAD_SCALE * mad, mad_floor * |median|): the z-score's unit
    mean: float
    std: float  # sample standard deviation (ddof=1)
    n: int
    keys: tuple[str | int, ...]

    @classmethod
    def of(cls, values: Sequence[float], keys: Sequence[str | int], mad_floor: float) -> Baseline:
        x = np.asarray(values, dtype=float)
        if x.size < 2:
            raise ValueError("a baseline needs at least two runs")
        median = float(np.median(x))
        mad = float(np.median(np.abs(x - median)))
        return cls(median=median, mad=mad, scale=max(MAD_SCALE * mad, mad_floor * abs(median)),
                   mean=float(x.mean()), std=float(x.std(ddof=1)), n=int(x.size), keys=tuple(keys))

    def z(self, value: float) -> float:
        """Robust z-score; +-inf for any change when the baseline is constant at 0."""
        delta = value - self.median
        if self.scale == 0:
            return 0.0 if delta == 0 else float(np.copysign(np.inf, delta))
        return delta / self.scale

    def p_value(self, value: float) -> float:
        """Two-sided p-value of one new run from the t prediction interval, (x - mean) / (s sqrt(1 + 1/n))
        with n-1 degrees of freedom: exact for Gaussian noise however few the runs."""
        if self.std == 0:
            return 1.0 if value == self.mean else 0.0
        t = (value - self.mean) / (self.std * np.sqrt(1 + 1 / self.n))
        return float(2 * stdtr(self.n - 1, -abs(t)))


@dataclass(frozen=True)
class SampleTest:
    """Mann-Whitney U between this run's raw samples and the baseline runs' pooled samples."""

    p_value: float
    p_adjusted: float  # Benjamini-Hochberg across the run's metrics (= p_value until adjusted)
    median_shift: float  # median(current) / median(baseline) - 1
    cliffs_delta: float  # P(current > baseline) - P(current < baseline), in [-1, 1]
    n_current: int
    n_baseline: int


def mann_whitney(current: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray) -> SampleTest:
    """Two-sided test plus effect sizes: with 10,000 samples a side even a 0.3 % shift is
    "significant", so the caller also requires |median_shift| >= min_effect (asv: ratio AND p)."""
    cur, base = np.asarray(current, dtype=float), np.asarray(baseline, dtype=float)
    if cur.size == 0 or base.size == 0:
        raise ValueError("Mann-Whitney needs samples on both sides")
    res = stats.mannwhitneyu(cur, base, alternative="two-sided")
    base_median = float(np.median(base))
    shift = float(np.median(cur) / base_median - 1) if base_median else 0.0
    cliffs = 2 * float(res.statistic) / (cur.size * base.size) - 1  # U counts current > baseline, ties half
    p = float(res.pvalue)
    return SampleTest(p_value=p, p_adjusted=p, median_shift=shift, cliffs_delta=cliffs,
                      n_current=int(cur.size), n_baseline=int(base.size))


def benjamini_hochberg(pvalues: Sequence[float | None]) -> list[float | None]:
    """BH-adjusted p-values (step-up, monotone, capped at 1); None entries are skipped.

    Controls the expected share of false discoveries among the metrics flagged,
    which suits "which of these 20 metrics moved" better than Bonferroni's
    any-false-alarm control, which would blind the check to real 5-10 % changes.
    """
    present = [(i, p) for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    if not present:
        return out
    idx = np.array([i for i, _ in present])
    p = np.array([v for _, v in present], dtype=float)
    m = len(p)
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    for j, k in enumerate(order):
        out[int(idx[k])] = float(adjusted[j])
    return out
