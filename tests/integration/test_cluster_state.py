"""`Transport.cluster_state()` (the UI's cluster view) against the real dev clusters: rest on
native (Slurm 22.05: v0.0.37, v0.0.38), trixie (24.11: v0.0.40-42) and forky (26.05: v0.0.42-45),
ssh on native through the Airflow connection the DAGs use, and local. With a factorybench job and
another job running, a read shows both partitions, the node the jobs run on with their CPUs
allocated, and factorybench's job only; once cancelled, the job has left the queue."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from test_rest_matrix import PAIRS, Cluster, cluster, clusters, opened, wait_for  # noqa: F401 (fixtures)

from factorybench.slurm.cluster_state import ClusterState
from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.spec import JobSpec
from factorybench.slurm.transport import Transport, cancel_and_wait

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]


async def running(t: Transport, job_id: str) -> JobInfo:
    return await wait_for(t, job_id, lambda i: i.state is JobState.RUNNING, 120)


async def check(t: Transport, source: str, specs: list[JobSpec]) -> None:
    """Submit a factorybench job and another; read the cluster; cancel both; read again."""
    ours, other = [await t.submit(s) for s in specs]
    try:
        ours_info, _ = await asyncio.gather(running(t, ours), running(t, other))
        state: ClusterState = await t.cluster_state()
        assert state.source == source
        assert [p.name for p in state.partitions] == ["cpu", "gpu"]
        assert all(p.max_time_s == 7200 and p.nodes == ours_info.nodes for p in state.partitions)
        (node,) = [n for n in state.nodes if n.name in ours_info.nodes]
        assert node.state in ("mixed", "allocated") and node.cpus_alloc >= 2 and node.partitions == ("cpu", "gpu")
        assert node.cpus == state.partitions[0].total_cpus and node.memory_mb > 0 and node.usable
        ids = [j.job_id for j in state.jobs]
        assert ours in ids and other not in ids  # the other job is not named fb-...
        (mine,) = [j for j in state.jobs if j.job_id == ours]
        assert mine.state is JobState.RUNNING and mine.name == specs[0].name and mine.nodes == ours_info.nodes
        tag = specs[0].name.rsplit("-", 1)[1]
        assert [j.job_id for j in state.jobs_of_run("itest", tag)] == [ours]
    finally:
        for job_id in (ours, other):
            await cancel_and_wait(t, job_id, 0.5, 60)
    assert ours not in [j.job_id for j in (await t.cluster_state()).jobs]


def specs(workdir: str) -> list[JobSpec]:
    tag = uuid.uuid4().hex[:10]
    return [JobSpec(name=name, script="#!/bin/bash\nsleep 120\n", workdir=workdir, time_limit_min=3,
                    environment={"PATH": "/usr/local/bin:/usr/bin:/bin"})
            for name in (f"fb-itest-svc-{tag}", f"itest-other-{tag}")]


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_rest_every_version(cluster: Cluster, flavour, version):
    async with opened(cluster, version) as t:
        await check(t, f"rest {version}", specs(cluster.workdir))


@pytest.mark.airflow
async def test_ssh_through_the_airflow_connection(native_cluster):
    from factorybench.airflow.connections import atransport_for
    from factorybench.recipe import load_clusters

    workdir = native_cluster["FB_SLURM_WORKDIR"]
    profile = load_clusters(REPO / "config" / "clusters.yaml", env={**os.environ, "FB_SLURM_WORKDIR": workdir})["dev"]
    t = await atransport_for(profile.model_copy(update={"transport": "ssh"}))
    try:
        await check(t, "ssh (scontrol, squeue)", specs(workdir))
    finally:
        await t.close()


async def test_local(tmp_path):
    from factorybench.slurm.local import LocalTransport

    t = LocalTransport(str(tmp_path))
    job_id = await t.submit(specs(str(tmp_path))[0])
    try:
        state = await t.cluster_state()
        assert [j.job_id for j in state.jobs] == [job_id] and state.nodes[0].state == "mixed"
    finally:
        await t.cancel(job_id)
    assert (await t.cluster_state()).jobs == ()
