"""The `checks:` section of a recipe: how a run's metrics are judged against history.

Recipes import this at DAG-parse time, so it imports nothing heavy (no numpy,
no scipy). Every model forbids unknown keys: a typo is an error naming its key
path. `checks: {}` gives the defaults below, explained in docs/ANALYSIS.md.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Direction = Literal["higher", "lower"]
Method = Literal["reference", "zscore", "mannwhitney", "changepoint"]
METHODS: tuple[Method, ...] = ("reference", "zscore", "mannwhitney", "changepoint")
DEFAULT_PRIMARY = ("request_rate", "output_tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "e2e_p50_ms")


class Verdict(StrEnum):
    """One verdict per metric of a run."""

    PASS = "pass"
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    INSUFFICIENT_DATA = "insufficient_data"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferenceBand(_Strict):
    """A ReFrame-style reference: `[value, lower, upper, unit]`, e.g. `[100, -0.01, 0.02, "req/s"]`.

    The band is value*(1+lower) .. value*(1+upper) (|value| for negative values):
    an absolute contract per cluster, decisive even without any history.
    """

    value: float = Field(description="Reference value")
    lower: float = Field(le=0, description="Lower bound as a fraction of the value (<= 0)")
    upper: float = Field(ge=0, description="Upper bound as a fraction of the value (>= 0)")
    unit: str = Field("", description="Unit, for the report only")

    @model_validator(mode="before")
    @classmethod
    def _from_tuple(cls, data):
        if isinstance(data, (list, tuple)):
            if len(data) not in (3, 4):
                raise ValueError("a reference is [value, lower, upper] or [value, lower, upper, unit]")
            return dict(zip(("value", "lower", "upper", "unit"), data))
        return data

    @property
    def bounds(self) -> tuple[float, float]:
        return self.value + self.lower * abs(self.value), self.value + self.upper * abs(self.value)


class ChangePointConfig(_Strict):
    """E-divisive change-point detection over the series since the last accepted change."""

    window: int = Field(50, ge=6, le=1000, description="Points per detection window (Otava: 50)")
    max_pvalue: float = Field(0.001, gt=0, lt=1, description="t-test level of a change point (Otava: 0.001)")
    min_magnitude: float = Field(0.0, ge=0, description="Smallest relative change of the mean reported")
    min_segment: int = Field(3, ge=2, description="Fewest runs on each side of a change: single spikes never count")

    @model_validator(mode="after")
    def _fits(self):
        if self.window < 2 * self.min_segment:
            raise ValueError(f"window {self.window} must be at least 2 * min_segment ({2 * self.min_segment})")
        return self


class MetricOverride(_Strict):
    """Per-metric settings; unset fields fall back to the section's values."""

    direction: Direction | None = Field(None, description="Which way is better; overrides the metric catalogue")
    z_threshold: float | None = Field(None, gt=0, description="Robust z-score beyond which a run is off")
    min_effect: float | None = Field(None, ge=0, description="Smallest relative change that counts")
    max_noise: float | None = Field(None, gt=0, description="Largest run-to-run spread (robust CV) judged")


class MetricSettings(_Strict):
    """The thresholds in force for one metric, after overrides."""

    direction: Direction
    z_threshold: float
    min_effect: float
    max_noise: float | None


class ChecksConfig(_Strict):
    """How each metric of a run is judged: pass, regression, improvement or insufficient_data."""

    comparable_by: Literal["workload", "hash", "name"] = Field(
        "workload", description=(
            "Past runs comparable with this one: the same workload (recipe name, cluster, model, resources and "
            "client settings, whatever the service's image or arguments: an upgrade stays comparable), the same "
            "effective recipe (hash), or the same recipe name"))
    window: int = Field(10, ge=2, le=1000, description="The last N comparable valid runs form the baseline")
    min_runs: int = Field(5, ge=2, description="Fewer baseline runs than this: insufficient_data")
    primary: list[str] = Field(default_factory=lambda: list(DEFAULT_PRIMARY),
                               description="Metrics that may fail the run; the others are reported only")
    fail_on: list[Literal["regression", "insufficient_data"]] = Field(
        default_factory=lambda: ["regression"], description="Verdicts of a primary metric that fail the DAG")
    methods: list[Method] = Field(default_factory=lambda: list(METHODS), description="Methods in use")
    z_threshold: float = Field(4.0, gt=0, description="Robust z-score (median/MAD) beyond which a run is off")
    alpha: float = Field(0.001, gt=0, lt=1, description=(
        "Benjamini-Hochberg-adjusted p threshold of the point test and of Mann-Whitney (asv: 0.002)"))
    min_effect: float = Field(0.05, ge=0, description="Smallest relative change that counts (0.05 = 5 %)")
    mad_floor: float = Field(0.01, ge=0, description="MAD-based scale is at least this fraction of the median")
    max_noise: float | None = Field(
        0.1, gt=0, description="Run-to-run spread (robust CV) above which a metric is too noisy to pass")
    suspect_pvalue: float = Field(
        0.05, gt=0, lt=1, description="A bad shift >= min_effect with p below this is reported, not passed")
    changepoint: ChangePointConfig = Field(default_factory=ChangePointConfig)
    references: dict[str, dict[str, ReferenceBand]] = Field(
        default_factory=dict, description="Per cluster profile: metric -> [value, lower, upper, unit]")
    metrics: dict[str, MetricOverride] = Field(default_factory=dict, description="Per-metric overrides")

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_runs > self.window:
            raise ValueError(f"min_runs ({self.min_runs}) cannot exceed window ({self.window})")
        return self

    def settings(self, metric: str, direction: Direction | None) -> MetricSettings:
        """Thresholds for `metric`; the override's direction wins over the catalogue's."""
        o = self.metrics.get(metric, MetricOverride())
        chosen = o.direction or direction
        if chosen is None:
            raise ValueError(f"metric {metric!r} has no direction (set checks.metrics.{metric}.direction)")
        return MetricSettings(
            direction=chosen,
            z_threshold=self.z_threshold if o.z_threshold is None else o.z_threshold,
            min_effect=self.min_effect if o.min_effect is None else o.min_effect,
            max_noise=self.max_noise if o.max_noise is None else o.max_noise)

    def references_for(self, profile: str) -> dict[str, ReferenceBand]:
        """The bands of one cluster profile (empty when none is set)."""
        return self.references.get(profile, {})
