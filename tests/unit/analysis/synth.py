"""Synthetic nightly series: a level of 100 with relative Gaussian noise, seeded, optionally with a step."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from factorybench.analysis.judge import History, Point


def make_series(seed: int, n: int, noise: float, step_at: int | None = None, step: float = 0.0) -> np.ndarray:
    """n runs of 100 * (1 + noise * N(0, 1)); from run `step_at` on, the level is multiplied by 1 + step."""
    x = 100 * (1 + noise * np.random.default_rng(seed).standard_normal(n))
    if step_at is not None:
        x[step_at:] *= 1 + step
    return x


def make_history(values: Iterable[float], accepted: Iterable[int] = (), invalid: Iterable[int] = ()) -> History:
    """Runs keyed by their index, oldest first."""
    bad = set(invalid)
    return History([Point(i, float(v), valid=i not in bad) for i, v in enumerate(values)], frozenset(accepted))
