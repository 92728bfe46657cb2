"""What the methods measured about one metric, before any verdict: plain, JSON-ready records."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from factorybench.analysis.config import ReferenceBand
from factorybench.analysis.stats import Baseline, SampleTest

Key = str | int


@dataclass(frozen=True)
class ChangeEvidence:
    """Where the metric's level changed, since the latest accepted change.

    significant: e-divisive found change points; before/after are then the first
    and the last segment (the accepted normal and the current level), and `key`
    is the first run of the first change that goes the same way as the net change.
    Otherwise this is the strongest candidate split, reported only: its p-value
    is nominal, the best of many positions.
    """

    key: Key
    significant: bool
    p_value: float
    p_adjusted: float  # Benjamini-Hochberg across the run's metrics (= p_value until adjusted)
    mean_before: float
    mean_after: float
    magnitude: float  # mean_after / mean_before - 1
    keys: tuple[Key, ...] = ()  # every significant change point, oldest first


@dataclass(frozen=True)
class ReferenceCheck:
    """The value against the cluster's ReFrame-style band."""

    value: float
    lower: float
    upper: float
    unit: str
    low: float
    high: float
    position: Literal["below", "inside", "above"]

    @classmethod
    def of(cls, band: ReferenceBand, value: float) -> ReferenceCheck:
        low, high = band.bounds
        position = "below" if value < low else "above" if value > high else "inside"
        return cls(band.value, band.lower, band.upper, band.unit, low, high, position)


@dataclass(frozen=True)
class Evidence:
    """Everything measured about one metric of one run."""

    metric: str
    direction: Literal["higher", "lower"]
    value: float | None
    baseline: Baseline | None = None
    z: float | None = None  # robust z-score: (value - median) / scale
    point_p: float | None = None  # t prediction-interval p-value of this run against the baseline
    point_p_adjusted: float | None = None  # Benjamini-Hochberg across the run's metrics
    delta: float | None = None  # value - baseline median
    delta_rel: float | None = None  # delta / |baseline median|
    samples: SampleTest | None = None
    change: ChangeEvidence | None = None
    reference: ReferenceCheck | None = None
    noise: float | None = None  # robust CV of the recent series around its segment medians

    def to_dict(self) -> dict:
        return clean(asdict(self))


def clean(obj: Any) -> Any:
    """JSON-ready: tuples become lists, non-finite floats None (JSON has no inf or NaN)."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
