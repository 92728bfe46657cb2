"""The local transport: jobs as detached processes on this machine, no SLURM needed.

It keeps `make demo` working where there is no root or no SLURM. State lives in files
under `<workdir>/.fb-local/<id>/`, so the task that submits, the trigger that polls and
the teardown that cancels (all different processes) see the same job. The job gets the
SLURM_* variables a batch script relies on, and its time limit is enforced with
`timeout`, so TIMEOUT, FAILED and CANCELLED mean what they mean under SLURM.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shlex
import signal
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from factorybench.errors import SchedulerError
from factorybench.slurm.cluster_state import ClusterState, NodeState, PartitionState, queued
from factorybench.slurm.job import ExitCode, JobInfo, JobState
from factorybench.slurm.spec import JobSpec
from factorybench.slurm.transport import Transport, register_transport

_TIMEOUT_RC = 124  # what `timeout` returns when the limit hits

_WRAPPER = """#!/bin/bash
echo $$ > {jobdir}/pid
cd {workdir}
export SLURM_JOB_ID={job_id} SLURM_JOB_NAME={name} SLURM_JOB_NODELIST={node} \
SLURMD_NODENAME={node} SLURM_NTASKS={ntasks} SLURM_SUBMIT_DIR={workdir}
# timeout leads its own process group and forwards TERM to the job: cancel signals it.
timeout -s TERM -k 5 {seconds} bash {jobdir}/job.sh > {stdout} 2> {stderr} < /dev/null &
echo $! > {jobdir}/tpid
wait $!
echo $? > {jobdir}/rc.tmp && mv {jobdir}/rc.tmp {jobdir}/rc
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@register_transport("local")
class LocalTransport(Transport):
    def __init__(self, workdir: str, **_: object):
        self.root = Path(workdir) / ".fb-local"

    def _dir(self, job_id: str) -> Path:
        if not str(job_id).isdigit():
            raise SchedulerError(f"invalid local job id {job_id!r}")
        return self.root / str(job_id)

    def _next_id(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "counter", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            n = int(f.read().strip() or 0) + 1
            f.seek(0)
            f.truncate()
            f.write(str(n))
        return str(n)

    async def submit(self, spec: JobSpec, secrets: Mapping[str, str] | None = None) -> str:
        job_id = self._next_id()
        jobdir = self._dir(job_id)
        jobdir.mkdir()
        Path(spec.workdir).mkdir(parents=True, exist_ok=True)
        (jobdir / "job.sh").write_text(spec.script)
        (jobdir / "spec.name").write_text(spec.name)
        (jobdir / "submit_time").write_text(datetime.now(timezone.utc).isoformat())
        q = shlex.quote
        (jobdir / "run.sh").write_text(_WRAPPER.format(
            jobdir=q(str(jobdir)), workdir=q(spec.workdir), job_id=job_id, name=q(spec.name),
            node=q(socket.gethostname()), ntasks=spec.ntasks, seconds=spec.time_limit_min * 60,
            stdout=q(spec.output_path(job_id, "stdout")), stderr=q(spec.output_path(job_id, "stderr"))))
        # Secrets reach the job through its environment only (readable by this user and root, as
        # under SLURM); they are written to no file.
        env = {**os.environ, **spec.environment, **(secrets or {})}
        # setsid -f double-forks: the job outlives the submitting task and is never our zombie.
        subprocess.run(["setsid", "-f", "bash", str(jobdir / "run.sh")], env=env, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if (jobdir / "pid").exists() and (jobdir / "pid").read_text().strip():
                break
            await asyncio.sleep(0.01)
        else:
            raise SchedulerError(f"local job {job_id} did not start within 2 s")
        (jobdir / "start_time").write_text(datetime.now(timezone.utc).isoformat())
        return job_id

    async def status(self, job_id: str) -> JobInfo:
        jobdir = self._dir(job_id)
        if not jobdir.exists():
            return JobInfo(job_id=job_id, state=JobState.UNKNOWN, raw_state="finished, state unknown",
                           source="local")

        def read(name: str) -> str | None:
            p = jobdir / name
            return p.read_text().strip() if p.exists() else None

        def when(name: str):
            text = read(name)
            return datetime.fromisoformat(text) if text else None

        common = dict(job_id=job_id, name=read("spec.name"), nodes=(socket.gethostname(),),
                      submit_time=when("submit_time"), start_time=when("start_time"), source="local")
        rc_text, cancelled = read("rc"), (jobdir / "cancelled").exists()
        pid = int(read("pid") or 0)
        if rc_text is None and pid and _alive(pid):
            return JobInfo(state=JobState.RUNNING, raw_state="RUNNING", **common)
        end = datetime.fromtimestamp((jobdir / "rc").stat().st_mtime, timezone.utc) if rc_text else None
        if cancelled:
            state = JobState.CANCELLED
        elif rc_text is None:
            state = JobState.FAILED  # the supervisor itself died: killed from outside
        elif int(rc_text) == _TIMEOUT_RC:
            state = JobState.TIMEOUT
        else:
            state = JobState.COMPLETED if int(rc_text) == 0 else JobState.FAILED
        rc = int(rc_text) if rc_text is not None else None
        return JobInfo(state=state, raw_state=state.value, exit_code=ExitCode(rc, 0 if rc is not None else None),
                       end_time=end, **common)

    async def cancel(self, job_id: str) -> None:
        jobdir = self._dir(job_id)
        pid = int((jobdir / "pid").read_text().strip() or 0) if (jobdir / "pid").exists() else 0
        if not pid or (jobdir / "rc").exists() or not _alive(pid):
            return
        (jobdir / "cancelled").touch()
        tpid = int((jobdir / "tpid").read_text().strip() or 0) if (jobdir / "tpid").exists() else 0
        for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 2.0)):
            for target in filter(None, (tpid if sig is signal.SIGTERM else -tpid, -pid if sig is signal.SIGKILL else 0)):
                try:
                    os.kill(target, sig)
                except ProcessLookupError:
                    pass
            for _ in range(int(wait * 20)):
                if not _alive(pid):
                    return
                await asyncio.sleep(0.05)

    async def cluster_state(self) -> ClusterState:
        """This machine as a one-node partition `local`; the queue is its running local jobs."""
        ids = sorted((p.name for p in self.root.glob("[0-9]*") if p.name.isdigit()), key=int)
        jobs = queued([await self.status(job_id) for job_id in ids])
        host, cpus = socket.gethostname(), os.cpu_count() or 1
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
        word = "mixed" if jobs else "idle"
        node = NodeState(name=host, state=word, raw_state=word.upper(), partitions=("local",), cpus=cpus,
                         memory_mb=memory)
        return ClusterState("local", (PartitionState("local", "UP", True, (host,), cpus),), (node,), jobs)

    async def _tail(self, path: str, max_bytes: int) -> str:
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.path.getsize(path) - max_bytes))
                return f.read().decode(errors="replace")
        except OSError as exc:
            return f"(cannot read {path}: {exc.strerror})"

    async def fetch(self, path: str, max_bytes: int = 256 << 20) -> bytes:
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as exc:
            raise SchedulerError(f"cannot read {path}: {exc.strerror}") from None
        if len(data) > max_bytes:
            raise SchedulerError(f"{path} is larger than {max_bytes} bytes; not fetched")
        return data
