"""The normalised job spec: what to run and with which resources, scheduler-neutral.

A spec is built from a recipe by `factorybench.slurm.script.build_job_spec`, and each
transport turns it into its own request (sbatch arguments, a REST body, a subprocess).
Values are validated here so that nothing unsafe reaches a shell or a batch header.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

# Conservative: what SLURM itself accepts for names, partitions, accounts and QOS.
_SAFE_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEM = re.compile(r"^\d+[KMGT]?$")
_GRES = re.compile(r"^[A-Za-z0-9_]+(:[A-Za-z0-9_.\-]+)?(:\d+)?$")


def check_word(value: str | None, what: str) -> str | None:
    """Reject anything that is not a plain SLURM word (no spaces, quotes or shell syntax)."""
    if value is None:
        return None
    if not _SAFE_WORD.match(value):
        raise ValueError(f"{what}: {value!r} is not a valid SLURM name "
                         "(letters, digits, '_', '.', '+', '-' only)")
    return value


@dataclass(frozen=True)
class JobSpec:
    name: str
    script: str  # the full batch script, #SBATCH header included
    workdir: str  # where the job runs and writes its output (must exist on the cluster)
    time_limit_min: int
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    ntasks: int = 1
    cpus_per_task: int | None = None
    gres: str | None = None  # e.g. "gpu:4"
    mem: str | None = None  # e.g. "16G"
    environment: dict[str, str] = field(default_factory=dict)
    stdout: str = "%x-%j.out"  # relative to workdir; %x name, %j job id
    stderr: str = "%x-%j.err"

    def __post_init__(self):
        check_word(self.name, "job name")
        for attr in ("partition", "account", "qos"):
            check_word(getattr(self, attr), attr)
        if self.mem is not None and not _MEM.match(self.mem):
            raise ValueError(f"mem: {self.mem!r} must look like 4096, 16G or 512M")
        if self.gres is not None and not _GRES.match(self.gres):
            raise ValueError(f"gres: {self.gres!r} must look like gpu:4 or gpu:a100:4")
        for k in self.environment:
            if not _ENV_NAME.match(k):
                raise ValueError(f"environment: {k!r} is not a valid variable name")
        if self.time_limit_min <= 0:
            raise ValueError("time limit must be positive")
        if self.nodes < 1 or self.ntasks < 1:
            raise ValueError("nodes and ntasks must be at least 1")
        for attr in ("stdout", "stderr", "workdir"):
            v = getattr(self, attr)
            if any(c in v for c in "\n\r\0"):
                raise ValueError(f"{attr}: must be a single line")

    def output_path(self, job_id: str, stream: str = "stdout") -> str:
        """Resolve %x/%j in the output pattern the way SLURM does."""
        pattern = self.stdout if stream == "stdout" else self.stderr
        path = pattern.replace("%x", self.name).replace("%j", str(job_id))
        return path if path.startswith("/") else f"{self.workdir.rstrip('/')}/{path}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "JobSpec":
        return cls(**d)
