"""The normalised job spec: what to run and with which resources, scheduler-neutral.

A spec is built from a recipe by `factorybench.slurm.script.build_job_spec`, and each
transport turns it into its own request (sbatch arguments, a REST body, a subprocess).
Values are validated here so that nothing unsafe reaches a shell or a batch header.

The value patterns below are the one definition of what may reach an `#SBATCH` line, a
command line or a file name; the recipe schema and the trigger Params use them too. They
are always matched whole (`re.fullmatch`): Python's `$` also matches before a trailing
newline, and `"cpu\\n"` must not pass for `cpu`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ValuePattern:
    """A regular expression a whole value must match, and what it means in words."""

    core: str
    what: str

    @property
    def json(self) -> str:
        """The pattern for a JSON schema (Airflow Params): anchored so that both Python's `re.search`
        (jsonschema) and ECMA's RegExp (the trigger form) reject a trailing newline."""
        return f"^(?:{self.core})$(?!\\n)"

    def matches(self, value: object) -> bool:
        return isinstance(value, str) and re.fullmatch(self.core, value) is not None

    def check(self, value: str, label: str = "") -> str:
        """The value itself when it matches whole; ValueError naming the rule otherwise."""
        if not self.matches(value):
            raise ValueError(f"{label + ': ' if label else ''}{value!r} is not {self.what}")
        return value


# Conservative: what SLURM itself accepts for names, partitions, accounts and QOS.
WORD = ValuePattern(r"[A-Za-z0-9][A-Za-z0-9_.+\-]*",
                    "a plain SLURM name (letters, digits, '_', '.', '+', '-'; no spaces or newlines)")
TIME = ValuePattern(r"(?:\d{1,5}-)?\d{1,6}(?::\d{1,6}){0,2}",
                    "a SLURM time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")
MEM = ValuePattern(r"\d{1,12}[KMGT]?", "a memory size such as 4096, 16G or 512M")
GRES = ValuePattern(r"[A-Za-z0-9_]+(?::[A-Za-z0-9_.\-]+)?(?::\d+)?", "a GRES such as gpu:4 or gpu:a100:4")
ENV_NAME = ValuePattern(r"[A-Za-z_][A-Za-z0-9_]*", "a valid environment variable name")
MODULE = ValuePattern(r"[A-Za-z0-9][A-Za-z0-9_.+\-/]*", "a module name such as Apptainer/1.3.6-GCCcore-13.3.0")
# Directories and output patterns on the cluster: absolute, no whitespace, quotes or shell syntax.
PATH = ValuePattern(r"/[A-Za-z0-9_.,+\-/@~%]*", "an absolute path of letters, digits and _.,+-/@~% only")
OUTPUT = ValuePattern(r"[A-Za-z0-9_.,+\-/@~%]+", "an output file pattern of letters, digits and _.,+-/@~% only")


def check_word(value: str | None, what: str) -> str | None:
    """Reject anything that is not a plain SLURM word (no spaces, quotes or shell syntax)."""
    return None if value is None else WORD.check(value, what)


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
        if self.mem is not None:
            MEM.check(self.mem, "mem")
        if self.gres is not None:
            GRES.check(self.gres, "gres")
        for k in self.environment:
            ENV_NAME.check(k, "environment")
        if self.time_limit_min <= 0:
            raise ValueError("time limit must be positive")
        if self.nodes < 1 or self.ntasks < 1:
            raise ValueError("nodes and ntasks must be at least 1")
        PATH.check(self.workdir, "workdir")
        OUTPUT.check(self.stdout, "stdout")
        OUTPUT.check(self.stderr, "stderr")

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
