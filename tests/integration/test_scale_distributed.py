"""Sweeps and capacity searches as a 2-task SLURM job on the native dev cluster: the steps run in
lockstep across the tasks, each merged exactly, and rank 0 decides the next step from the merged
summary. The result has a local run's shape: the same steps, per-step summaries and capacity."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_load_slurm import sim_url, slurm_env, two_task_job  # noqa: F401

from factorybench.load import LoadConfig, LoadResult, ProfileConfig
from factorybench.load.config import DatasetConfig, Lengths, SLOConfig
from factorybench.load.runner import run_load

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
MAX = 16  # requests per step, warm-up included


def config(url: str, profile: ProfileConfig) -> LoadConfig:
    return LoadConfig(target=url, model="sim-model", dataset=DatasetConfig(output_tokens=Lengths(mean=8)),
                      profile=profile, slo=SLOConfig(ttft_ms=2000))


def both(url: str, profile: ProfileConfig, env: dict[str, str], tmp_path: Path) -> tuple[LoadResult, LoadResult, Path]:
    cfg = config(url, profile)
    distributed, shared = two_task_job(cfg, env, tmp_path)
    return distributed, run_load(cfg), shared


def check_lockstep(result: LoadResult, shared: Path) -> None:
    """Every step ran on both tasks (one directory and barrier per step) and merged exactly."""
    assert sorted(p.name for p in shared.glob("step-*")) == [f"step-{i}" for i in range(len(result.steps))]
    for r in result.steps:
        step_dir = shared / f"step-{r.index}"
        assert {p.name for p in step_dir.glob("task-*")} == {"task-0", "task-1"}
        assert (step_dir / "start.json").exists() and len(list(step_dir.glob("done-*"))) == 2
        mine = [s for s in result.samples if s.step == r.index]
        assert sorted(s.index for s in mine) == list(range(MAX)), r.step.label
        assert r.summary.requests == MAX - 2 and r.summary.errors == 0 and r.summary.client.processes == 2
    assert {s.worker for s in result.samples} == {0, 1}


def test_sweep_runs_in_lockstep_with_a_local_runs_shape(slurm_env, sim_url, tmp_path):  # noqa: F811
    profile = ProfileConfig(kind="sweep", streams=4, sweep_points=2, max_requests=MAX, warmup_requests=2)
    distributed, local, shared = both(sim_url, profile, slurm_env, tmp_path)
    check_lockstep(distributed, shared)
    assert len(distributed.steps) == len(local.steps) == 4
    assert [r.step.label for r in distributed.steps[:2]] == [r.step.label for r in local.steps[:2]] \
        == ["synchronous", "throughput 4"]
    # The rates between are the profile's, from the merged summaries of the first two steps.
    low, high = (r.summary.request_rate for r in distributed.steps[:2])
    rates = [r.step.rate for r in distributed.steps[2:]]
    assert rates == pytest.approx([low + (high - low) / 3, low + 2 * (high - low) / 3])
    assert distributed.summary.peak_request_rate == max(r.summary.request_rate for r in distributed.steps)
    assert distributed.summary.requests == local.summary.requests == 4 * (MAX - 2)
    assert distributed.capacity is local.capacity is None


def test_capacity_search_runs_in_lockstep_with_a_local_runs_shape(slurm_env, sim_url, tmp_path):  # noqa: F811
    profile = ProfileConfig(kind="capacity", rate_lo=4, max_probes=3, max_requests=MAX, warmup_requests=2)
    distributed, local, shared = both(sim_url, profile, slurm_env, tmp_path)
    check_lockstep(distributed, shared)
    assert distributed.capacity is not None and local.capacity is not None
    assert [p.rate for p in distributed.capacity.probes] == [p.rate for p in local.capacity.probes] == [4, 8, 16]
    assert all(p.passed for p in distributed.capacity.probes)
    assert distributed.capacity.rate == local.capacity.rate == 16 == distributed.summary.capacity_rate
    assert [r.step.label for r in distributed.steps] == [r.step.label for r in local.steps]
