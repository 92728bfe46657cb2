"""slurmrestd's versions v0.0.37 … v0.0.45: JobSpec → submit body, job record → JobInfo.

SchedMD changed the JSON shapes a little at a time. Each class below is one such
change; a version is the combination of shapes it speaks (`DIALECTS`). Nothing
outside this package knows these shapes exist.

Requests are built strictly for the version (servers warn or refuse otherwise).
Responses are read tolerantly: every reader accepts both the old and the new
form of its field, because one server release often mixes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from factorybench.slurm.cluster_state import NodeState, PartitionState, gpus, node_state
from factorybench.slurm.job import ExitCode, JobInfo, expand_nodelist, parse_state
from factorybench.slurm.spec import JobSpec

# slurmctld always rejects a batch job without an environment; PATH is the least it needs.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# NO_VAL / INFINITE sentinels as plain integers (older versions and slurmdb print them raw).
_SENTINELS = frozenset({0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFE, 0xFFFFFFFFFFFFFFFF})
_MEM_FACTOR = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


# --- reading -------------------------------------------------------------------------

def number(value: Any) -> int | None:
    """An int from `5`, `"5"` or `{set, infinite, number}`; None when unset, infinite or NO_VAL."""
    if isinstance(value, dict):
        if value.get("infinite") or not value.get("set", True):
            return None
        value = value.get("number")
    if isinstance(value, str):
        value = int(value) if value.strip().isdigit() else None
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = int(value)
    return None if value in _SENTINELS else value


def timestamp(value: Any) -> datetime | None:
    """Epoch seconds (int or NO_VAL object) as an aware UTC datetime; 0 means "not yet"."""
    n = number(value)
    return datetime.fromtimestamp(n, tz=timezone.utc) if n else None


def exit_code(value: Any) -> ExitCode:
    """`{status, return_code, signal}` (v0.0.40+, and slurmdb's v0.0.39), or a raw wait(2) status."""
    if isinstance(value, dict) and ("return_code" in value or "signal" in value):
        signal = value.get("signal") or {}
        sig = signal.get("id", signal.get("signal_id")) if isinstance(signal, dict) else signal
        return ExitCode(number(value.get("return_code")), number(sig) or None)
    raw = number(value)
    if raw is None:
        return ExitCode()
    # wait(2) layout, as slurmctld stores it: low 7 bits signal, next byte exit status.
    return ExitCode(raw >> 8 & 0xFF, raw & 0x7F or None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value not in ("", "(null)") else None


def job_info(record: dict, version: str, requeued: bool = False) -> JobInfo:
    """One `jobs[]` entry of GET /slurm/vX/job/{id} as a JobInfo."""
    raw = record.get("job_state")
    state, flags = parse_state(raw, requeued=requeued)
    limit = number(record.get("time_limit"))
    job_res = record.get("job_resources") or {}
    nodes = _text(record.get("nodes")) or _text(job_res.get("nodes") if isinstance(job_res, dict) else None)
    return JobInfo(
        job_id=str(record.get("job_id")),
        state=state,
        raw_state=" ".join(raw) if isinstance(raw, list) else str(raw or ""),
        flags=tuple(flags),
        reason=_text(record.get("state_reason")),
        nodes=expand_nodelist(nodes),
        exit_code=exit_code(record.get("exit_code")),
        name=_text(record.get("name")),
        partition=_text(record.get("partition")),
        submit_time=timestamp(record.get("submit_time")),
        start_time=timestamp(record.get("start_time")),
        end_time=timestamp(record.get("end_time")),
        time_limit_s=limit * 60 if limit is not None else None,
        stdout_path=_text(record.get("standard_output")),
        stderr_path=_text(record.get("standard_error")),
        source=f"rest {version}",
    )


def db_job_info(record: dict, version: str) -> JobInfo:
    """One `jobs[]` entry of GET /slurmdb/vX/job/{id} (accounting's nested shape)."""
    st = record.get("state") or {}
    raw = st.get("current") if isinstance(st, dict) else st
    state, flags = parse_state(raw)
    times = record.get("time") or {}
    limit = number(times.get("limit"))
    return JobInfo(
        job_id=str(record.get("job_id")),
        state=state,
        raw_state=" ".join(raw) if isinstance(raw, list) else str(raw or ""),
        flags=tuple(flags),
        reason=_text(st.get("reason")) if isinstance(st, dict) else None,
        nodes=expand_nodelist(_text(record.get("nodes"))),
        exit_code=exit_code(record.get("exit_code")),
        name=_text(record.get("name")),
        partition=_text(record.get("partition")),
        submit_time=timestamp(times.get("submission")),
        start_time=timestamp(times.get("start")),
        end_time=timestamp(times.get("end")),
        time_limit_s=limit * 60 if limit is not None else None,
        source=f"slurmdb {version}",
    )


def node_info(record: dict) -> NodeState:
    """One `nodes[]` entry of GET /slurm/vX/nodes. v0.0.37/38 give the state as a word with
    separate `state_flags` ("mixed", ["DRAIN"]); v0.0.39+ as a list (["MIXED", "DRAIN"])."""
    word, raw = node_state(record.get("state"), record.get("state_flags") or ())
    return NodeState(
        name=str(record.get("name")), state=word, raw_state=raw,
        partitions=tuple(record.get("partitions") or ()), cpus=number(record.get("cpus")),
        cpus_alloc=number(record.get("alloc_cpus")), memory_mb=number(record.get("real_memory")),
        memory_alloc_mb=number(record.get("alloc_memory")),
        gpus=gpus(_text(record.get("gres")), _text(record.get("tres"))),
        gpus_used=gpus(_text(record.get("gres_used")), _text(record.get("tres_used"))),
        reason=_text(record.get("reason")))


def partition_info(record: dict) -> PartitionState:
    """One `partitions[]` entry of GET /slurm/vX/partitions. v0.0.37/38 are flat (`state`,
    `nodes`, `total_cpus`, `max_time_limit`, flags ["default"]); v0.0.39+ nest them
    (`partition.state` from v0.0.40 on, `nodes.configured`, `cpus.total`, `maximums.time`;
    flags ["DEFAULT"] only where the server reports it, 26.05)."""
    nodes, cpus, maximums = record.get("nodes"), record.get("cpus"), record.get("maximums")
    nested = record.get("partition") if isinstance(record.get("partition"), dict) else {}
    state = nested.get("state", record.get("state"))
    state = (state[0] if state else None) if isinstance(state, list) else state
    limit = number(maximums.get("time")) if isinstance(maximums, dict) else number(record.get("max_time_limit"))
    return PartitionState(
        name=str(record.get("name")), state=_text(state.upper() if isinstance(state, str) else None),
        default="DEFAULT" in {str(f).upper() for f in record.get("flags") or ()},
        nodes=expand_nodelist(_text(nodes.get("configured") if isinstance(nodes, dict) else nodes)),
        total_cpus=number(cpus.get("total") if isinstance(cpus, dict) else record.get("total_cpus")),
        max_time_s=limit * 60 if limit is not None and limit >= 0 else None)


# --- writing: one class per shape change ----------------------------------------------

class ScriptTopLevel:
    """v0.0.37/38: the script sits next to `job`, not inside it."""

    def place(self, body: dict, job: dict, script: str) -> None:
        body["script"] = script


class ScriptInJob:
    """v0.0.39+: `job.script` (top level deprecated in v0.0.41)."""

    def place(self, body: dict, job: dict, script: str) -> None:
        job["script"] = script


class EnvObject:
    """v0.0.37/38: `{"NAME": "value"}`."""

    def encode(self, env: dict[str, str]) -> Any:
        return dict(env)


class EnvList:
    """v0.0.39+: `["NAME=value"]`."""

    def encode(self, env: dict[str, str]) -> Any:
        return [f"{k}={v}" for k, v in env.items()]


class PlainNumbers:
    """v0.0.37/38: NO_VAL-capable numbers are plain ints."""

    def encode(self, n: int) -> Any:
        return n


class NoValNumbers:
    """v0.0.39+: `{set, infinite, number}` (an int still parses but earns a warning)."""

    def encode(self, n: int) -> Any:
        return {"set": True, "infinite": False, "number": n}


class NodeRange:
    """v0.0.37/38: `nodes` is `[min, max]`."""

    def place(self, job: dict, n: int) -> None:
        job["nodes"] = [n, n]


class NodeMinMax:
    """v0.0.39+: `minimum_nodes` and `maximum_nodes` (`nodes` became a range string)."""

    def place(self, job: dict, n: int) -> None:
        job["minimum_nodes"] = n
        job["maximum_nodes"] = n


class GresField:
    """v0.0.37/38: `gres` as sbatch --gres takes it ("gpu:4")."""

    def place(self, job: dict, gres: str) -> None:
        job["gres"] = gres


class TresPerNode:
    """v0.0.39+: `tres_per_node` in TRES syntax ("gres/gpu:4")."""

    def place(self, job: dict, gres: str) -> None:
        job["tres_per_node"] = f"gres/{gres}"


def memory_mb(mem: str) -> int:
    """"16G" → 16384. A bare number is MB, as in sbatch --mem."""
    unit = mem[-1] if mem[-1] in _MEM_FACTOR else "M"
    digits = mem[:-1] if mem[-1] in _MEM_FACTOR else mem
    return max(1, int(int(digits) * _MEM_FACTOR[unit]))


def output_pattern(spec: JobSpec, stream: str) -> str:
    """Absolute output path with %j left for SLURM (slurmrestd ignores #SBATCH lines)."""
    pattern = (spec.stdout if stream == "stdout" else spec.stderr).replace("%x", spec.name)
    return pattern if pattern.startswith("/") else f"{spec.workdir.rstrip('/')}/{pattern}"


@dataclass(frozen=True)
class Dialect:
    """The shapes one API version speaks."""

    script: ScriptTopLevel | ScriptInJob
    env: EnvObject | EnvList
    numbers: PlainNumbers | NoValNumbers
    nodes: NodeRange | NodeMinMax
    gres: GresField | TresPerNode

    def submit_body(self, spec: JobSpec, secrets: Mapping[str, str] | None = None) -> dict:
        """Every sbatch option as a body field: the #SBATCH header is not read by slurmrestd.
        Secrets join the job's `environment`, the only place they are sent."""
        env = {"PATH": DEFAULT_PATH, **spec.environment, **(secrets or {})}
        job: dict[str, Any] = {
            "name": spec.name,
            "current_working_directory": spec.workdir,
            "standard_output": output_pattern(spec, "stdout"),
            "standard_error": output_pattern(spec, "stderr"),
            "environment": self.env.encode(env),
            "time_limit": self.numbers.encode(spec.time_limit_min),
            "tasks": spec.ntasks,
        }
        self.nodes.place(job, spec.nodes)
        for key in ("partition", "account", "qos"):
            if getattr(spec, key):
                job[key] = getattr(spec, key)
        if spec.cpus_per_task:
            job["cpus_per_task"] = spec.cpus_per_task
        if spec.mem:
            job["memory_per_node"] = self.numbers.encode(memory_mb(spec.mem))
        if spec.gres:
            self.gres.place(job, spec.gres)
        body: dict[str, Any] = {"job": job}
        self.script.place(body, job, spec.script)
        return body


_LEGACY = Dialect(ScriptTopLevel(), EnvObject(), PlainNumbers(), NodeRange(), GresField())
_MODERN = Dialect(ScriptInJob(), EnvList(), NoValNumbers(), NodeMinMax(), TresPerNode())

# Every version we speak, oldest first. Which shape each uses is checked against real
# servers (v0.0.37/38 on 22.05, v0.0.40-42 on 24.11, v0.0.42-45 on 26.05) and, for
# v0.0.39, against SchedMD's published spec (tests/fixtures/rest/v0.0.39).
DIALECTS: dict[str, Dialect] = {
    "v0.0.37": _LEGACY,
    "v0.0.38": _LEGACY,
    "v0.0.39": _MODERN,
    "v0.0.40": _MODERN,
    "v0.0.41": _MODERN,
    "v0.0.42": _MODERN,
    "v0.0.43": _MODERN,
    "v0.0.44": _MODERN,
    "v0.0.45": _MODERN,
}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.lstrip("v").split("."))


SUPPORTED = tuple(sorted(DIALECTS, key=version_key))
