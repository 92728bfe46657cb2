"""Load profiles: generators of steps that receive each step's summary.

A `Step` says only *when* requests go out (closed loop of N users, or
precomputed open-loop arrival times) and when to stop; nothing here knows about
LLMs. Adaptive profiles (sweep, capacity search) decide their next step from the
previous step's `Summary`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from factorybench.load.config import ProfileConfig, SLOConfig
from factorybench.load.stats import Summary


class Step(BaseModel):
    """One homogeneous stretch of load."""

    label: str = Field(..., description="Human name, e.g. 'synchronous', 'rate 12.5/s', 'probe 3'")
    mode: Literal["closed", "open"] = Field(..., description="Closed loop (N users) or open loop (arrival times)")
    streams: int = Field(1, description="Closed loop: concurrent users")
    rate: float | None = Field(None, description="Open loop: mean requests/s")
    arrival: Literal["constant", "poisson", "gamma"] = Field("constant", description="Open loop: arrival process")
    burstiness: float = Field(1.0, description="Gamma shape (1 = Poisson, below 1 burstier)")
    max_concurrency: int | None = Field(None, description="Open loop: in-flight cap; waiting is queue time")
    duration_s: float | None = Field(None, description="Stop sending after this long")
    max_requests: int | None = Field(None, description="Stop after this many requests, warm-up included")
    warmup_requests: int = Field(0, description="First requests excluded from statistics")
    warmup_s: float = Field(0.0, description="Requests sent before this time are excluded")
    seed: int = Field(0, description="Seed of the arrival times")
    op: str | None = Field(None, description="The phase a driver runs (vector: insert); None: the protocol's requests")


def arrival_times(step: Step) -> np.ndarray:
    """Planned send times (s from start), all computed before the run so sending never drifts."""
    if step.rate is None:
        raise ValueError("open-loop step without a rate")
    rng = np.random.default_rng(step.seed)
    limit = step.max_requests or np.iinfo(np.int64).max
    horizon = step.duration_s if step.duration_s is not None else np.inf
    batch = int(min(limit, step.rate * (horizon if np.isfinite(horizon) else 0) * 1.2 + 64))
    parts, t0, n = [], 0.0, 0
    while n < limit:
        gaps = _gaps(step, rng, batch)
        times = t0 + np.concatenate(([0.0], np.cumsum(gaps[:-1])))
        times = times[times < horizon][: limit - n]
        parts.append(times)
        n += len(times)
        if len(times) < batch:
            break
        t0 = times[-1] + gaps[-1]
    return np.concatenate(parts) if parts else np.empty(0)


def _gaps(step: Step, rng: np.random.Generator, n: int) -> np.ndarray:
    mean = 1.0 / (step.rate or 1.0)
    if step.arrival == "constant":
        return np.full(n, mean)
    if step.arrival == "poisson":
        return rng.exponential(mean, n)
    # shape b, scale mean/b: the mean gap stays 1/rate while the coefficient of variation is 1/sqrt(b)
    return rng.gamma(step.burstiness, mean / step.burstiness, n)


class Probe(BaseModel):
    """One rate tried by the capacity search."""

    rate: float = Field(..., description="Offered rate (req/s)")
    passed: bool = Field(..., description="Every p99 SLO and the error-rate limit held")
    reasons: list[str] = Field(default_factory=list, description="What failed")
    achieved_rate: float = Field(0.0, description="Measured successful requests/s")


class CapacityResult(BaseModel):
    """Highest rate where the p99 SLOs held, with the bracket that bounds the true capacity."""

    rate: float | None = Field(None, description="Highest passing rate (None: even the lowest probe failed)")
    last_pass: float | None = Field(None, description="Lower end of the bracket")
    first_fail: float | None = Field(None, description="Upper end of the bracket (None: never failed)")
    rel_width: float | None = Field(None, description="(first_fail - last_pass) / last_pass")
    converged: bool = Field(False, description="The bracket got narrower than rel_tolerance")
    probes: list[Probe] = Field(default_factory=list, description="Every probe in order")


def judge(summary: Summary, slo: SLOConfig, max_error_rate: float) -> list[str]:
    """Reasons a step fails the capacity criteria (empty: it passes)."""
    reasons = []
    if summary.requests == 0:
        reasons.append("no successful requests")
    if summary.error_rate > max_error_rate:
        reasons.append(f"error rate {summary.error_rate:.1%} > {max_error_rate:.1%}")
    for name, limit in (("ttft", slo.ttft_ms), ("tpot", slo.tpot_ms), ("e2e", slo.e2e_ms)):
        p99 = getattr(summary, f"{name}_ms").p99
        if limit is not None and (p99 is None or p99 > limit):
            reasons.append(f"{name} p99 {p99 if p99 is None else round(p99, 2)} ms > {limit:g} ms")
    if not summary.valid:
        reasons.append("client invalid: " + "; ".join(summary.invalid_reasons))
    return reasons


Profile = Generator[Step, Summary, CapacityResult | None]


def steps(cfg: ProfileConfig, slo: SLOConfig) -> Profile:
    """The profile's steps; send each step's Summary back in. Returns the capacity result, if any."""
    common = dict(duration_s=cfg.duration_s, max_requests=cfg.max_requests, warmup_requests=cfg.warmup_requests,
                  warmup_s=cfg.warmup_s, seed=cfg.seed)
    closed = dict(mode="closed", **common)
    opened = dict(mode="open", max_concurrency=cfg.max_concurrency, **common)
    if cfg.kind == "synchronous":
        yield Step(label="synchronous", streams=1, **closed)
    elif cfg.kind == "concurrent":
        yield Step(label=f"concurrent {cfg.streams}", streams=cfg.streams, **closed)
    elif cfg.kind in ("constant", "poisson", "gamma"):
        yield Step(label=f"{cfg.kind} {cfg.rate:g}/s", rate=cfg.rate, arrival=cfg.kind,
                   burstiness=cfg.burstiness, **opened)
    elif cfg.kind == "sweep":
        low = yield Step(label="synchronous", streams=1, **closed)
        high = yield Step(label=f"throughput {cfg.streams}", streams=cfg.streams, **closed)
        for rate in np.linspace(low.request_rate, high.request_rate, cfg.sweep_points + 2)[1:-1]:
            if rate > 0:
                yield Step(label=f"rate {rate:.3g}/s", rate=float(rate), arrival=cfg.sweep_arrival, **opened)
    else:
        return (yield from capacity_search(cfg, slo, opened))
    return None


def capacity_search(cfg: ProfileConfig, slo: SLOConfig, opened: dict) -> Profile:
    """Doubles (or halves) until the SLOs flip, then bisects the bracket [last pass, first fail]."""
    last_pass: float | None = None
    first_fail: float | None = None
    probes: list[Probe] = []
    rate = cfg.rate_lo or 1.0
    for n in range(cfg.max_probes):
        summary = yield Step(label=f"probe {n + 1}: {rate:.4g}/s", rate=rate, arrival=cfg.sweep_arrival, **opened)
        reasons = judge(summary, slo, cfg.max_error_rate)
        probes.append(Probe(rate=rate, passed=not reasons, reasons=reasons, achieved_rate=summary.request_rate))
        if reasons:
            first_fail = rate if first_fail is None else min(first_fail, rate)
        else:
            last_pass = rate if last_pass is None else max(last_pass, rate)
        if last_pass is not None and first_fail is not None:
            if (first_fail - last_pass) / last_pass <= cfg.rel_tolerance:
                break
            rate = (last_pass + first_fail) / 2
        elif first_fail is None:
            rate = cfg.rate_hi if cfg.rate_hi and rate < cfg.rate_hi else rate * 2
        else:
            rate = rate / 2
    width = (first_fail - last_pass) / last_pass if last_pass and first_fail else None
    return CapacityResult(rate=last_pass, last_pass=last_pass, first_fail=first_fail, rel_width=width,
                          converged=width is not None and width <= cfg.rel_tolerance, probes=probes)
