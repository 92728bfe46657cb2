"""The SSH transport: SLURM's own CLI on a login node, through any CommandRunner.

In Airflow the runner is the SSH provider's async hook; `LocalRunner` serves when
Airflow itself runs on a login node. State comes from squeue while slurmctld knows
the job, then sacct (which has the exit code and outlives MinJobAge), then
`scontrol show job` where accounting is off. A job none of them knows is UNKNOWN,
never COMPLETED.
"""

from __future__ import annotations

import base64
import re
import shlex
from datetime import datetime

from factorybench.errors import SchedulerError, TransientSchedulerError
from factorybench.slurm.job import ExitCode, JobInfo, JobState, expand_nodelist, parse_state
from factorybench.slurm.spec import JobSpec
from factorybench.slurm.transport import CommandRunner, Transport, register_transport

_SQUEUE_FIELDS = "%i|%T|%r|%N|%V|%S|%e|%l|%P|%j"
_SACCT_FIELDS = "JobID,State,ExitCode,Reason,NodeList,Submit,Start,End,TimelimitRaw,Partition,JobName"
_KV = re.compile(r"(\w[\w:/]*)=(.*?)(?=\s\w[\w:/]*=|$)")


def _time(text: str | None) -> datetime | None:
    if not text or text in ("N/A", "Unknown", "None", "(null)"):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _minutes(text: str | None) -> int | None:
    """squeue's %l (D-HH:MM:SS / MM:SS / UNLIMITED) to seconds."""
    if not text or not text[0].isdigit():
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return ((int(days or 0) * 24 + parts[0]) * 60 + parts[1]) * 60 + parts[2]


def parse_squeue(job_id: str, out: str) -> JobInfo | None:
    for line in out.splitlines():
        f = line.strip().split("|")
        if len(f) < 10 or f[0].split("_")[0] != job_id:
            continue
        state, flags = parse_state(f[1])
        return JobInfo(job_id=job_id, state=state, raw_state=f[1], flags=tuple(flags),
                       reason=f[2] if f[2] not in ("None", "") else None, nodes=expand_nodelist(f[3]),
                       submit_time=_time(f[4]), start_time=_time(f[5]), end_time=_time(f[6]),
                       time_limit_s=_minutes(f[7]), partition=f[8], name=f[9], source="squeue")
    return None


def parse_sacct(job_id: str, out: str) -> JobInfo | None:
    for line in out.splitlines():
        f = line.strip().split("|")
        if len(f) < 11 or f[0] != job_id:
            continue
        state, flags = parse_state(f[1])
        limit = int(f[8]) * 60 if f[8].isdigit() else None
        return JobInfo(job_id=job_id, state=state, raw_state=f[1], flags=tuple(flags),
                       exit_code=ExitCode.parse(f[2]), reason=f[3] if f[3] not in ("None", "") else None,
                       nodes=expand_nodelist(f[4]), submit_time=_time(f[5]), start_time=_time(f[6]),
                       end_time=_time(f[7]), time_limit_s=limit, partition=f[9], name=f[10], source="sacct")
    return None


def parse_scontrol(job_id: str, out: str) -> JobInfo | None:
    kv = dict(_KV.findall(out.strip()))
    if kv.get("JobId") != job_id:
        return None
    state, flags = parse_state(kv.get("JobState"))
    return JobInfo(job_id=job_id, state=state, raw_state=kv.get("JobState", ""), flags=tuple(flags),
                   exit_code=ExitCode.parse(kv.get("ExitCode")),
                   reason=kv.get("Reason") if kv.get("Reason") not in (None, "None") else None,
                   nodes=expand_nodelist(kv.get("NodeList")), submit_time=_time(kv.get("SubmitTime")),
                   start_time=_time(kv.get("StartTime")), end_time=_time(kv.get("EndTime")),
                   time_limit_s=_minutes(kv.get("TimeLimit")), partition=kv.get("Partition"),
                   name=kv.get("JobName"), stdout_path=kv.get("StdOut"), stderr_path=kv.get("StdErr"),
                   source="scontrol")


def sbatch_options(spec: JobSpec) -> list[str]:
    """The spec's fields as sbatch options: they override the script's #SBATCH lines, so the
    job gets exactly what the spec says, as it does through REST."""
    opts = [f"--job-name={spec.name}", f"--time={spec.time_limit_min}", f"--chdir={spec.workdir}",
            f"--output={spec.stdout}", f"--error={spec.stderr}", f"--nodes={spec.nodes}",
            f"--ntasks={spec.ntasks}"]
    for flag, value in (("partition", spec.partition), ("account", spec.account), ("qos", spec.qos),
                        ("cpus-per-task", spec.cpus_per_task), ("gres", spec.gres), ("mem", spec.mem)):
        if value:
            opts.append(f"--{flag}={value}")
    return opts


@register_transport("ssh")
class SshTransport(Transport):
    def __init__(self, runner: CommandRunner, command_timeout: float = 60, **_: object):
        self.runner = runner
        self.timeout = command_timeout

    async def _run(self, command: str) -> tuple[int, str, str]:
        try:
            return await self.runner.run(command, timeout=self.timeout)
        except (OSError, TimeoutError) as exc:
            raise TransientSchedulerError(f"login node unreachable: {type(exc).__name__}: {exc}") from exc
        except SchedulerError:
            raise
        except Exception as exc:  # asyncssh/paramiko errors have no common base we can import here
            raise TransientSchedulerError(f"SSH command failed: {type(exc).__name__}: {exc}") from exc

    async def submit(self, spec: JobSpec) -> str:
        # The script travels base64-encoded: no quoting of its contents can go wrong.
        blob = base64.b64encode(spec.script.encode()).decode()
        path = f"{spec.workdir.rstrip('/')}/{spec.name}.sh"
        cmd = (f"mkdir -p {shlex.quote(spec.workdir)} && echo {blob} | base64 -d > {shlex.quote(path)} && "
               f"sbatch --parsable {' '.join(map(shlex.quote, sbatch_options(spec)))} {shlex.quote(path)}")
        rc, out, err = await self._run(cmd)
        job_id = out.strip().split(";")[0]
        if rc != 0 or not job_id.isdigit():
            raise SchedulerError(f"sbatch refused {spec.name}: {(err or out).strip()}")
        return job_id

    async def status(self, job_id: str) -> JobInfo:
        if not str(job_id).isdigit():
            raise SchedulerError(f"invalid job id {job_id!r}")
        rc, out, err = await self._run(f"squeue -h -t all -j {job_id} -o '{_SQUEUE_FIELDS}'")
        info = parse_squeue(job_id, out)
        if info is not None and not info.terminal:
            return info
        # Finished (or gone): sacct has the exit code; scontrol when accounting is off.
        sacct_rc, sacct_out, _ = await self._run(f"sacct -X -n -P -j {job_id} -o {_SACCT_FIELDS}")
        final = parse_sacct(job_id, sacct_out) if sacct_rc == 0 else None
        if final is None:
            ctl_rc, ctl_out, _ = await self._run(f"scontrol show job -o {job_id}")
            final = parse_scontrol(job_id, ctl_out) if ctl_rc == 0 else None
        if final is not None or info is not None:
            return final or info
        # The CLI reports "unknown job" and "controller down" only as text, both with rc 1.
        if rc != 0 and "Invalid job id" not in err:
            raise TransientSchedulerError(f"squeue failed, slurmctld may be down: {err.strip()}")
        return JobInfo(job_id=job_id, state=JobState.UNKNOWN, raw_state="finished, state unknown",
                       reason="job left slurmctld and no accounting record exists", source="ssh")

    async def cancel(self, job_id: str) -> None:
        if not str(job_id).isdigit():
            raise SchedulerError(f"invalid job id {job_id!r}")
        rc, out, err = await self._run(f"scancel {job_id}")
        if rc != 0:
            info = await self.status(job_id)
            if not info.terminal:
                raise SchedulerError(f"scancel {job_id} failed: {err.strip()}")

    async def _tail(self, path: str, max_bytes: int) -> str:
        rc, out, err = await self._run(f"tail -c {int(max_bytes)} -- {shlex.quote(path)}")
        return out if rc == 0 else f"(cannot read {path}: {err.strip()})"
