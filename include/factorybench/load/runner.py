"""The public entry points: drive a profile's steps through the engine and build the LoadResult."""

from __future__ import annotations

import asyncio
from time import perf_counter

from factorybench.load.config import LoadConfig
from factorybench.load.distributed import run_local_workers
from factorybench.load.engine import Share, ShareRunner, run_coroutine
from factorybench.load.guard import ProcessHealth, assess, merge_health
from factorybench.load.profiles import CapacityResult, Step, steps
from factorybench.load.result import LoadResult, StepResult
from factorybench.load.samples import Sample
from factorybench.load.stats import summarize


async def arun_load(config: LoadConfig) -> LoadResult:
    """Runs every step of the profile; with workers > 1 each step is split over spawned processes."""
    runner = ShareRunner(config) if config.workers == 1 else None
    profile = steps(config.profile, config.slo)
    results: list[StepResult] = []
    samples: list[Sample] = []
    healths: list[ProcessHealth] = []
    capacity: CapacityResult | None = None
    step: Step | None = next(profile)
    while step is not None:
        index = len(results)
        if runner:
            part, health = await runner.run(step, index, Share(), perf_counter() + 0.05)
            step_healths = [health]
        else:
            part, step_healths = await asyncio.to_thread(run_local_workers, config, step, index)
        summary = assess(summarize(part, config.slo, merge_health(step_healths)), config.guard)
        results.append(StepResult(index=index, step=step, summary=summary))
        samples += part
        healths += step_healths
        try:
            step = profile.send(summary)
        except StopIteration as stop:
            capacity, step = stop.value, None
    if len(results) == 1:
        overall = results[0].summary
    else:
        overall = summarize(samples, config.slo, merge_health(healths))
        overall.invalid_reasons = [f"{r.step.label}: {why}" for r in results for why in r.summary.invalid_reasons]
        overall.valid = not overall.invalid_reasons
    return LoadResult(config=config, summary=overall, steps=results, capacity=capacity, samples=samples)


def run_load(config: LoadConfig) -> LoadResult:
    """Synchronous wrapper for callers without an event loop (CLI, Airflow task, SLURM job)."""
    return run_coroutine(arun_load(config))
