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
from typing import Mapping, Sequence

from factorybench.errors import SchedulerError, TransientSchedulerError
from factorybench.secrets import export_lines, redact
from factorybench.slurm.cluster_state import ClusterState, NodeState, PartitionState, gpus, node_state, queued
from factorybench.slurm.job import ExitCode, JobInfo, JobState, expand_nodelist, parse_state
from factorybench.slurm.spec import JobSpec
from factorybench.slurm.transport import CommandRunner, Transport, fetch_through, register_transport

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


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _fields(line: str) -> dict[str, str]:
    """One `scontrol show ... -o` line as {key: value} (values may hold spaces)."""
    return {k: v.strip() for k, v in _KV.findall(line.strip())}


def parse_scontrol_nodes(out: str) -> tuple[NodeState, ...]:
    """`scontrol show node -o`: one node per line."""
    nodes = []
    for line in out.splitlines():
        kv = _fields(line)
        if "NodeName" not in kv:
            continue
        word, raw = node_state(kv.get("State"))
        used = kv.get("GresUsed")
        nodes.append(NodeState(
            name=kv["NodeName"], state=word, raw_state=raw,
            partitions=tuple(p for p in (kv.get("Partitions") or "").split(",") if p),
            cpus=_int(kv.get("CPUTot")), cpus_alloc=_int(kv.get("CPUAlloc")), memory_mb=_int(kv.get("RealMemory")),
            memory_alloc_mb=_int(kv.get("AllocMem")), gpus=gpus(kv.get("Gres"), kv.get("CfgTRES")),
            gpus_used=gpus(used if used else None, kv.get("AllocTRES")),
            reason=kv.get("Reason") if kv.get("Reason") not in (None, "", "None", "(null)") else None))
    return tuple(nodes)


def parse_scontrol_partitions(out: str) -> tuple[PartitionState, ...]:
    """`scontrol show partition -o`: one partition per line."""
    parts = []
    for line in out.splitlines():
        kv = _fields(line)
        if "PartitionName" not in kv:
            continue
        parts.append(PartitionState(name=kv["PartitionName"], state=kv.get("State"), default=kv.get("Default") == "YES",
                                    nodes=expand_nodelist(kv.get("Nodes")), total_cpus=_int(kv.get("TotalCPUs")),
                                    max_time_s=_minutes(kv.get("MaxTime"))))
    return tuple(parts)


def parse_queue(out: str) -> tuple[JobInfo, ...]:
    """squeue lines in _SQUEUE_FIELDS: factorybench's jobs that have not ended."""
    jobs = (parse_squeue(line.split("|", 1)[0].strip().split("_")[0], line) for line in out.splitlines())
    return queued(j for j in jobs if j is not None)


_SECTION = "----factorybench----"


def _gone(job_id: str) -> JobInfo:
    """A job neither squeue, sacct nor scontrol knows: UNKNOWN, never COMPLETED."""
    return JobInfo(job_id=job_id, state=JobState.UNKNOWN, raw_state="finished, state unknown",
                   reason="job left slurmctld and no accounting record exists", source="ssh")


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

    async def _run(self, command: str, stdin: str | None = None) -> tuple[int, str, str]:
        try:
            if stdin is None:
                return await self.runner.run(command, timeout=self.timeout)
            if not hasattr(self.runner, "run_with_input"):
                raise SchedulerError(f"{type(self.runner).__name__} cannot pass secrets (no stdin support)")
            return await self.runner.run_with_input(command, stdin, timeout=self.timeout)
        except (OSError, TimeoutError) as exc:
            raise TransientSchedulerError(f"login node unreachable: {type(exc).__name__}: {exc}") from exc
        except SchedulerError:
            raise
        except Exception as exc:  # asyncssh/paramiko errors have no common base we can import here
            raise TransientSchedulerError(f"SSH command failed: {type(exc).__name__}: {exc}") from exc

    async def submit(self, spec: JobSpec, secrets: Mapping[str, str] | None = None) -> str:
        # The script travels base64-encoded: no quoting of its contents can go wrong.
        blob = base64.b64encode(spec.script.encode()).decode()
        path = f"{spec.workdir.rstrip('/')}/{spec.name}.sh"
        options = sbatch_options(spec)
        # Secrets come in through the channel's stdin as `export NAME='value'` lines, so sbatch
        # passes them to the job in its environment; the command line (`ps`) shows only `eval`.
        env = 'eval "$(cat)" && ' if secrets else ""
        if secrets:
            options.append("--export=ALL")
        cmd = (f"mkdir -p {shlex.quote(spec.workdir)} && echo {blob} | base64 -d > {shlex.quote(path)} && "
               f"{env}sbatch --parsable {' '.join(map(shlex.quote, options))} {shlex.quote(path)}")
        if secrets:
            rc, out, err = await self._run(cmd, stdin=export_lines(secrets))
        else:
            rc, out, err = await self._run(cmd)
        job_id = out.strip().split(";")[0]
        if rc != 0 or not job_id.isdigit():
            raise SchedulerError(redact(f"sbatch refused {spec.name}: {(err or out).strip()}", secrets))
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
        return _gone(job_id)

    async def statuses(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """One `squeue --jobs=a,b,c` for every job; sacct, then scontrol, only for the jobs that left
        squeue's view or ended (as `status` does for one). squeue answers an id it no longer knows with
        silence when others are listed, and with "Invalid job id" when all are unknown."""
        ids = list(dict.fromkeys(str(j) for j in job_ids))
        if bad := [j for j in ids if not j.isdigit()]:
            raise SchedulerError(f"invalid job id {bad[0]!r}")
        if not ids:
            return {}
        rc, out, err = await self._run(f"squeue -h -t all --jobs={','.join(ids)} -o '{_SQUEUE_FIELDS}'")
        seen = {j: parse_squeue(j, out) for j in ids}
        found = {j: info for j, info in seen.items() if info is not None and not info.terminal}
        left = [j for j in ids if j not in found]
        if left:
            found |= await self._finals(left)
        missing = [j for j in ids if j not in found and seen[j] is None]
        if missing and rc != 0 and "Invalid job id" not in err:
            raise TransientSchedulerError(f"squeue failed, slurmctld may be down: {err.strip()}")
        return {j: found.get(j) or seen[j] or _gone(j) for j in ids}

    async def _finals(self, ids: list[str]) -> dict[str, JobInfo]:
        """Final states of jobs that left squeue: sacct for all at once, scontrol for what it lacks."""
        sacct_rc, sacct_out, _ = await self._run(f"sacct -X -n -P -j {','.join(ids)} -o {_SACCT_FIELDS}")
        finals = {j: info for j in ids if sacct_rc == 0 and (info := parse_sacct(j, sacct_out)) is not None}
        rest = [j for j in ids if j not in finals]
        if rest:
            _, ctl_out, _ = await self._run("; ".join(f"scontrol show job -o {j}" for j in rest))
            for line in ctl_out.splitlines():
                job_id = _KV.match(line.strip())
                info = parse_scontrol(job_id.group(2).strip(), line) if job_id and job_id.group(1) == "JobId" else None
                if info is not None and info.job_id in rest:
                    finals[info.job_id] = info
        return finals

    async def cancel(self, job_id: str) -> None:
        if not str(job_id).isdigit():
            raise SchedulerError(f"invalid job id {job_id!r}")
        rc, out, err = await self._run(f"scancel {job_id}")
        if rc != 0:
            info = await self.status(job_id)
            if not info.terminal:
                raise SchedulerError(f"scancel {job_id} failed: {err.strip()}")

    async def cluster_state(self) -> ClusterState:
        """Nodes and partitions from scontrol, the queue from squeue: one login-node round trip."""
        rc, out, err = await self._run(f"scontrol show node -o && echo {_SECTION} && scontrol show partition -o && "
                                       f"echo {_SECTION} && squeue -h -o '{_SQUEUE_FIELDS}'")
        sections = out.split(f"{_SECTION}\n")
        if rc != 0 or len(sections) != 3:
            raise TransientSchedulerError(f"cannot read the cluster's state, slurmctld may be down: "
                                          f"{(err or out).strip()[:300] or f'exit {rc}'}")
        nodes, partitions, queue = sections
        return ClusterState("ssh (scontrol, squeue)", parse_scontrol_partitions(partitions),
                            parse_scontrol_nodes(nodes), parse_queue(queue))

    async def _tail(self, path: str, max_bytes: int) -> str:
        rc, out, err = await self._run(f"tail -c {int(max_bytes)} -- {shlex.quote(path)}")
        return out if rc == 0 else f"(cannot read {path}: {err.strip()})"

    async def fetch(self, path: str, max_bytes: int = 256 << 20) -> bytes:
        return await fetch_through(self._run, path, max_bytes)
