"""The public entry points: drive a profile's steps through the engine and build the LoadResult."""

from __future__ import annotations

import asyncio
import math
from time import perf_counter

from factorybench.errors import LoadError
from factorybench.load.config import LoadConfig
from factorybench.load.distributed import run_local_workers
from factorybench.load.drivers import Driver, make_driver
from factorybench.load.engine import Share, ShareRunner, Stop, run_coroutine
from factorybench.load.guard import ProcessHealth, abort_reason, merge_health
from factorybench.load.profiles import CapacityResult, Profile, Step, steps
from factorybench.load.result import LoadResult, StepResult
from factorybench.load.samples import Sample
from factorybench.load.sanity import apply, check, judged
from factorybench.load.stats import summarize


def insert_step(config: LoadConfig) -> Step:
    """Vector protocols' first step: the data set in batches, `insert_streams` at a time (at least one per
    worker process: each process sends its own share of the batches)."""
    v = config.vector
    return Step(label="insert", mode="closed", streams=max(v.insert_streams, config.workers),
                max_requests=math.ceil(v.count / v.insert_batch), op="insert")


def run_profile(config: LoadConfig) -> Profile:
    """The profile's steps, behind the insert step for vector protocols."""
    profile = steps(config.profile, config.slo)
    if not config.protocol.is_vector:
        return profile
    return _after_insert(config, profile)


def _after_insert(config: LoadConfig, profile: Profile) -> Profile:
    yield insert_step(config)
    return (yield from profile)


async def _prepare(driver: Driver | None, config: LoadConfig) -> None:
    if driver is None:
        return
    try:
        await driver.prepare()
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means no run: say where and why
        raise LoadError(f"{config.protocol.value}: could not prepare {config.target}: {exc!r}") from exc


async def arun_load(config: LoadConfig, stop: Stop | None = None) -> LoadResult:
    """Runs every step of the profile; with workers > 1 each step is split over spawned processes.

    `stop` ends the run early (its reason is recorded); so does the circuit breaker. Either way
    the samples so far are kept and the result says `aborted` and why.
    """
    stop = stop or Stop()
    driver = make_driver(config)
    runner = ShareRunner(config, driver=driver) if config.workers == 1 else None
    await _prepare(driver, config)
    profile = run_profile(config)
    results: list[StepResult] = []
    samples: list[Sample] = []
    healths: list[ProcessHealth] = []
    capacity: CapacityResult | None = None
    step: Step | None = next(profile)
    while step is not None and not stop.is_set():
        index = len(results)
        if runner:
            part, health = await runner.run(step, index, Share(), perf_counter() + 0.05, stop)
            step_healths = [health.model_copy(update={"abort_reason": runner.abort_reason})]
        else:
            part, step_healths = await asyncio.to_thread(run_local_workers, config, step, index, stop)
        summary = judged(part, config, merge_health(step_healths))
        results.append(StepResult(index=index, step=step, summary=summary))
        samples += part
        healths += step_healths
        if reason := abort_reason(step_healths):
            stop.set(reason)
            break
        if driver:
            await driver.settle(step.op)
        try:
            step = profile.send(summary)
        except StopIteration as done:
            capacity, step = done.value, None
    return combine(config, results, samples, healths, capacity, stop.reason if stop.is_set() else None)


def combine(config: LoadConfig, results: list[StepResult], samples: list[Sample], healths: list[ProcessHealth],
            capacity: CapacityResult | None, stopped: str | None) -> LoadResult:
    """The run's result from its steps: the only step's summary, or all measured samples together
    with the peaks of a sweep; `stopped` is why the run ended early (None: it did not). Local runs
    and the merge of a distributed run (load/distributed.py) both end here, so they have one shape."""
    if len(results) == 1:
        overall = results[0].summary
    else:
        measured = [s for s in samples if s.op != "insert"]
        overall = apply(summarize(measured, config.slo, merge_health(healths)), check(measured, config))
        if config.protocol.is_vector and results:
            overall.insert_vectors_per_s = results[0].summary.insert_vectors_per_s
        overall.peak_request_rate = max(r.summary.request_rate for r in results)
        overall.peak_output_tokens_per_s = max(r.summary.output_tokens_per_s for r in results)
        overall.invalid_reasons = [f"{r.step.label}: {why}" for r in results for why in r.summary.invalid_reasons]
        overall.valid = not overall.invalid_reasons
    if capacity is not None:
        overall.capacity_rate = capacity.rate
    if stopped is not None:
        for summary in [overall] + [r.summary for r in results[-1:]]:
            summary.aborted, summary.abort_reason = True, stopped
    return LoadResult(config=config, summary=overall, steps=results, capacity=capacity, samples=samples)


def run_load(config: LoadConfig) -> LoadResult:
    """Synchronous wrapper for callers without an event loop (CLI, Airflow task, SLURM job)."""
    return run_coroutine(arun_load(config))
