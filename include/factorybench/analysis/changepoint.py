"""Change points in a nightly series: e-divisive means with a t-test.

A rolling baseline absorbs a step once half its window lies after the step, so
a regression that nobody acted on would quietly become "normal". Change-point
detection looks at the whole series instead and names the first run of each
new regime. The method follows Matteson & James (2014, "e-divisive") as
adapted by Apache Otava/Hunter (Fleming et al. 2023): the energy statistic
q-hat proposes the split, and a two-sample Student t-test (not permutations)
says whether it is real, which is fast and works with a handful of points.
Written from the papers; no code is taken from Otava.

Steps:
1. Split: in overlapping windows (`window` points, step window/2), binary
   segmentation: split at the best q-hat point while the t-test between the two
   sides is significant after a Bonferroni correction for the positions searched
   (at 10x max_pvalue), then recurse into both sides.
2. Merge: every candidate is re-tested against its final neighbours; the weakest
   (highest p-value, then smallest magnitude) is dropped until all pass max_pvalue
   and min_magnitude.

Without the correction in step 1, a stationary series of 30-50 points gets a
false change point 1.3-1.8 % of the time at max_pvalue 0.001; with it, 0.3-0.8 %
(Otava 0.8.0: 1.6-6.6 %; docs/ANALYSIS.md has the measurements).

Guards against the known false alarms: a split leaves at least `min_segment`
points on each side, and the shift must be carried by the runs (medians move
too, min_segment runs on each side sit at their own level), so a spike, a
two-run burst or the last run or two of a series is not a change point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.special import stdtr

FIRST_PASS = 10  # the split step's level, relative to max_pvalue (Otava's "weak" change points use 10x too)


@dataclass(frozen=True)
class ChangePoint:
    """The first point of a new regime, compared with the segment just before it."""

    index: int
    p_value: float
    mean_before: float
    mean_after: float
    std_before: float
    std_after: float
    n_before: int
    n_after: int

    @property
    def magnitude(self) -> float:
        """Relative change of the mean, (after - before) / |before|; inf when before is 0."""
        if self.mean_before == 0:
            return 0.0 if self.mean_after == 0 else float(np.copysign(np.inf, self.mean_after))
        return (self.mean_after - self.mean_before) / abs(self.mean_before)

    def to_dict(self) -> dict:
        """JSON-ready; magnitude is None when the mean before is 0."""
        m = self.magnitude
        return {**asdict(self), "magnitude": m if np.isfinite(m) else None}


def change_points(values: Sequence[float] | np.ndarray, window: int = 50, max_pvalue: float = 0.001,
                  min_magnitude: float = 0.0, min_segment: int = 3) -> list[ChangePoint]:
    """Significant change points of `values`, oldest first.

    `max_pvalue` is the t-test level each point must meet against its neighbours;
    its reported p_value is that nominal p. `min_magnitude` drops points whose
    relative change of the mean is smaller.
    """
    x = _series(values)
    if window < 2 * min_segment:
        raise ValueError(f"window {window} must hold two segments of min_segment {min_segment}")
    if min_segment < 2:
        raise ValueError("min_segment must be at least 2 (a t-test needs two points a side)")
    candidates: set[int] = set()
    for start in _window_starts(len(x), window):
        candidates.update(_split(x, start, min(start + window, len(x)), max_pvalue, min_segment))
    return _merge(x, sorted(candidates), max_pvalue, min_magnitude, min_segment)


def best_split(values: Sequence[float] | np.ndarray, min_segment: int = 3) -> ChangePoint | None:
    """The strongest candidate split of the whole series, significant or not.

    The evidence for "a shift was seen but is not significant". Its p_value is
    Bonferroni-corrected for the positions searched, so it means what it says.
    """
    x = _series(values)
    tau = _best_tau(x, min_segment)
    if tau is None:
        return None
    cp = _describe(x, 0, tau, len(x), min_segment)
    return replace(cp, p_value=min(1.0, cp.p_value * (len(x) - 2 * min_segment + 1)))


def _series(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError("values must be one-dimensional")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite (drop invalid runs first)")
    return x


def _window_starts(n: int, window: int) -> list[int]:
    """Starts of windows of `window` points overlapping by half, the last one ending at n."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, max(window // 2, 1)))
    if starts[-1] != n - window:
        starts.append(n - window)
    return starts


def _best_tau(x: np.ndarray, min_segment: int) -> int | None:
    """The split maximising q-hat over (tau, kappa), as in Matteson & James.

    q-hat(tau, kappa) = n m / (n + m) * E, where E is the energy distance between
    X = x[:tau] (n points) and Y = x[tau:kappa] (m points). Maximising over the
    right end kappa too lets a short bump inside a long window win. All block sums
    of |x_i - x_j| come from one 2-D prefix sum, so this is O(len(x)^2).
    """
    n = len(x)
    if n < 2 * min_segment:
        return None
    s = np.zeros((n + 1, n + 1))
    s[1:, 1:] = np.abs(x[:, None] - x[None, :]).cumsum(0).cumsum(1)
    tau = np.arange(min_segment, n - min_segment + 1)[:, None]
    kappa = np.arange(n + 1)[None, :]

    def block(a, b, c, d):  # sum of |x_i - x_j| for a <= i < b, c <= j < d
        return s[b, d] - s[a, d] - s[b, c] + s[a, c]

    left, right = tau, kappa - tau
    valid = right >= min_segment
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = block(0, tau, tau, kappa)
        within_left = block(0, tau, 0, tau) / 2
        within_right = block(tau, kappa, tau, kappa) / 2
        q = (2 * cross - 2 * right * within_left / (left - 1) - 2 * left * within_right / (right - 1)) / (left + right)
    q = np.where(valid, q, -np.inf)
    i, _ = np.unravel_index(np.argmax(q), q.shape)
    return int(tau[i, 0])


def ttest_p(before: np.ndarray, after: np.ndarray) -> float:
    """Two-sided Student t-test p-value (pooled variance): exact for Gaussian noise of one scale.

    Welch's variant was tried: with 3-run segments its variance estimate is so
    unstable that false alarms doubled; spikes are handled by _p's checks instead.
    """
    n1, n2 = len(before), len(after)
    if n1 < 2 or n2 < 2:
        return 1.0
    diff = after.mean() - before.mean()
    pooled = (((before - before.mean()) ** 2).sum() + ((after - after.mean()) ** 2).sum()) / (n1 + n2 - 2)
    if pooled == 0:
        return 1.0 if diff == 0 else 0.0
    t = diff / np.sqrt(pooled * (1 / n1 + 1 / n2))
    return float(2 * stdtr(n1 + n2 - 2, -abs(t)))  # Student t CDF; stats.t.sf costs 100x more


def _p(before: np.ndarray, after: np.ndarray, min_segment: int) -> float:
    """The t-test p of a split, or 1 unless the shift is carried by the runs rather than by one of them.

    The medians must move the same way as the means and at least half as far, and
    each side needs min_segment runs nearer its own mean than the other's. The
    pooled variance hides a spike or a two-run burst inside a short segment;
    these two checks do not.
    """
    if len(before) < min_segment or len(after) < min_segment:
        return 1.0
    mean_shift, median_shift = after.mean() - before.mean(), np.median(after) - np.median(before)
    if mean_shift * median_shift <= 0 or abs(median_shift) < abs(mean_shift) / 2:
        return 1.0
    mid = (before.mean() + after.mean()) / 2
    low_side, high_side = (before, after) if mean_shift > 0 else (after, before)
    if (low_side < mid).sum() < min_segment or (high_side > mid).sum() < min_segment:
        return 1.0
    return ttest_p(before, after)


def _describe(x: np.ndarray, lo: int, tau: int, hi: int, min_segment: int) -> ChangePoint:
    """The change point at tau tested between x[lo:tau] and x[tau:hi]."""
    before, after = x[lo:tau], x[tau:hi]
    return ChangePoint(index=tau, p_value=_p(before, after, min_segment),
                       mean_before=float(before.mean()), mean_after=float(after.mean()),
                       std_before=float(before.std()), std_after=float(after.std()),
                       n_before=len(before), n_after=len(after))


def _split(x: np.ndarray, lo: int, hi: int, max_pvalue: float, min_segment: int) -> list[int]:
    """Binary segmentation of x[lo:hi]: keep splitting while the best split is significant.

    The best of many positions always looks significant somewhere, so the split's
    p-value is multiplied by the number of positions searched (Bonferroni) and held
    to FIRST_PASS * max_pvalue; the merge step then applies max_pvalue itself.
    """
    found, todo = [], [(lo, hi)]
    while todo:
        a, b = todo.pop()
        tau = _best_tau(x[a:b], min_segment)
        positions = b - a - 2 * min_segment + 1
        if tau is None or _p(x[a:a + tau], x[a + tau:b], min_segment) * positions > FIRST_PASS * max_pvalue:
            continue
        found.append(a + tau)
        todo += [(a, a + tau), (a + tau, b)]
    return found


def _merge(x: np.ndarray, indices: list[int], max_pvalue: float, min_magnitude: float,
           min_segment: int) -> list[ChangePoint]:
    """Re-test each candidate between its neighbours; drop the weakest until all pass.

    Candidates from overlapping windows may sit one or two runs apart; the segment
    between them is shorter than min_segment, so one of the pair gets p=1 and goes.
    """
    while indices:
        bounds = [0, *indices, len(x)]
        cps = [_describe(x, bounds[k], bounds[k + 1], bounds[k + 2], min_segment) for k in range(len(indices))]
        weakest = max(range(len(cps)), key=lambda k: cps[k].p_value)
        if cps[weakest].p_value > max_pvalue:
            del indices[weakest]
            continue
        smallest = min(range(len(cps)), key=lambda k: abs(cps[k].magnitude))
        if abs(cps[smallest].magnitude) < min_magnitude:
            del indices[smallest]
            continue
        return cps
    return []
