"""Distributions built once from raw values, and the per-step summary.

Percentiles always come from the full set of raw values (numpy's linear
interpolation), never from averaging percentiles of parts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from factorybench.load.config import SLOConfig
from factorybench.load.samples import Sample

PERCENTILES = (50, 90, 95, 99, 99.9)


class Distribution(BaseModel):
    """Summary of raw values (milliseconds unless the field name says otherwise)."""

    count: int = Field(0, description="Number of values")
    mean: float | None = Field(None, description="Arithmetic mean")
    std: float | None = Field(None, description="Population standard deviation")
    min: float | None = Field(None, description="Smallest value")
    max: float | None = Field(None, description="Largest value")
    p50: float | None = Field(None, description="Median")
    p90: float | None = Field(None, description="90th percentile")
    p95: float | None = Field(None, description="95th percentile")
    p99: float | None = Field(None, description="99th percentile")
    p999: float | None = Field(None, description="99.9th percentile")

    @classmethod
    def of(cls, values: Iterable[float] | np.ndarray) -> Distribution:
        arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
        if arr.size == 0:
            return cls()
        p = np.percentile(arr, PERCENTILES)
        return cls(count=int(arr.size), mean=float(arr.mean()), std=float(arr.std()), min=float(arr.min()),
                   max=float(arr.max()), p50=float(p[0]), p90=float(p[1]), p95=float(p[2]), p99=float(p[3]),
                   p999=float(p[4]))


class ClientHealth(BaseModel):
    """How hard the client itself worked; the evidence behind `valid`."""

    processes: int = Field(1, description="Client processes whose health was merged")
    loop_lag_ms: Distribution = Field(default_factory=Distribution, description="Event-loop timer lateness")
    cpu_fraction: float = Field(0.0, description="Highest per-process mean of CPU time / wall time")
    cpu_peak: float = Field(0.0, description="Highest CPU fraction over any one-second interval")


class Summary(BaseModel):
    """Aggregates of one step (or of a whole run) from its non-warm-up samples."""

    requests: int = Field(0, description="Successful requests")
    errors: int = Field(0, description="Failed requests")
    error_rate: float = Field(0.0, description="errors / (requests + errors)")
    errors_by_class: dict[str, int] = Field(default_factory=dict, description="Failed requests per error class")
    warmup_requests: int = Field(0, description="Requests excluded as warm-up")
    duration_s: float = Field(0.0, description="First send to last completion of the measured requests")
    request_rate: float = Field(0.0, description="Successful requests / duration")
    output_tokens_per_s: float = Field(0.0, description="Output tokens of successful requests / duration")
    total_tokens_per_s: float = Field(0.0, description="(prompt + output) tokens / duration")
    goodput_rate: float | None = Field(None, description="Requests/s meeting every SLO at once (None: no SLO)")
    goodput_fraction: float | None = Field(None, description="Share of successful requests meeting every SLO")
    ttft_ms: Distribution = Field(default_factory=Distribution, description="Time to first content chunk")
    itl_ms: Distribution = Field(default_factory=Distribution, description="Gaps between content chunks")
    tpot_ms: Distribution = Field(default_factory=Distribution, description="(E2E - TTFT) / (output tokens - 1)")
    e2e_ms: Distribution = Field(default_factory=Distribution, description="Send to last content chunk")
    queue_ms: Distribution = Field(default_factory=Distribution, description="Client-side wait for a cap slot")
    lateness_ms: Distribution = Field(default_factory=Distribution, description="Actual - planned send - queue")
    tokens_per_chunk: float | None = Field(None, description="Mean output tokens per content chunk")
    output_tokens_source: dict[str, int] = Field(default_factory=dict, description="Requests per token-count source")
    ttft_p50_ms: float | None = Field(None, description="Shortcut for ttft_ms.p50")
    ttft_p99_ms: float | None = Field(None, description="Shortcut for ttft_ms.p99")
    itl_p50_ms: float | None = Field(None, description="Shortcut for itl_ms.p50")
    tpot_p50_ms: float | None = Field(None, description="Shortcut for tpot_ms.p50")
    e2e_p50_ms: float | None = Field(None, description="Shortcut for e2e_ms.p50")
    client: ClientHealth = Field(default_factory=ClientHealth, description="Client load during the measurement")
    valid: bool = Field(True, description="False when the client could not keep up")
    invalid_reasons: list[str] = Field(default_factory=list, description="Why the run is invalid")


def meets_slo(s: Sample, slo: SLOConfig) -> bool:
    """All objectives at once (DistServe goodput); an unknown TPOT fails a set TPOT objective."""
    checks = ((slo.ttft_ms, s.ttft_ms), (slo.tpot_ms, s.tpot_ms), (slo.e2e_ms, s.e2e_ms))
    return all(limit is None or (value is not None and value <= limit) for limit, value in checks)


def summarize(samples: Sequence[Sample], slo: SLOConfig, client: ClientHealth | None = None) -> Summary:
    measured = [s for s in samples if not s.warmup]
    ok = [s for s in measured if s.error is None]
    errors = Counter(s.error.value for s in measured if s.error is not None)
    duration = (max(s.done_s for s in measured) - min(s.sent_s for s in measured)) if measured else 0.0
    per_s = 1 / duration if duration > 0 else 0.0
    out_tokens = sum(s.output_tokens or 0 for s in ok)
    in_tokens = sum(s.prompt_tokens or 0 for s in ok)
    chunks = sum(s.chunks for s in ok)
    itl = np.fromiter((x for s in ok for x in s.itl_ms), dtype=float)
    good = sum(meets_slo(s, slo) for s in ok) if slo.is_set() else None
    summary = Summary(
        requests=len(ok), errors=sum(errors.values()), errors_by_class=dict(errors),
        error_rate=sum(errors.values()) / len(measured) if measured else 0.0,
        warmup_requests=len(samples) - len(measured), duration_s=duration,
        request_rate=len(ok) * per_s, output_tokens_per_s=out_tokens * per_s,
        total_tokens_per_s=(out_tokens + in_tokens) * per_s,
        goodput_rate=None if good is None else good * per_s,
        goodput_fraction=None if good is None or not ok else good / len(ok),
        ttft_ms=Distribution.of(s.ttft_ms for s in ok if s.ttft_ms is not None),
        itl_ms=Distribution.of(itl),
        tpot_ms=Distribution.of(t for s in ok if (t := s.tpot_ms) is not None),
        e2e_ms=Distribution.of(s.e2e_ms for s in ok if s.e2e_ms is not None),
        queue_ms=Distribution.of(s.queue_s * 1e3 for s in measured),
        lateness_ms=Distribution.of(s.lateness_s * 1e3 for s in measured),
        tokens_per_chunk=out_tokens / chunks if chunks and out_tokens else None,
        output_tokens_source=dict(Counter(s.output_tokens_source.value for s in ok if s.output_tokens_source)),
        client=client or ClientHealth(),
    )
    summary.ttft_p50_ms, summary.ttft_p99_ms = summary.ttft_ms.p50, summary.ttft_ms.p99
    summary.itl_p50_ms, summary.tpot_p50_ms = summary.itl_ms.p50, summary.tpot_ms.p50
    summary.e2e_p50_ms = summary.e2e_ms.p50
    return summary
