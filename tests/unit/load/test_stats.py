"""Percentiles from raw values, exact merging of shares, and JSON / file round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from factorybench.load.config import LoadConfig, SLOConfig
from factorybench.load.distributed import merge, write_plan
from factorybench.load.guard import ProcessHealth, merge_health
from factorybench.load.profiles import Step
from factorybench.load.result import LoadResult, StepResult
from factorybench.load.samples import ErrorClass, Sample, TokenSource, save_samples
from factorybench.load.stats import Distribution, summarize


def _samples(n: int, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sent = i * 0.01
        ttft = float(rng.lognormal(3.9, 0.4))
        itl = [float(x) for x in rng.gamma(4, 2.5, 15)]
        err = ErrorClass.HTTP_5XX if i % 17 == 0 else None
        out.append(Sample(index=i, worker=i % 3, warmup=i < 5, planned_s=sent, sent_s=sent + 1e-4,
                          done_s=sent + (ttft + sum(itl)) / 1e3, ttft_ms=None if err else ttft,
                          e2e_ms=None if err else ttft + sum(itl), itl_ms=[] if err else itl, chunks=16,
                          output_tokens=16, output_tokens_source=TokenSource.USAGE, prompt_tokens=10,
                          prompt_tokens_source=TokenSource.USAGE, status=500 if err else 200, error=err))
    return out


def test_distribution_matches_numpy() -> None:
    values = np.random.default_rng(2).exponential(10, 5001)
    d = Distribution.of(values)
    assert [d.p50, d.p90, d.p95, d.p99, d.p999] == pytest.approx(np.percentile(values, [50, 90, 95, 99, 99.9]))
    assert d.mean == pytest.approx(values.mean()) and d.std == pytest.approx(values.std()) and d.count == 5001
    assert Distribution.of([]).count == 0 and Distribution.of([]).p50 is None


def test_summary_counts_throughput_tpot_goodput() -> None:
    samples = _samples(300)
    s = summarize(samples, SLOConfig(ttft_ms=60, tpot_ms=12))
    measured = [x for x in samples if not x.warmup]
    ok = [x for x in measured if x.error is None]
    assert s.warmup_requests == 5 and s.requests == len(ok) and s.errors == len(measured) - len(ok)
    assert s.errors_by_class == {"http_5xx": s.errors}
    duration = max(x.done_s for x in measured) - min(x.sent_s for x in measured)
    assert s.request_rate == pytest.approx(len(ok) / duration)
    assert s.output_tokens_per_s == pytest.approx(16 * len(ok) / duration)
    assert s.itl_ms.p50 == pytest.approx(np.percentile([v for x in ok for v in x.itl_ms], 50))
    tpot = [(x.e2e_ms - x.ttft_ms) / 15 for x in ok]
    assert s.tpot_ms.p99 == pytest.approx(np.percentile(tpot, 99))
    good = sum(x.ttft_ms <= 60 and t <= 12 for x, t in zip(ok, tpot))
    assert s.goodput_fraction == pytest.approx(good / len(ok)) and 0 < good < len(ok)
    assert s.tokens_per_chunk == 1.0 and s.output_tokens_source == {"usage": len(ok)}


def test_merge_of_shares_is_exact(tmp_path: Path) -> None:
    """Three shares written separately merge to exactly the single-process aggregate."""
    samples = _samples(500)
    config = LoadConfig(target="http://x")
    write_plan(tmp_path, config, Step(label="s", mode="closed", max_requests=500), 0)
    health = [ProcessHealth(loop_lag_ms=[float(k), k + 0.5], cpu_fraction=0.1 * k) for k in range(3)]
    for k in range(3):
        save_samples([s for s in samples if s.worker == k], tmp_path / f"task-{k}" / "samples.parquet")
        (tmp_path / f"task-{k}" / "health.json").write_text(health[k].model_dump_json())
    merged = merge(tmp_path)
    direct = summarize(samples, config.slo, merge_health(health))
    assert merged.summary.requests + merged.summary.errors + merged.summary.warmup_requests == 500
    for field in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
        assert getattr(merged.summary, field) == getattr(direct, field)
    assert merged.summary.request_rate == direct.request_rate
    assert merged.summary.client.loop_lag_ms.max == 2.5 and merged.summary.client.cpu_fraction == 0.2
    assert (tmp_path / "summary.json").exists()


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_load_result_round_trip(tmp_path: Path, fmt: str) -> None:
    samples = _samples(40)
    summary = summarize(samples, SLOConfig())
    result = LoadResult(config=LoadConfig(target="http://x"), summary=summary, samples=samples,
                        steps=[StepResult(index=0, step=Step(label="s", mode="closed", max_requests=1),
                                          summary=summary)])
    assert LoadResult.model_validate_json(result.model_dump_json()) == result.model_copy(update={"samples": []})
    back = LoadResult.load(result.save(tmp_path, fmt))
    assert back.samples == samples and back.summary == summary


def test_a_multi_step_runs_rate_is_over_the_sum_of_its_steps_spans() -> None:
    """Each step's clock starts at 0: two 1-second steps of 10 requests are 20 requests in 2 s, not in 1 s."""
    samples = [Sample(index=i, step=step, planned_s=i / 10, sent_s=i / 10, done_s=i / 10 + 0.1, ttft_ms=10.0,
                      e2e_ms=100.0, chunks=1, output_tokens=1) for step in (0, 1) for i in range(10)]
    summary = summarize(samples, SLOConfig())
    assert summary.duration_s == pytest.approx(2.0) and summary.request_rate == pytest.approx(10.0)
