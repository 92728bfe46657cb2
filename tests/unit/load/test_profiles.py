"""Arrival times, step generation and the capacity search on a synthetic server model."""

from __future__ import annotations

import numpy as np
import pytest

from factorybench.load.config import ProfileConfig, SLOConfig
from factorybench.load.profiles import CapacityResult, Step, arrival_times, steps
from factorybench.load.stats import Distribution, Summary


def _open(**kw) -> Step:
    return Step(label="t", mode="open", **kw)


def test_poisson_rate_and_seed() -> None:
    t = arrival_times(_open(rate=200, arrival="poisson", max_requests=20000, seed=3))
    assert len(t) == 20000 and t[0] == 0 and np.all(np.diff(t) >= 0)
    assert abs(len(t) / t[-1] - 200) / 200 < 0.03
    gaps = np.diff(t)
    assert abs(gaps.std() / gaps.mean() - 1) < 0.05  # exponential: CV 1
    assert np.array_equal(t, arrival_times(_open(rate=200, arrival="poisson", max_requests=20000, seed=3)))
    assert not np.array_equal(t, arrival_times(_open(rate=200, arrival="poisson", max_requests=20000, seed=4)))


@pytest.mark.parametrize("b", [0.25, 1.0, 4.0])
def test_gamma_burstiness_sets_cv_not_rate(b: float) -> None:
    gaps = np.diff(arrival_times(_open(rate=50, arrival="gamma", burstiness=b, max_requests=40000)))
    assert abs(gaps.mean() - 1 / 50) / (1 / 50) < 0.03
    assert abs(gaps.std() / gaps.mean() - 1 / np.sqrt(b)) < 0.06


def test_duration_bound_and_constant() -> None:
    t = arrival_times(_open(rate=10, arrival="constant", duration_s=2.0))
    assert np.allclose(t, np.arange(20) / 10)
    t = arrival_times(_open(rate=1000, arrival="poisson", duration_s=5.0, max_requests=100))
    assert len(t) == 100
    t = arrival_times(_open(rate=1000, arrival="poisson", duration_s=5.0))
    assert t[-1] < 5.0 and abs(len(t) - 5000) < 300


def _summary(p99_ttft: float, rate: float = 1.0) -> Summary:
    return Summary(requests=100, request_rate=rate, ttft_ms=Distribution(count=100, p99=p99_ttft))


def _drive(cfg: ProfileConfig, slo: SLOConfig, server) -> tuple[list[Step], CapacityResult | None]:
    gen, seen = steps(cfg, slo), []
    try:
        step = next(gen)
        while True:
            seen.append(step)
            step = gen.send(server(step))
    except StopIteration as stop:
        return seen, stop.value


def test_capacity_search_converges_on_synthetic_server() -> None:
    capacity = 37.3  # a queue: latency explodes past this rate

    def server(step: Step) -> Summary:
        return _summary(100 if step.rate and step.rate <= capacity else 5000, step.rate or 0)

    cfg = ProfileConfig(kind="capacity", max_requests=10, rate_lo=2, rel_tolerance=0.02, max_probes=20)
    seen, result = _drive(cfg, SLOConfig(ttft_ms=500), server)
    assert result is not None and result.converged
    assert result.last_pass <= capacity < result.first_fail
    assert result.rate == result.last_pass and capacity - result.rate < 0.02 * capacity
    assert len(result.probes) == len(seen) and all(s.mode == "open" for s in seen)


def test_capacity_search_halves_when_lowest_rate_fails_and_reports_unconverged() -> None:
    cfg = ProfileConfig(kind="capacity", max_requests=10, rate_lo=100, max_probes=4)
    _, result = _drive(cfg, SLOConfig(ttft_ms=500), lambda s: _summary(100 if s.rate <= 3 else 900))
    assert result and result.rate is None and not result.converged
    assert [p.rate for p in result.probes] == [100, 50, 25, 12.5]


def test_sweep_spans_synchronous_to_throughput() -> None:
    cfg = ProfileConfig(kind="sweep", streams=32, sweep_points=3, max_requests=10)
    seen, result = _drive(cfg, SLOConfig(), lambda s: _summary(1, 10.0 if s.streams == 1 else 50.0))
    assert result is None
    assert [s.label for s in seen[:2]] == ["synchronous", "throughput 32"]
    assert [s.rate for s in seen[2:]] == [20.0, 30.0, 40.0]


def test_profile_needs_a_bound_and_a_rate() -> None:
    with pytest.raises(ValueError, match="duration_s and/or max_requests"):
        ProfileConfig(kind="concurrent")
    with pytest.raises(ValueError, match="needs a rate"):
        ProfileConfig(kind="poisson", duration_s=1)
