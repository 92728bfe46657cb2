"""Several client processes (on one host or as SLURM tasks) running one schedule, merged exactly.

Local worker processes and SLURM tasks use the same mechanism: each share
touches `ready-<rank>` in a shared directory, rank 0 writes the common start
instant (wall clock, converted by each process to its perf_counter), every share
writes its raw samples and health under `task-<rank>/`, and the merge recomputes
every statistic from the union of raw samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factorybench.errors import LoadError
from factorybench.load.config import LoadConfig
from factorybench.load.engine import Share, ShareRunner, run_coroutine
from factorybench.load.guard import ProcessHealth, assess, merge_health
from factorybench.load.profiles import Step, steps
from factorybench.load.result import LoadResult, StepResult
from factorybench.load.samples import Sample, SampleFormat, load_samples, save_samples
from factorybench.load.stats import summarize

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


def run_task(config: LoadConfig, step: Step, step_index: int, share: Share, directory: Path,
             fmt: SampleFormat = "parquet") -> None:
    """One share of a step in this process: barrier, run, write raw samples and health."""
    runner = ShareRunner(config)  # dataset and bodies are built before the barrier, not after it
    start = wait_start(directory, share)
    samples, health = run_coroutine(runner.run(step, step_index, share, start))
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
    """What every share of a step reads: the config and the step (plain JSON, any process can read it)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(config.model_dump_json(indent=2))
    (directory / "step.json").write_text(json.dumps({"index": step_index, "step": step.model_dump(mode="json")}))


def run_planned_task(directory: Path, share: Share) -> None:
    """Entry point of `python -m factorybench.load worker DIR`: runs this share of the written plan."""
    config = LoadConfig.model_validate_json((directory / "config.json").read_text())
    plan = json.loads((directory / "step.json").read_text())
    run_task(config, Step.model_validate(plan["step"]), plan["index"], share, directory)


def run_local_workers(config: LoadConfig, step: Step, step_index: int) -> tuple[list[Sample], list[ProcessHealth]]:
    """Runs a step on `config.workers` child processes and collects their raw outputs.

    Children are fresh interpreters (`python -m factorybench.load worker`), not multiprocessing
    spawns, so callers' scripts are never re-imported.
    """
    with tempfile.TemporaryDirectory(prefix="fb-load-") as tmp:
        write_plan(Path(tmp), config, step, step_index)
        size = config.workers
        procs = [subprocess.Popen([sys.executable, "-m", "factorybench.load", "worker", tmp,
                                   "--rank", str(rank), "--size", str(size)]) for rank in range(size)]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise LoadError(f"load worker processes failed with exit codes {codes}")
        return read_shares(Path(tmp))


def slurm_share() -> Share:
    """This SLURM task's share, from SLURM_PROCID and SLURM_NTASKS (a lone share outside SLURM)."""
    return Share(int(os.environ.get("SLURM_PROCID", "0")), int(os.environ.get("SLURM_NTASKS", "1")))


def single_step(config: LoadConfig) -> Step:
    """Distributed tasks cannot agree on adaptive steps, so only single-step profiles run that way."""
    if config.profile.kind in ("sweep", "capacity"):
        raise LoadError(f"profile {config.profile.kind} is adaptive; run it with workers on one host instead")
    return next(steps(config.profile, config.slo))


def run_slurm_task(config: LoadConfig, directory: Path, share: Share | None = None,
                   fmt: SampleFormat = "parquet") -> LoadResult | None:
    """A SLURM task's whole job; rank 0 also waits for every task and merges. Others return None."""
    share = share or slurm_share()
    step = single_step(config)
    if share.rank == 0:
        write_plan(directory, config, step, 0)
    run_task(config, step, 0, share, directory, fmt)
    if share.rank != 0:
        return None
    budget = (step.duration_s or 0) + config.timeout_s + 60
    _wait_for(lambda: _count(directory, "done-") >= share.size, budget, f"{share.size} done files")
    return merge(directory, fmt)


def merge(directory: Path, fmt: SampleFormat = "parquet") -> LoadResult:
    """Recomputes every statistic from all tasks' raw samples and writes summary.json beside them."""
    config = LoadConfig.model_validate_json((directory / "config.json").read_text())
    plan = json.loads((directory / "step.json").read_text())
    samples, healths = read_shares(directory)
    if not healths:
        raise LoadError(f"no task-*/ outputs under {directory}")
    summary = assess(summarize(samples, config.slo, merge_health(healths)), config.guard)
    step = StepResult(index=plan["index"], step=Step.model_validate(plan["step"]), summary=summary)
    result = LoadResult(config=config, summary=summary, samples=samples, steps=[step])
    result.save(directory, fmt)
    return result
