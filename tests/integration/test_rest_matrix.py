"""The REST transport against real slurmrestd servers, the same tests for every (server, version).

Servers are the dev clusters (`devcluster/cluster.sh`): native 22.05 (v0.0.37/38),
trixie 24.11 (v0.0.40-42) and forky 26.05 (v0.0.42-45). A server that is not up is
skipped with the reason; `FB_TEST_BRING_UP=1` brings it up first. The TIMEOUT jobs of
every pair are submitted when the module starts and checked at its end, so their
minute-long time limits overlap with the other tests instead of adding up.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from factorybench.errors import SchedulerError
from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.rest import GONE_RAW_STATE, CommandTokenProvider, RestTransport, SlurmRestError
from factorybench.slurm.runner import LocalRunner
from factorybench.slurm.spec import JobSpec

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = Path(__file__).parents[2]
CLUSTER_SH = REPO / "devcluster" / "cluster.sh"
SERVERS = {
    "native": ("v0.0.37", "v0.0.38"),
    "trixie": ("v0.0.40", "v0.0.41", "v0.0.42"),
    "forky": ("v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45"),
}
UNKNOWN_JOB = "999999"  # a valid id no job has (slurmrestd itself rejects ids past MAX_JOB_ID)
# What slurmctld says of a request no partition can satisfy (which one depends on timing).
NEVER = {"PartitionTimeLimit", "PartitionConfig"}
PAIRS = [pytest.param(f, v, id=f"{f}-{v}") for f, versions in SERVERS.items() for v in versions]


@dataclass(frozen=True)
class Cluster:
    flavour: str
    url: str
    user: str
    token_cmd: str  # prints SLURM_JWT=... (`chroot DIR scontrol token ...` for the chroot clusters)
    workdir: str

    def token_command(self, lifespan: int) -> str:
        return f"{self.token_cmd.rsplit(' lifespan=', 1)[0]} lifespan={lifespan}"


def _is_up(flavour: str) -> bool:
    proc = subprocess.run([str(CLUSTER_SH), "status", flavour], capture_output=True, text=True, timeout=60)
    return proc.returncode == 0 and proc.stdout.strip().endswith(": UP")


def _cluster(flavour: str) -> Cluster | str:
    """The cluster's connection details, or why it cannot be used."""
    if not CLUSTER_SH.exists():
        return f"{CLUSTER_SH} does not exist"
    if not _is_up(flavour) and os.environ.get("FB_TEST_BRING_UP") == "1":
        subprocess.run([str(CLUSTER_SH), "up", flavour], capture_output=True, text=True, timeout=900)
    if not _is_up(flavour):
        return (f"dev cluster {flavour!r} is not up (devcluster/cluster.sh up {flavour}, "
                "or set FB_TEST_BRING_UP=1)")
    out = subprocess.run([str(CLUSTER_SH), "env", flavour], capture_output=True, text=True, timeout=60).stdout
    env = dict(shlex.split(line[len("export "):])[0].split("=", 1)
               for line in out.splitlines() if line.startswith("export "))
    return Cluster(flavour, env["FB_SLURM_REST_URL"], env["FB_SLURM_REST_USER"], env["FB_SLURM_TOKEN_CMD"],
                   env["FB_SLURM_WORKDIR"])


@pytest.fixture(scope="session")
def clusters() -> dict[str, Cluster | str]:
    return {flavour: _cluster(flavour) for flavour in SERVERS}


@pytest.fixture
def cluster(clusters, flavour) -> Cluster:
    found = clusters[flavour]
    if isinstance(found, str):
        pytest.skip(found)
    return found


def transport(cluster: Cluster, version: str | None, **kw) -> RestTransport:
    tokens = kw.pop("tokens", None) or CommandTokenProvider(LocalRunner(), cluster.token_cmd)
    return RestTransport(cluster.url, cluster.user, tokens, version=version, workdir_reader=LocalRunner(), **kw)


@asynccontextmanager
async def opened(cluster: Cluster, version: str | None, **kw) -> AsyncIterator[RestTransport]:
    t = transport(cluster, version, **kw)
    try:
        yield t
    finally:
        await t.close()


def spec(cluster: Cluster, name: str, body: str, minutes: int = 2, **kw) -> JobSpec:
    return JobSpec(name=name, script=f"#!/bin/bash\n{body}\n", workdir=cluster.workdir, time_limit_min=minutes,
                   **kw)


async def wait_for(t: RestTransport, job_id: str, done: Callable[[JobInfo], bool], timeout_s: float,
                   seen: list[JobState] | None = None) -> JobInfo:
    deadline = time.monotonic() + timeout_s
    while True:
        info = await t.status(job_id)
        if seen is not None and (not seen or seen[-1] is not info.state):
            seen.append(info.state)
        if done(info):
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout_s:.0f}s: {info.describe()}")
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module", autouse=True)
def timeout_jobs(clusters) -> dict[tuple[str, str], str | Exception]:
    """Submit one `sleep 300` with a one-minute limit per reachable (server, version), now."""
    async def submit_all() -> dict[tuple[str, str], str | Exception]:
        jobs: dict[tuple[str, str], str | Exception] = {}
        for flavour, versions in SERVERS.items():
            found = clusters[flavour]
            if isinstance(found, str):
                continue
            for version in versions:
                async with opened(found, version) as t:
                    try:
                        jobs[(flavour, version)] = await t.submit(spec(found, "fb-timeout", "sleep 300", minutes=1))
                    except SchedulerError as exc:
                        jobs[(flavour, version)] = exc
        return jobs

    jobs = asyncio.run(submit_all())
    yield jobs
    for (flavour, version), job_id in jobs.items():  # leave nothing behind if a test failed early
        if isinstance(job_id, str):
            asyncio.run(_cancel(clusters[flavour], version, job_id))


async def _cancel(cluster: Cluster, version: str, job_id: str) -> None:
    async with opened(cluster, version) as t:
        await t.cancel(job_id)


@pytest.mark.parametrize("flavour", list(SERVERS))
async def test_detects_the_newest_version_the_server_serves(cluster, flavour):
    async with opened(cluster, None) as t:
        assert await t.detect_version() == SERVERS[flavour][-1] == t.version


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_job_runs_completes_and_its_output_is_read(cluster, flavour, version):
    async with opened(cluster, version) as t:
        job = spec(cluster, "fb-ok", 'echo "hello from $SLURM_JOB_ID"; sleep 3')
        job_id = await t.submit(job)
        seen: list[JobState] = []
        info = await wait_for(t, job_id, lambda i: i.terminal, 240, seen)
        assert JobState.RUNNING in seen, seen
        assert info.state is JobState.COMPLETED and info.exit_code.returncode == 0, info.describe()
        assert info.nodes and info.start_time and info.end_time and info.source == f"rest {version}"
        out = await t.output(job_id, job)
        assert out.stdout.strip() == f"hello from {job_id}"


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_failing_job_is_failed_with_its_exit_code(cluster, flavour, version):
    async with opened(cluster, version) as t:
        job_id = await t.submit(spec(cluster, "fb-fail", "exit 3"))
        info = await wait_for(t, job_id, lambda i: i.terminal, 240)
        assert info.state is JobState.FAILED and info.exit_code.returncode == 3, info.describe()
        assert info.reason == "NonZeroExitCode"


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_cancel_gives_cancelled_and_a_second_cancel_is_harmless(cluster, flavour, version):
    async with opened(cluster, version) as t:
        job_id = await t.submit(spec(cluster, "fb-cancel", "sleep 300"))
        await t.cancel(job_id)
        info = await wait_for(t, job_id, lambda i: i.terminal, 60)
        assert info.state is JobState.CANCELLED, info.describe()
        await t.cancel(job_id)


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_a_job_that_can_never_start_shows_slurms_reason(cluster, flavour, version):
    """Over the partition's MaxTime (2 h) the job is queued but never starts: 22.05 says so
    in errors[] next to the job id, later releases in warnings[]; all pend with SLURM's reason."""
    async with opened(cluster, version) as t:
        job_id = await t.submit(spec(cluster, "fb-never", "true", minutes=600))
        try:
            info = await wait_for(t, job_id, lambda i: i.reason not in (None, "None"), 60)
            assert info.state is JobState.PENDING and info.reason in NEVER, info.describe()
        finally:
            await t.cancel(job_id)


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_a_refused_submission_raises_with_slurms_error(cluster, flavour, version):
    """26.05 sends such refusals twice on one connection; the first answer is still read."""
    async with opened(cluster, version) as t:
        with pytest.raises(SlurmRestError) as err:
            await t.submit(spec(cluster, "fb-refused", "true", partition="nosuchpartition"))
        assert err.value.numbers == {2000}, err.value  # ESLURM_INVALID_PARTITION_NAME
        assert "Invalid partition name specified" in str(err.value)


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_more_cpus_than_exist_is_refused_or_pends_with_the_reason(cluster, flavour, version):
    async with opened(cluster, version) as t:
        try:
            job_id = await t.submit(spec(cluster, "fb-huge", "true", cpus_per_task=512))
        except SlurmRestError as err:  # 22.05 and 24.11 refuse at submission
            assert err.numbers == {2014}, err  # ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE
            return
        try:  # 26.05 queues it
            info = await wait_for(t, job_id, lambda i: i.reason not in (None, "None"), 60)
            assert info.state is JobState.PENDING and info.reason in NEVER, info.describe()
        finally:
            await t.cancel(job_id)


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_a_job_slurm_has_forgotten_is_unknown_never_completed(cluster, flavour, version):
    async with opened(cluster, version) as t:
        info = await t.status(UNKNOWN_JOB)
        assert info.state is JobState.UNKNOWN and info.raw_state == GONE_RAW_STATE


@pytest.mark.parametrize("flavour, version", PAIRS)
@pytest.mark.parametrize("first", ["expired", "garbage"])
async def test_a_refused_token_is_refreshed_once(cluster, flavour, version, first, tmp_path, caplog):
    """The first token is refused by the server (expired a second ago, or not a JWT at all);
    the transport fetches a new one with the token command and the call goes through."""
    flag = tmp_path / "issued"
    bad = (f"{cluster.token_command(1)}; sleep 2" if first == "expired"
           else "echo SLURM_JWT=$(head -c 30 /dev/urandom | base64 | tr -dc A-Za-z0-9)")
    command = f"if [ -e {flag} ]; then {cluster.token_command(600)}; else touch {flag}; {bad}; fi"
    # margin_s=-60 trusts a token up to a minute past its exp, as a skewed clock would.
    tokens = CommandTokenProvider(LocalRunner(), command, margin_s=-60)
    caplog.set_level("INFO", logger="factorybench.slurm.rest")
    async with opened(cluster, version, tokens=tokens) as t:
        stale = (await tokens.token()).reveal()
        info = await t.status(UNKNOWN_JOB)
        assert info.state is JobState.UNKNOWN
        assert (await tokens.token()).reveal() != stale
    assert any("refreshing it once" in r.getMessage() for r in caplog.records)
    assert not any(stale in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("flavour, version", PAIRS)
async def test_a_job_over_its_time_limit_is_timeout(cluster, flavour, version, timeout_jobs):
    job_id = timeout_jobs.get((flavour, version))
    if isinstance(job_id, Exception):
        raise job_id
    assert job_id, "submitted at module start"
    async with opened(cluster, version) as t:
        info = await wait_for(t, job_id, lambda i: i.terminal, 280)
        assert info.state is JobState.TIMEOUT, info.describe()
        assert info.time_limit_s == 60
