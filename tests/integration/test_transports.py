"""The transport contract, the same tests for every transport: local, ssh and rest.

SSH and REST run against the real native dev cluster through the same Airflow
connections the DAGs use. All scenarios of a transport run concurrently, because
the TIMEOUT scenario alone needs a minute.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from factorybench.recipe import load_clusters
from factorybench.slurm.job import JobState
from factorybench.slurm.spec import JobSpec

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.timeout(600)]
KINDS = ["local", "ssh", "rest"]


def profile_for(kind: str, workdir: str):
    clusters = load_clusters(REPO / "config" / "clusters.yaml", env={**os.environ, "FB_SLURM_WORKDIR": workdir,
                                                                       "FB_LOCAL_WORKDIR": workdir})
    base = clusters["local" if kind == "local" else "dev"]
    return base.model_copy(update={"transport": kind, "poll_interval_s": 0.5})


def spec(name: str, body: str, workdir: str, minutes: int = 5) -> JobSpec:
    script = f"#!/bin/bash\n{body}\n"
    return JobSpec(name=f"fbtest-{name}", script=script, workdir=workdir, time_limit_min=minutes,
                   partition=None, environment={"PATH": "/usr/local/bin:/usr/bin:/bin"})


async def first_event(profile, job_id: str, target: str) -> dict:
    from factorybench.airflow.triggers import SlurmJobTrigger

    trigger = SlurmJobTrigger(cluster=profile.model_dump(mode="json"), job_id=job_id, target=target,
                              poll_interval=0.5)
    # The trigger must survive a serialize/deserialize round trip, as in the triggerer.
    classpath, kwargs = trigger.serialize()
    assert classpath == "factorybench.airflow.triggers.SlurmJobTrigger"
    async for event in SlurmJobTrigger(**kwargs).run():
        return event.payload
    raise AssertionError("trigger yielded nothing")


async def cancel_from_outside(kind: str, job_id: str, workdir: str) -> None:
    if kind == "local":
        from factorybench.slurm.local import LocalTransport
        await LocalTransport(workdir).cancel(job_id)  # a fresh instance: nothing shared with the poller
    else:
        proc = await asyncio.create_subprocess_exec("scancel", job_id)
        assert await proc.wait() == 0


async def scenario(kind: str, workdir: str) -> dict:
    from factorybench.airflow.connections import atransport_for

    profile = profile_for(kind, workdir)
    t = await atransport_for(profile)
    out: dict = {}
    try:
        ok = await t.submit(spec("ok", "echo hello-from-job; sleep 4", workdir))
        bad = await t.submit(spec("bad", "echo oops >&2; exit 3", workdir))
        victim = await t.submit(spec("victim", "sleep 300", workdir))
        slow = await t.submit(spec("slow", "sleep 600", workdir, minutes=1))
        out["ids"] = [ok, bad, victim, slow]
        out["ok_running"] = await first_event(profile, ok, "running")
        out["ok_end"] = await first_event(profile, ok, "terminal")
        out["ok_output"] = await t.output(ok, spec("ok", "", workdir))
        out["bad_end"] = await first_event(profile, bad, "terminal")
        out["bad_output"] = await t.output(bad, spec("bad", "", workdir))
        running = await first_event(profile, victim, "running")
        assert running["status"] == "running", running
        started = time.monotonic()
        await cancel_from_outside(kind, victim, workdir)
        out["victim_end"] = await first_event(profile, victim, "running")
        out["victim_seconds"] = time.monotonic() - started
        out["slow_end"] = await first_event(profile, slow, "terminal")
    finally:
        for job_id in out.get("ids", []):
            await t.cancel(job_id)
        await t.close()
    return out


@pytest.fixture(scope="module")
def contract(native_cluster, tmp_path_factory):
    workdirs = {k: str(tmp_path_factory.mktemp(f"jobs-{k}")) for k in KINDS}
    for d in workdirs.values():
        os.chmod(d, 0o777)

    async def all_kinds():
        results = await asyncio.gather(*(scenario(k, workdirs[k]) for k in KINDS), return_exceptions=True)
        return dict(zip(KINDS, results))

    return asyncio.run(all_kinds())


def result(contract, kind):
    r = contract[kind]
    if isinstance(r, BaseException):
        raise r
    return r


@pytest.mark.parametrize("kind", KINDS)
def test_submit_running_completed(contract, kind):
    r = result(contract, kind)
    assert r["ok_running"]["status"] == "running" and r["ok_running"]["job"]["state"] == "RUNNING"
    assert r["ok_running"]["job"]["nodes"], "a running job names its node"
    end = r["ok_end"]["job"]
    assert end["state"] == "COMPLETED" and end["exit_code"]["returncode"] == 0
    assert "hello-from-job" in r["ok_output"].stdout


@pytest.mark.parametrize("kind", KINDS)
def test_failing_job_is_failed_with_exit_code(contract, kind):
    r = result(contract, kind)
    end = r["bad_end"]["job"]
    assert end["state"] == "FAILED" and end["exit_code"]["returncode"] == 3, end
    assert "oops" in r["bad_output"].stderr


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_from_outside_is_cancelled_within_a_poll(contract, kind):
    r = result(contract, kind)
    event = r["victim_end"]
    assert event["status"] == "ended" and event["job"]["state"] == "CANCELLED", event
    assert "CANCELLED" in event["message"]
    assert r["victim_seconds"] < 5.0  # poll interval 0.5 s, plus SLURM's own reaction


@pytest.mark.parametrize("kind", KINDS)
def test_over_time_limit_is_timeout(contract, kind):
    end = result(contract, kind)["slow_end"]["job"]
    assert end["state"] == "TIMEOUT", end


@pytest.mark.parametrize("kind", ["ssh", "rest"])
def test_pending_policy_cancels_a_job_that_can_never_start(native_cluster, tmp_path, kind):
    """A time limit above the partition's MaxTime pends with PartitionTimeLimit forever."""
    from factorybench.airflow.connections import atransport_for
    from factorybench.airflow.triggers import SlurmJobTrigger
    from factorybench.recipe.cluster import PendingPolicy

    workdir = str(tmp_path)
    os.chmod(workdir, 0o777)
    profile = profile_for(kind, workdir).model_copy(
        update={"pending": PendingPolicy(grace_s=2, max_pending_s=None)})

    async def go():
        t = await atransport_for(profile)
        job_id = await t.submit(spec("stuck", "true", workdir, minutes=600))  # MaxTime is 2 h
        try:
            trigger = SlurmJobTrigger(cluster=profile.model_dump(mode="json"), job_id=job_id, poll_interval=0.5)
            event = (await anext(trigger.run())).payload
            return event, await t.status(job_id)
        finally:
            await t.cancel(job_id)
            await t.close()

    event, after = asyncio.run(go())
    assert event["status"] == "blocked", event
    assert "PartitionTimeLimit" in event["message"] and "does not clear" in event["message"]
    assert after.state is JobState.CANCELLED
