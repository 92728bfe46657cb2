"""Batch status queries on the real servers: one squeue (SSH) or one GET jobs (REST, every version
of the three dev clusters) answers for many jobs, and the triggers of many waiting jobs share one
poller in one event loop, as in the triggerer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest
from test_rest_matrix import PAIRS, UNKNOWN_JOB, clusters, cluster, opened, spec, wait_for  # noqa: F401

from factorybench.recipe import load_clusters
from factorybench.slurm.job import JobState
from factorybench.slurm.runner import LocalRunner
from factorybench.slurm.ssh import SshTransport

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def sbatch(*args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", "-p", "cpu", "-t", "5", "-o", "/dev/null", *args],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split(";")[0]


def scancel(*ids: str) -> None:
    subprocess.run(["scancel", *ids], capture_output=True)


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_rest_statuses_is_one_jobs_call(cluster, flavour, version):  # noqa: F811
    async with opened(cluster, version) as t:
        never = await t.submit(spec(cluster, "fb-batch-never", "true", minutes=600))
        done = await t.submit(spec(cluster, "fb-batch-done", "true"))
        try:
            await wait_for(t, done, lambda i: i.terminal, 120)
            sent: list[str] = []
            call = t.client.call

            async def counted(method, path, *a, **kw):
                sent.append(f"{method} {path}")
                return await call(method, path, *a, **kw)

            t.client.call = counted
            infos = await t.statuses([never, done, UNKNOWN_JOB, never])
            t.client.call = call
        finally:
            await t.cancel(never)
    assert sent == [f"GET /slurm/{version}/jobs"]  # no slurmdb here: the unknown job costs nothing more
    assert list(infos) == [never, done, UNKNOWN_JOB]
    assert infos[never].state is JobState.PENDING and infos[never].source == f"rest {version}"
    assert infos[done].state is JobState.COMPLETED and infos[done].exit_code.returncode == 0
    assert infos[UNKNOWN_JOB].state is JobState.UNKNOWN


async def test_ssh_statuses_is_one_squeue_while_jobs_wait(native_cluster, tmp_path):
    held = [sbatch("--hold", "--wrap", "true") for _ in range(3)]
    done = sbatch("--wrap", "true")
    commands: list[str] = []

    class Counting(LocalRunner):
        async def run(self, command, timeout=60):
            commands.append(command.split()[0])
            return await super().run(command, timeout)

    t = SshTransport(Counting())
    try:
        deadline = time.monotonic() + 60
        while not (await t.status(done)).terminal:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)
        commands.clear()
        waiting = await t.statuses(held)
        assert commands == ["squeue"]
        assert {i.state for i in waiting.values()} == {JobState.PENDING}
        assert {i.reason for i in waiting.values()} == {"JobHeldUser"}
        commands.clear()
        infos = await t.statuses([*held, done, UNKNOWN_JOB])
        # Only the jobs that left squeue or ended get sacct (disabled here) and scontrol.
        assert commands == ["squeue", "sacct", "scontrol"]
        assert infos[done].state is JobState.COMPLETED and infos[done].source == "scontrol"
        assert infos[UNKNOWN_JOB].state is JobState.UNKNOWN
    finally:
        scancel(*held)


async def test_ten_triggers_share_one_poller_and_all_fire(native_cluster, tmp_path):
    """Ten real SlurmJobTriggers (SSH through the Airflow connection) in one event loop: their held
    jobs are polled in shared rounds, and every trigger fires once its job is released."""
    from factorybench.airflow.triggers import SlurmJobTrigger, cluster_key
    from factorybench.slurm.poller import shared_poller

    interval = 1.0
    clusters_ = load_clusters(REPO / "config" / "clusters.yaml", env={**os.environ, "FB_TRANSPORT": "ssh"})
    profile = clusters_["dev"]
    held = [sbatch("--hold", "--wrap", "sleep 60") for _ in range(10)]

    async def first(job_id: str) -> dict:
        classpath, kwargs = SlurmJobTrigger(cluster=profile.model_dump(mode="json"), job_id=job_id,
                                           poll_interval=interval).serialize()
        async for event in SlurmJobTrigger(**kwargs).run():
            return event.payload
        raise AssertionError("no event")

    try:
        started = time.monotonic()
        waiting = [asyncio.create_task(first(j)) for j in held]
        await asyncio.sleep(6)
        poller = shared_poller(cluster_key(profile, interval), None, interval)
        rounds_while_held = poller.rounds
        assert not any(w.done() for w in waiting)
        subprocess.run(["scontrol", "release", ",".join(held)], check=True)
        events = await asyncio.wait_for(asyncio.gather(*waiting), 90)
        elapsed = time.monotonic() - started
    finally:
        scancel(*held)
    assert [e["status"] for e in events] == ["running"] * 10, events
    assert {e["job"]["job_id"] for e in events} == set(held)
    # One query per round for all ten; a round takes an interval plus the query (an SSH login).
    assert 2 <= rounds_while_held <= 6 + 1, rounds_while_held
    assert poller.rounds <= elapsed / interval + 1, (poller.rounds, elapsed)
