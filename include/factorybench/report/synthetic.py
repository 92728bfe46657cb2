"""A synthetic but self-consistent run, for the report's tests, benchmark and screenshots.

The samples are drawn from a simple queueing model (latency grows as the offered load nears a
capacity), and everything else is computed from them by the load engine's own code
(`summarize`, `LoadResult.save`), so the summary and the samples agree exactly as in a real run.
"""

from __future__ import annotations

import io
import json
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from factorybench.load.config import LoadConfig
from factorybench.load.profiles import Step
from factorybench.load.result import LoadResult, StepResult
from factorybench.load.samples import ErrorClass, Sample, TokenSource
from factorybench.load.stats import summarize

CAPACITY = 40.0  # req/s the modelled server saturates at


def _step_samples(rng: np.random.Generator, index: int, n: int, rate: float, streams: int | None,
                  ttft_ms: float, itl_ms: float, error_rate: float, warmup: int) -> list[Sample]:
    load = min(rate / CAPACITY, 0.97)
    slow = 1 + load / (1 - load)  # M/M/1-like growth of the waiting part
    out: list[Sample] = []
    gaps = rng.exponential(1 / rate, n)
    sent = np.cumsum(gaps) - gaps[0]
    for i in range(n):
        tokens = int(rng.integers(24, 96))
        ttft = float(ttft_ms * slow * rng.lognormal(0, 0.25))
        itl = (itl_ms * (1 + 0.3 * load) * rng.lognormal(0, 0.2, tokens - 1)).tolist()
        e2e = ttft + sum(itl)
        failed = rng.random() < error_rate
        s0 = float(sent[i])
        if failed:
            out.append(Sample(index=i, step=index, warmup=i < warmup, planned_s=s0, sent_s=s0,
                              done_s=s0 + ttft / 1e3, status=503, error=ErrorClass.HTTP_5XX,
                              error_detail="503 Service Unavailable"))
            continue
        out.append(Sample(index=i, step=index, worker=i % 2, warmup=i < warmup, planned_s=s0, sent_s=s0,
                          done_s=s0 + e2e / 1e3, ttft_ms=ttft, e2e_ms=e2e, itl_ms=itl, chunks=tokens,
                          prompt_tokens=128, prompt_tokens_source=TokenSource.USAGE, output_tokens=tokens,
                          output_tokens_source=TokenSource.USAGE, status=200))
    return out


def synthetic_run(n: int = 10_000, *, sweep: bool = False, seed: int = 0, ttft_ms: float = 60.0,
                  itl_ms: float = 12.0, error_rate: float = 0.002,
                  slo: dict[str, float] | None = None) -> tuple[dict[str, Any], pa.Table]:
    """(LoadResult JSON, samples Table) of a run of `n` requests: one step at 60 % of capacity, or a
    sweep (synchronous, throughput, then rates up to saturation) of about n requests in all."""
    rng = np.random.default_rng(seed)
    slo = slo if slo is not None else {"ttft_ms": 200.0, "tpot_ms": 25.0}
    if sweep:
        plan = [Step(label="synchronous", mode="closed", streams=1)]
        plan.append(Step(label="throughput 64", mode="closed", streams=64))
        plan += [Step(label=f"rate {r:.3g}/s", mode="open", rate=float(r), arrival="poisson")
                 for r in np.linspace(4, CAPACITY * 0.9, 7)[1:-1]]  # as the sweep profile spaces them
        offered = [4.0, CAPACITY * 0.9] + [s.rate for s in plan[2:]]
        profile = {"kind": "sweep", "streams": 64, "sweep_points": 5, "max_requests": max(n // 7, 10)}
    else:
        plan = [Step(label="poisson 24/s", mode="open", rate=24.0, arrival="poisson")]
        offered = [24.0]
        profile = {"kind": "poisson", "rate": 24.0, "max_requests": n}
    per_step = max(n // len(plan), 10)
    config = LoadConfig(target="http://127.0.0.1:8000", model="sim-model", profile=profile, slo=slo)
    samples: list[Sample] = []
    steps = []
    for k, (step, rate) in enumerate(zip(plan, offered)):
        part = _step_samples(rng, k, per_step, rate, step.streams, ttft_ms, itl_ms, error_rate, warmup=4)
        samples += part
        steps.append(StepResult(index=k, step=step, summary=summarize(part, config.slo)))
    overall = summarize(samples, config.slo) if sweep else steps[0].summary  # as the load runner does
    result = LoadResult(config=config, summary=overall, steps=steps, samples=samples)
    with tempfile.TemporaryDirectory(prefix="fb-synth-") as tmp:
        result.save(tmp)
        load = json.loads((Path(tmp) / "summary.json").read_text())
        table = pq.read_table(Path(tmp) / "samples.parquet")
    return load, table


def record_history(url: str, archive_root: str, *, recipe: str = "smoke", runs: int = 14, n: int = 400,
                   current_n: int = 2000, sweep: bool = False, slowdown: float = 1.5, seed: int = 0) -> dict[str, Any]:
    """A recipe's nightly history in a results database and archive, written through the store:
    `runs` past runs (the first two of an older recipe version, the third judged regression, an
    accepted change at the fifth, from which on TTFT is 4 % higher) and a current run whose TTFT
    is `slowdown` times that, judged against them by `factorybench.regression.judge` as the
    pipeline's judge task does. Returns the current run's pieces as the archive task holds them:
    {"run" (its RunRecord), "load", "samples", "verdicts", "dag_run_id"}."""
    from factorybench.analysis.config import ChecksConfig
    from factorybench.regression import Subject, judge
    from factorybench.results import metrics as catalog
    from factorybench.results.archive import RunArchive
    from factorybench.results.query import Results, measured_values
    from factorybench.results.store import RunRecord, annotate, record_run

    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
    accepted = f"nightly-{min(4, runs - 1):02d}"

    def store(i: int, load: dict, table: pa.Table, **extra: Any) -> RunRecord:
        run_id, when = f"nightly-{i:02d}", t0 + timedelta(days=i)
        record = RunRecord(
            recipe=recipe, recipe_hash="h0" if i < 2 else "h1", workload_hash="w1", dag_id=f"factorybench_{recipe}",
            dag_run_id=run_id, cluster="dev", transport="ssh", status="success", trigger="schedule",
            fb_version="0.1.0", git_commit=f"{0xabc000 + i:x}", job_ids=[str(1000 + i)], nodes=["node1"],
            partition="gpu", image="vllm.sif", model="sim-model", service_kind="vllm", service_version="0.11.0",
            client_versions={"aiohttp": "3.14.5"}, service_state="CANCELLED", started_at=when,
            finished_at=when + timedelta(minutes=12), recipe_text=f"name: {recipe}\n",
            metrics=catalog.from_summary(load["summary"]), **extra)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        archive = RunArchive(archive_root, recipe, run_id)
        record.archive_url = archive.url
        files = {"load/summary.json": load, "load/samples.parquet": buf.getvalue(), "recipe.yaml": record.recipe_text}
        with archive.transaction(files, {"recipe": recipe, "dag_run_id": run_id}) as entries:
            record.artifacts = entries
            record_run(url, record)
        return record

    spike = {"metrics": [{"metric": "ttft_p50_ms", "verdict": "regression", "primary": True,
                          "decided_by": ["zscore"], "message": "ttft_p50_ms regression: +8.0% off the baseline"}]}
    for i in range(runs):
        ttft = 60.0 * (1 + 0.01 * rng.standard_normal()) * (1.04 if i >= 4 else 1.08 if i == 2 else 1.0)
        load, table = synthetic_run(n, sweep=sweep, seed=seed + i, ttft_ms=ttft)
        old = i == 2
        store(i, load, table, verdict="regression" if old else "pass", verdicts=spike if old else None,
              verdict_line="FAILED: regression ttft_p50_ms +8.0%" if old else "passed: 6 pass")
        if i == 4:
            annotate(url, recipe, "lead", "new scheduler: TTFT +4 % accepted", dag_run_id=accepted)
    load, table = synthetic_run(current_n, sweep=sweep, seed=seed + runs, ttft_ms=60.0 * 1.04 * slowdown)
    checks = ChecksConfig()
    subject = Subject(recipe, "h1", "w1", "dev", checks, at=t0 + timedelta(days=runs))
    current = {m.name: m.value for m in catalog.from_summary(load["summary"])}
    columns = {c for c in (catalog.sample_field(m) for m in current) if c}
    judged = judge(Results(url), subject, current, {c: measured_values(table, c) for c in columns})
    verdicts = judged.to_dict()
    record = store(runs, load, table, verdict=judged.verdict, verdict_line=judged.line, verdicts=verdicts)
    return {"run": record, "load": load, "samples": table, "verdicts": verdicts, "dag_run_id": record.dag_run_id}
