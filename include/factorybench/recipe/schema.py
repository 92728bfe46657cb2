"""The recipe schema: one YAML file in recipes/ becomes one benchmark DAG.

Every model forbids unknown keys, so a typo is an error that names its key path
instead of a silently ignored setting. Values that reach the batch script are
validated here (plain words) or shell-quoted by the renderer (free text).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from factorybench.load.config import (DatasetConfig, GuardConfig, HttpTemplate, ProfileConfig, Protocol,
                                      SLOConfig)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_WORD = r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$"
_MODULE = r"^[A-Za-z0-9][A-Za-z0-9_.+\-/]*$"
_PRESETS = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@continuous"}

Word = Annotated[str, Field(pattern=_WORD, max_length=128)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def time_to_minutes(text: str | int) -> int:
    """SLURM time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    if isinstance(text, int):
        return text
    s = str(text).strip()
    m = re.match(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$", s)
    if not m:
        raise ValueError(f"{text!r} is not a SLURM time (MM, HH:MM:SS or D-HH:MM:SS)")
    days, a, b, c = m.groups()
    days = int(days or 0)
    if days and c is None and b is None:  # D-HH
        h, mi, sec = int(a), 0, 0
    elif days and c is None:  # D-HH:MM
        h, mi, sec = int(a), int(b), 0
    elif c is not None:  # [D-]HH:MM:SS
        h, mi, sec = int(a), int(b), int(c)
    elif b is not None:  # MM:SS
        h, mi, sec = 0, int(a), int(b)
    else:  # MM
        h, mi, sec = 0, int(a), 0
    total = days * 1440 + h * 60 + mi + (1 if sec else 0)
    if total <= 0:
        raise ValueError(f"time {text!r} must be at least one minute")
    return total


class Resources(Strict):
    partition: Word | None = None
    account: Word | None = None
    qos: Word | None = None
    nodes: int = Field(1, ge=1, le=4096)
    ntasks: int = Field(1, ge=1)
    cpus: int | None = Field(None, ge=1, description="cpus per task")
    gpus: int | None = Field(None, ge=0, le=64, description="GPUs per node")
    mem: str | None = Field(None, pattern=r"^\d+[KMGT]?$")
    time: str = Field("00:30:00", description="SLURM time limit")

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, v):
        v = str(v)
        time_to_minutes(v)
        return v

    @property
    def time_minutes(self) -> int:
        return time_to_minutes(self.time)


class Readiness(Strict):
    path: str = Field("/health", pattern=r"^/[^\s]*$")
    expect_status: int = 200
    deadline_s: float = Field(300, gt=0, description="from RUNNING to ready")
    interval_s: float = Field(1.0, gt=0)


class Service(Strict):
    kind: Literal["sim", "vllm", "ollama", "llamacpp", "openai", "chroma", "qdrant",
                  "pgvector", "http"] = "openai"
    command: list[str] = Field(..., min_length=1, description="argv, each word shell-quoted")
    image: str | None = Field(None, description="Apptainer image; the command runs inside it")
    apptainer_args: list[str] = Field(default_factory=list)
    model: str | None = None
    args: list[str] = Field(default_factory=list, description="extra argv appended to command")
    port: int | Literal["auto"] = Field(8000, description="'auto' = 20000 + job id % 10000")
    env: dict[str, str] = Field(default_factory=dict)
    modules: list[Annotated[str, Field(pattern=_MODULE)]] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, v):
        if isinstance(v, str):
            raise ValueError("must be a list of words (argv), not a shell string")
        return v

    @field_validator("port")
    @classmethod
    def _port(cls, v):
        if isinstance(v, int) and not 1 <= v <= 65535:
            raise ValueError("must be between 1 and 65535")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v):
        for k in v:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                raise ValueError(f"{k!r} is not a valid environment variable name")
        return v


class Client(Strict):
    """The load client. Its load settings are the load engine's own models, not a copy."""

    where: Literal["local", "slurm"] = "local"
    protocol: Protocol = Protocol.OPENAI_CHAT
    stream: bool = True
    profile: ProfileConfig = Field(default_factory=lambda: ProfileConfig(kind="concurrent", streams=4,
                                                                         max_requests=100))
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    slo: SLOConfig = Field(default_factory=SLOConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    http: HttpTemplate = Field(default_factory=HttpTemplate)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    workers: int = Field(1, ge=1, le=64, description="client processes per task")
    timeout_s: float = Field(600, gt=0)
    tasks: int = Field(1, ge=1, le=256, description="SLURM tasks when where=slurm")
    resources: Resources = Field(default_factory=lambda: Resources(partition="cpu"))


class Monitoring(Strict):
    prometheus: bool = Field(True, description="scrape the service's /metrics before and after")
    metrics_path: str = Field("/metrics", pattern=r"^/[^\s]*$")


class Check(Strict):
    metric: str
    max: float | None = None
    min: float | None = None


class ClusterRef(Strict):
    profile: str = Field("dev", description="a name from clusters.yaml")
    transport: Literal["ssh", "rest", "local"] | None = Field(None, description="overrides the profile")


class Recipe(Strict):
    name: str = Field(..., description="becomes the DAG id factorybench_<name>")
    description: str = ""
    schedule: str | None = None
    tags: list[str] = Field(default_factory=list)
    cluster: ClusterRef = Field(default_factory=ClusterRef)
    service: Service
    readiness: Readiness = Field(default_factory=Readiness)
    client: Client = Field(default_factory=Client)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    checks: list[Check] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not _NAME.match(v) or len(v) > 60:
            raise ValueError("lowercase letters, digits, '_' and '-', starting with a letter or digit")
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v):
        if v is None or v in _PRESETS:
            return v
        fields = v.split()
        if len(fields) != 5 or not all(re.match(r"^[\d*/,\-A-Za-z?]+$", f) for f in fields):
            raise ValueError(f"{v!r} is neither a cron expression (5 fields), a preset "
                             f"({', '.join(sorted(_PRESETS))}) nor null")
        return v

    @property
    def dag_id(self) -> str:
        return f"factorybench_{self.name.replace('-', '_')}"


def model_key_paths(errors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """pydantic errors → (dotted key path, reason), in a form a person can act on."""
    out = []
    for e in errors:
        loc = ".".join(str(p) for p in e.get("loc", ()))
        msg = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            msg = "unknown key (check its spelling)"
        elif e.get("type") == "missing":
            msg = "required key is missing"
        out.append((loc, msg))
    return out
