"""The one normalised job model every transport speaks.

Transports translate their scheduler's shapes into `JobInfo` and never mutate
shared state: they *return* what they saw. The raw SLURM state and flags are
kept next to the normalised state so the user always sees SLURM's own words.
"""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime


class JobState(str, enum.Enum):
    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    SUSPENDED = "SUSPENDED"
    REQUEUED = "REQUEUED"
    RESIZING = "RESIZING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    # The job left the controller's memory and no accounting could say how it ended.
    # Never silently turned into COMPLETED.
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def succeeded(self) -> bool:
        return self is JobState.COMPLETED


_TERMINAL = frozenset({
    JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT,
    JobState.NODE_FAIL, JobState.OUT_OF_MEMORY, JobState.PREEMPTED, JobState.BOOT_FAIL,
    JobState.DEADLINE, JobState.UNKNOWN,
})

# squeue's compact codes and a few aliases sacct prints ("CANCELLED by 0", "OOM").
_ALIASES = {
    "PD": "PENDING", "CF": "CONFIGURING", "R": "RUNNING", "CG": "COMPLETING",
    "S": "SUSPENDED", "RQ": "REQUEUED", "RS": "RESIZING", "CD": "COMPLETED",
    "F": "FAILED", "CA": "CANCELLED", "TO": "TIMEOUT", "NF": "NODE_FAIL",
    "OOM": "OUT_OF_MEMORY", "PR": "PREEMPTED", "BF": "BOOT_FAIL", "DL": "DEADLINE",
}

# Flags that mean "not finished yet" even when the base state is terminal.
_UNFINISHED_FLAGS = frozenset({"COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
                               "CONFIGURING", "RESIZING", "STAGE_OUT", "SIGNALING"})


def parse_state(raw: str | list[str] | None, requeued: bool = False) -> tuple[JobState, list[str]]:
    """Map SLURM's state (a string like "CANCELLED by 0", or v0.0.40+'s list) to (state, flags).

    The first element of a list is the base state and the rest are flags. A base
    state that is terminal but carries COMPLETING or REQUEUED is not finished yet,
    so it is reported as that flag.
    """
    if raw is None or raw == "" or raw == []:
        return JobState.UNKNOWN, []
    parts = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    words = [str(p).strip().upper() for p in parts if str(p).strip()]
    base_word = words[0].split()[0].rstrip("+")  # "CANCELLED by 0", "CANCELLED+"
    flags = words[1:]
    base_word = _ALIASES.get(base_word, base_word)
    try:
        base = JobState(base_word)
    except ValueError:
        base = JobState.UNKNOWN
        flags = [words[0], *flags]
    unfinished = [f for f in flags if f in _UNFINISHED_FLAGS]
    if base.terminal and base is not JobState.UNKNOWN and (unfinished or requeued):
        if "REQUEUED" in flags or requeued:
            return JobState.REQUEUED, flags
        return JobState.COMPLETING, flags
    return base, flags


@dataclass(frozen=True)
class ExitCode:
    """`rc:signal` as SLURM reports it; `None` parts mean "not known"."""

    returncode: int | None = None
    signal: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> "ExitCode":
        if not text:
            return cls()
        rc, _, sig = str(text).partition(":")
        return cls(int(rc) if rc.strip().isdigit() else None,
                   int(sig) if sig.strip().isdigit() else None)

    def __str__(self) -> str:
        return f"{'' if self.returncode is None else self.returncode}:{'' if self.signal is None else self.signal}"


@dataclass(frozen=True)
class JobInfo:
    """What a transport saw of one job at one moment."""

    job_id: str
    state: JobState
    raw_state: str = ""  # exactly what the scheduler said, for messages
    flags: tuple[str, ...] = ()
    reason: str | None = None  # state_reason: "Resources", "ReqNodeNotAvail", ...
    nodes: tuple[str, ...] = ()  # expanded host names
    exit_code: ExitCode = field(default_factory=ExitCode)
    name: str | None = None
    partition: str | None = None
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    time_limit_s: int | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    source: str = ""  # "squeue", "sacct", "scontrol", "rest v0.0.43", "slurmdb", "local"

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    def describe(self) -> str:
        """A one-line human message with SLURM's own words in it."""
        bits = [f"job {self.job_id} is {self.raw_state or self.state.value}"]
        if self.reason and self.reason not in ("None", ""):
            bits.append(f"reason {self.reason}")
        if self.exit_code.returncode is not None or self.exit_code.signal is not None:
            bits.append(f"exit code {self.exit_code}")
        if self.nodes:
            bits.append(f"on {','.join(self.nodes)}")
        return ", ".join(bits)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["state"] = self.state.value
        d["exit_code"] = {"returncode": self.exit_code.returncode, "signal": self.exit_code.signal}
        for k in ("submit_time", "start_time", "end_time"):
            d[k] = d[k].isoformat() if d[k] else None
        d["flags"] = list(self.flags)
        d["nodes"] = list(self.nodes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "JobInfo":
        d = dict(d)
        d["state"] = JobState(d["state"])
        d["exit_code"] = ExitCode(**d.get("exit_code") or {})
        for k in ("submit_time", "start_time", "end_time"):
            d[k] = datetime.fromisoformat(d[k]) if d.get(k) else None
        d["flags"] = tuple(d.get("flags") or ())
        d["nodes"] = tuple(d.get("nodes") or ())
        return cls(**d)


_RANGE = re.compile(r"^(\d+)-(\d+)$")


def expand_nodelist(text: str | None) -> tuple[str, ...]:
    """Expand SLURM host lists like "mel[2074-2075,2080],gpu01" without calling scontrol."""
    if not text or text in ("(null)", "None", "N/A"):
        return ()
    out: list[str] = []
    depth, start = 0, 0
    items = []
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    for item in filter(None, (s.strip() for s in items)):
        if "[" not in item:
            out.append(item)
            continue
        prefix, _, rest = item.partition("[")
        body, _, suffix = rest.partition("]")
        for part in body.split(","):
            m = _RANGE.match(part)
            if m:
                lo, hi = m.group(1), m.group(2)
                for n in range(int(lo), int(hi) + 1):
                    out.append(f"{prefix}{str(n).zfill(len(lo))}{suffix}")
            else:
                out.append(f"{prefix}{part}{suffix}")
    return tuple(out)
