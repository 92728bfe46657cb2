"""Several client processes (on one host or as SLURM tasks) running one schedule, merged exactly.

Local worker processes and SLURM tasks use the same mechanism: each share
touches `ready-<rank>` in a shared directory, rank 0 writes the common start
instant (wall clock, converted by each process to its perf_counter), every share
writes its raw samples and health under `task-<rank>/`, and the merge recomputes
every statistic from the union of raw samples.

SLURM tasks run every step of the profile in lockstep, one directory per step (`step-<k>/`, with a
barrier each): rank 0 merges a step exactly, feeds the merged summary to the profile (a sweep's
rates, a capacity search's next probe), and publishes the next step as `step-<k+1>/step.json`,
or `end.json` when there is none; the other ranks follow. The final merge replays the profile over
the merged summaries, so a distributed run has a local run's shape: steps, per-step summaries,
capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factorybench.errors import LoadError
from factorybench.load.config import LoadConfig
from factorybench.load.engine import Share, ShareRunner, Stop, run_coroutine
from factorybench.load.guard import ProcessHealth, abort_reason, merge_health
from factorybench.load.profiles import Step
from factorybench.load.result import LoadResult, StepResult
from factorybench.load.samples import Sample, SampleFormat, load_samples, save_samples
from factorybench.load.sanity import judged

_POLL_S = 0.02


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise LoadError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(_POLL_S)


def _count(directory: Path, prefix: str) -> int:
    return sum(1 for p in os.scandir(directory) if p.name.startswith(prefix))


def wait_start(directory: Path, share: Share, lead_s: float = 1.0, timeout_s: float = 600) -> float:
    """File barrier; returns the agreed start instant on this process's perf_counter clock."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"ready-{share.rank}").touch()
    start_file = directory / "start.json"
    if share.rank == 0:
        _wait_for(lambda: _count(directory, "ready-") >= share.size, timeout_s, f"{share.size} ready files")
        tmp = directory / "start.json.tmp"
        tmp.write_text(json.dumps({"start_wall": time.time() + lead_s}))
        tmp.replace(start_file)  # atomic: readers never see a half-written file
    _wait_for(start_file.exists, timeout_s, "start.json from rank 0")
    start_wall = json.loads(start_file.read_text())["start_wall"]
    return time.perf_counter() + (start_wall - time.time())


async def _run_share(runner: ShareRunner, step: Step, step_index: int, share: Share,
                     start: float) -> tuple[list[Sample], ProcessHealth]:
    """SIGTERM (a parent's stop, scancel) ends the share gracefully: its samples so far are kept."""
    stop = Stop()
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # only a main thread gets signals
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set, "the client process was terminated")
    samples, health = await runner.run(step, step_index, share, start, stop)
    return samples, health.model_copy(update={"abort_reason": runner.abort_reason})


def run_task(config: LoadConfig, step: Step, step_index: int, share: Share, directory: Path,
             fmt: SampleFormat = "parquet", prepare: bool = False) -> None:
    """One share of a step in this process: (prepare), barrier, run, write raw samples and health."""
    runner = ShareRunner(config)  # dataset and bodies are built before the barrier, not after it
    if prepare and runner.driver is not None:  # before the barrier, so no share starts before it is done
        run_coroutine(runner.driver.prepare())
    start = wait_start(directory, share)
    samples, health = run_coroutine(_run_share(runner, step, step_index, share, start))
    out = directory / f"task-{share.rank}"
    save_samples(samples, out / f"samples.{fmt}")
    (out / "health.json").write_text(health.model_dump_json())
    (directory / f"done-{share.rank}").touch()


def read_shares(directory: Path) -> tuple[list[Sample], list[ProcessHealth]]:
    samples: list[Sample] = []
    healths = []
    for task in sorted(directory.glob("task-*"), key=lambda p: int(p.name.split("-")[1])):
        for f in task.glob("samples.*"):
            samples.extend(load_samples(f))
        healths.append(ProcessHealth.model_validate_json((task / "health.json").read_text()))
    samples.sort(key=lambda s: (s.step, s.index))
    return samples, healths


def write_plan(directory: Path, config: LoadConfig, step: Step, step_index: int) -> None:
    """What every share of a step reads: the config and the step (plain JSON, any process can read it).
    step.json appears whole and last (atomic rename): a share that sees it can read both."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(config.model_dump_json(indent=2))
    _publish(directory / "step.json", json.dumps({"index": step_index, "step": step.model_dump(mode="json")}))


def _publish(path: Path, text: str) -> None:
    """Write whole or not at all: a reader polling for `path` never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def run_planned_task(directory: Path, share: Share) -> None:
    """Entry point of `python -m factorybench.load worker DIR`: runs this share of the written plan."""
    config = LoadConfig.model_validate_json((directory / "config.json").read_text())
    plan = json.loads((directory / "step.json").read_text())
    run_task(config, Step.model_validate(plan["step"]), plan["index"], share, directory)


def run_local_workers(config: LoadConfig, step: Step, step_index: int,
                      stop: Stop | None = None) -> tuple[list[Sample], list[ProcessHealth]]:
    """Runs a step on `config.workers` child processes and collects their raw outputs.

    Children are fresh interpreters (`python -m factorybench.load worker`), not multiprocessing
    spawns, so callers' scripts are never re-imported. A stop reaches them as SIGTERM, and
    what they measured until then is kept.
    """
    with tempfile.TemporaryDirectory(prefix="fb-load-") as tmp:
        write_plan(Path(tmp), config, step, step_index)
        size = config.workers
        procs = [subprocess.Popen([sys.executable, "-m", "factorybench.load", "worker", tmp,
                                   "--rank", str(rank), "--size", str(size)]) for rank in range(size)]
        signalled = False
        while any(p.poll() is None for p in procs):
            if stop is not None and stop.is_set() and not signalled:
                signalled = True
                for p in procs:
                    p.terminate()
            time.sleep(_POLL_S)
        codes = [p.returncode for p in procs]
        if any(codes) and not signalled:
            raise LoadError(f"load worker processes failed with exit codes {codes}")
        samples, healths = read_shares(Path(tmp))
        if signalled:
            healths = healths or [ProcessHealth()]
            healths[0] = healths[0].model_copy(update={"abort_reason": stop.reason if stop else None})
        return samples, healths


def slurm_share() -> Share:
    """This SLURM task's share, from SLURM_PROCID and SLURM_NTASKS (a lone share outside SLURM)."""
    return Share(int(os.environ.get("SLURM_PROCID", "0")), int(os.environ.get("SLURM_NTASKS", "1")))


def check_distributable(config: LoadConfig) -> None:
    """Vector protocols build their collection in an insert step whose batches and exact answers are
    per process; they run with client.where=local and workers instead."""
    if config.protocol.is_vector:
        raise LoadError(f"protocol {config.protocol.value} runs two steps (insert, query) that need one "
                        "driver; run it with client.where=local and workers instead")


def _budget(config: LoadConfig, step: Step) -> float:
    return (step.duration_s or 0) + config.timeout_s + 60


def _failed(directory: Path) -> str | None:
    """Why a task gave up, if one did (it writes failed-<rank> before it exits)."""
    found = sorted(directory.glob("failed-*"))
    return f"{found[0].name}: {found[0].read_text()}" if found else None


def _wait_done(directory: Path, step_dir: Path, share: Share, budget: float) -> None:
    def done() -> bool:
        if failure := _failed(directory):
            raise LoadError(f"a task of the client job failed ({failure})")
        return _count(step_dir, "done-") >= share.size

    _wait_for(done, budget, f"{share.size} done files in {step_dir.name}")


def run_slurm_task(config: LoadConfig, directory: Path, share: Share | None = None,
                   fmt: SampleFormat = "parquet") -> LoadResult | None:
    """A SLURM task's whole job: every step of the profile in lockstep with the other tasks. Rank 0
    decides the steps and merges into `directory`; the others return None. A task that fails says so
    in failed-<rank>, so the others stop waiting for it."""
    share = share or slurm_share()
    check_distributable(config)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        if share.rank == 0:
            return _lead(config, directory, share, fmt)
        _follow(directory, share, fmt)
        return None
    except BaseException as exc:
        (directory / f"failed-{share.rank}").write_text(f"{type(exc).__name__}: {exc}")
        raise


def _lead(config: LoadConfig, directory: Path, share: Share, fmt: SampleFormat) -> LoadResult:
    from factorybench.load.drivers import make_driver
    from factorybench.load.runner import run_profile

    _publish(directory / "config.json", config.model_dump_json(indent=2))
    driver = make_driver(config)
    profile = run_profile(config)
    step: Step | None = next(profile)
    index = 0
    try:
        while step is not None:
            step_dir = directory / f"step-{index}"
            write_plan(step_dir, config, step, index)
            run_task(config, step, index, share, step_dir, fmt, prepare=index == 0)
            _wait_done(directory, step_dir, share, _budget(config, step))
            result, _, healths = merge_step(step_dir)
            if abort_reason(healths):
                break
            if driver is not None:
                run_coroutine(driver.settle(step.op))
            try:
                step = profile.send(result.summary)
            except StopIteration:
                step = None
            index += 1
    finally:  # on every path, so the other tasks stop waiting for a next step
        _publish(directory / "end.json", json.dumps({"steps": len(list(directory.glob("step-*")))}))
    return merge(directory, fmt)


def _follow(directory: Path, share: Share, fmt: SampleFormat) -> None:
    def published(path: Path) -> bool:
        return path.exists() or (directory / "end.json").exists() or _failed(directory) is not None

    index, budget = 0, 600.0
    while True:
        step_dir = directory / f"step-{index}"
        _wait_for(lambda: published(step_dir / "step.json"), budget, f"rank 0's plan of step {index}")
        if not (step_dir / "step.json").exists():
            if failure := _failed(directory):
                raise LoadError(f"a task of the client job failed ({failure})")
            return
        config = LoadConfig.model_validate_json((step_dir / "config.json").read_text())
        step = Step.model_validate(json.loads((step_dir / "step.json").read_text())["step"])
        run_task(config, step, index, share, step_dir, fmt)
        budget = _budget(config, step) + 60  # rank 0 waits for the slowest share, merges, then plans
        index += 1


def merge_step(step_dir: Path) -> tuple[StepResult, list[Sample], list[ProcessHealth]]:
    """One step's result, recomputed from every share's raw samples."""
    config = LoadConfig.model_validate_json((step_dir / "config.json").read_text())
    plan = json.loads((step_dir / "step.json").read_text())
    samples, healths = read_shares(step_dir)
    if not healths:
        raise LoadError(f"no task-*/ outputs under {step_dir}")
    summary = judged(samples, config, merge_health(healths))
    if reason := abort_reason(healths):
        summary.aborted, summary.abort_reason = True, reason
    return StepResult(index=plan["index"], step=Step.model_validate(plan["step"]), summary=summary), samples, healths


def merge(directory: Path, fmt: SampleFormat = "parquet") -> LoadResult:
    """Recomputes every statistic from all tasks' raw samples, step by step, and writes summary.json
    beside them. The profile is replayed over the merged summaries, so each step is checked to be the
    one the profile asks for, and a capacity search's result comes out as the run decided it.
    `directory` holds step-<k>/ directories, or is itself one step's directory."""
    from factorybench.load.runner import combine, run_profile

    config = LoadConfig.model_validate_json((directory / "config.json").read_text())
    single = (directory / "step.json").exists()
    profile = run_profile(config)
    expected: Step | None = next(profile)
    results: list[StepResult] = []
    samples: list[Sample] = []
    healths: list[ProcessHealth] = []
    capacity, stopped = None, None
    while expected is not None:
        step_dir = directory if single else directory / f"step-{len(results)}"
        if not (step_dir / "step.json").exists():
            break  # the run ended early (rank 0 failed): merge what there is
        result, part, step_healths = merge_step(step_dir)
        if not single and result.step != expected:
            raise LoadError(f"{step_dir}: step {result.step.label!r} is not the profile's {expected.label!r}")
        results.append(result)
        samples += part
        healths += step_healths
        if stopped := abort_reason(step_healths):
            break
        try:
            expected = None if single else profile.send(result.summary)
        except StopIteration as done:
            capacity, expected = done.value, None
    if not results:
        raise LoadError(f"no step-*/ outputs under {directory}")
    result = combine(config, results, samples, healths, capacity, stopped)
    result.save(directory, fmt)
    return result
