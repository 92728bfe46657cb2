"""What a SLURM cluster looks like now: its partitions, its nodes, and factorybench's queue.

`Transport.cluster_state()` returns this one read-only model whatever the transport: ssh reads
`scontrol show node|partition -o` and `squeue` (slurm/ssh.py), rest the nodes, partitions and
jobs endpoints of every version (shapes read in rest/dialects.py), local this machine
(slurm/local.py). As in `JobInfo`, SLURM's own words (`raw_state`) stay next to the normalised
ones. Only factorybench's jobs (names starting with JOB_PREFIX) that have not ended are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from factorybench.slurm.job import JobInfo

JOB_PREFIX = "fb-"  # every job factorybench submits is named fb-<recipe>-<role>-<run_tag> (slurm.script.job_name)

# Node state suffixes sinfo/scontrol print after the base state, as flags.
_MARKERS = {"*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP", "%": "POWERING_DOWN",
            "$": "MAINTENANCE", "@": "REBOOT_REQUESTED", "!": "POWER_DOWN", "-": "PLANNED", "^": "REBOOT_ISSUED"}
_UNUSABLE_FLAGS = frozenset({"DRAIN", "FAIL", "NOT_RESPONDING", "POWERED_DOWN", "POWERING_DOWN", "MAINTENANCE",
                             "REBOOT_ISSUED", "INVALID_REG"})
_USABLE = ("idle", "mixed", "allocated", "completing", "reserved", "planned")
_GRES_GPU = re.compile(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)")
_TRES_GPU = re.compile(r"(?:^|,)gres/gpu(:[^=,]+)?=(\d+)")


def node_state(raw: str | list[str] | None, flags: Iterable[str] = ()) -> tuple[str, str]:
    """SLURM's node state as (normalised word, SLURM's words).

    Accepts scontrol's "MIXED+DRAIN" and "IDLE*", REST's ["MIXED", "DRAIN"] (v0.0.39+) and
    v0.0.37/38's "mixed" with its separate state_flags. The word is idle, mixed, allocated,
    completing, drained (drain set, nothing running), draining (drain set, jobs still
    running), down, or SLURM's base word in lower case.
    """
    parts = [str(p) for p in raw] if isinstance(raw, (list, tuple)) else str(raw or "").split("+")
    parts = [p.strip().upper() for p in parts if p and p.strip()] or ["UNKNOWN"]
    base, markers = parts[0], []
    while base and base[-1] in _MARKERS:
        markers.insert(0, _MARKERS[base[-1]])
        base = base[:-1]
    base = base or "UNKNOWN"
    words = [*markers, *(w.upper() for w in (*parts[1:], *flags))]
    if "DRAIN" in words or base in ("DRAIN", "DRAINED", "DRAINING"):
        word = "drained" if base in ("IDLE", "DOWN", "DRAIN", "DRAINED") else "draining"
    elif base == "DOWN" or "FAIL" in words or "NOT_RESPONDING" in words:
        word = "down"
    elif base in ("ALLOC", "ALLOCATED"):
        word = "allocated"
    else:
        word = base.lower()
    return word, "+".join(dict.fromkeys([base, *words]))


def gres_gpus(gres: str | None) -> int | None:
    """GPUs in a gres string: "gpu:a100:4(S:0-1),gpu:2" → 6, "gpu:a100:2(IDX:0-1)" → 2."""
    if not gres or gres in ("(null)", "N/A"):
        return None
    counts = [int(n) for n in _GRES_GPU.findall(gres)]
    return sum(counts) if counts else None


def tres_gpus(tres: str | None) -> int | None:
    """GPUs in a TRES string: the generic "gres/gpu=4", else the sum of the typed ones."""
    found = _TRES_GPU.findall(tres or "")
    generic = [int(n) for typed, n in found if not typed]
    if generic:
        return generic[0]
    return sum(int(n) for _, n in found) if found else None


def gpus(gres: str | None, tres: str | None) -> int:
    """A node's GPUs from whichever of its gres and TRES strings says (gres first)."""
    value = gres_gpus(gres)
    return value if value is not None else (tres_gpus(tres) or 0)


@dataclass(frozen=True)
class NodeState:
    name: str
    state: str  # node_state()'s word
    raw_state: str  # SLURM's words, "MIXED+DRAIN"
    partitions: tuple[str, ...] = ()
    cpus: int | None = None
    cpus_alloc: int | None = None
    memory_mb: int | None = None
    memory_alloc_mb: int | None = None
    gpus: int = 0
    gpus_used: int = 0
    reason: str | None = None

    @property
    def usable(self) -> bool:
        """Can take work now (not down, drained, draining, failed or powered down)."""
        flags = set(self.raw_state.split("+")[1:])
        return self.state in _USABLE and not flags & _UNUSABLE_FLAGS

    @property
    def gpus_free(self) -> int:
        return max(self.gpus - self.gpus_used, 0) if self.usable else 0


@dataclass(frozen=True)
class PartitionState:
    name: str
    state: str | None  # UP, DOWN, DRAIN, INACTIVE; None where the API does not say (v0.0.39)
    default: bool = False
    nodes: tuple[str, ...] = ()  # expanded node names
    total_cpus: int | None = None
    max_time_s: int | None = None  # None: unlimited or not said


@dataclass(frozen=True)
class PartitionSummary:
    """A partition's nodes by state, and its CPUs and GPUs, counted over its nodes."""

    partition: PartitionState
    nodes_by_state: dict[str, int]
    cpus: int
    cpus_alloc: int
    gpus: int
    gpus_used: int
    gpus_free: int


@dataclass(frozen=True)
class ClusterState:
    source: str  # "ssh (scontrol, squeue)", "rest v0.0.43", "local"
    partitions: tuple[PartitionState, ...]
    nodes: tuple[NodeState, ...]
    jobs: tuple[JobInfo, ...]  # factorybench's jobs that have not ended, oldest first
    taken_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def nodes_of(self, partition: PartitionState) -> list[NodeState]:
        names = set(partition.nodes)
        return [n for n in self.nodes if n.name in names or partition.name in n.partitions]

    def summary(self, partition: PartitionState) -> PartitionSummary:
        nodes = self.nodes_of(partition)
        by_state: dict[str, int] = {}
        for n in nodes:
            by_state[n.state] = by_state.get(n.state, 0) + 1
        return PartitionSummary(partition, dict(sorted(by_state.items())), sum(n.cpus or 0 for n in nodes),
                                sum(n.cpus_alloc or 0 for n in nodes), sum(n.gpus for n in nodes),
                                sum(n.gpus_used for n in nodes), sum(n.gpus_free for n in nodes))

    def jobs_of_run(self, recipe: str, run_tag: str) -> list[JobInfo]:
        """The jobs of one run: named fb-<recipe>-<role>-<run_tag> (slurm.script.job_name)."""
        return [j for j in self.jobs if (j.name or "").startswith(f"{JOB_PREFIX}{recipe}-")
                and (j.name or "").endswith(f"-{run_tag}")]


def queued(jobs: Iterable[JobInfo]) -> tuple[JobInfo, ...]:
    """factorybench's jobs that have not ended, by job id."""
    keep = [j for j in jobs if (j.name or "").startswith(JOB_PREFIX) and not j.terminal]
    return tuple(sorted(keep, key=lambda j: (len(j.job_id), j.job_id)))
