"""The recipe schema: one YAML file in recipes/ becomes one benchmark DAG.

Every model forbids unknown keys, so a typo is an error that names its key path
instead of a silently ignored setting. Values that reach the batch script are
validated here (plain words) or shell-quoted by the renderer (free text).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from factorybench.analysis.config import ChecksConfig
from factorybench.load.config import (DatabaseTarget, DatasetConfig, EmbeddingsConfig, GuardConfig, HttpTemplate,
                                      KVConfig, ProfileConfig, Protocol, SanityConfig, SLOConfig, SQLConfig,
                                      VectorConfig, check_workload)
from factorybench.slurm import spec as patterns
from factorybench.slurm.spec import ValuePattern

NAME = ValuePattern(r"[a-z0-9][a-z0-9_\-]{0,59}",
                    "lowercase letters, digits, '_' and '-', starting with a letter or digit, at most 60")
URL_PATH = ValuePattern(r"/[^\s]*", "a URL path starting with '/' and without whitespace")
# JSON-schema forms (Airflow Params): safe under both Python's re and ECMA RegExp.
SLURM_WORD = patterns.WORD.json
SLURM_TIME = patterns.TIME.json
# Airflow's schedule presets (airflow.utils.dates.cron_presets, plus @once and @continuous).
PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


def matching(pattern: ValuePattern, max_length: int | None = None):
    """A str type that must match `pattern` whole; the stored value is exactly the checked one."""
    return Annotated[str, Field(max_length=max_length), AfterValidator(pattern.check)]


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character (no argv or environment value can hold one)")
    return value


Word = matching(patterns.WORD, 128)
EnvName = matching(patterns.ENV_NAME, 128)
Text = Annotated[str, AfterValidator(_no_nul)]  # free text that the script shell-quotes


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def time_to_minutes(text: str | int) -> int:
    """SLURM time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    if isinstance(text, int):
        return text
    patterns.TIME.check(text)  # whole value: no stripping, so the value used is the value checked
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    assert m is not None
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
    mem: matching(patterns.MEM) | None = None
    time: str = Field("00:30:00", description="SLURM time limit")

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, v):
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)  # YAML `time: 30` means 30 minutes
        if not isinstance(v, str):
            raise ValueError("must be a SLURM time string such as 00:30:00")
        time_to_minutes(v)
        return v

    @property
    def time_minutes(self) -> int:
        return time_to_minutes(self.time)


class Readiness(Strict):
    kind: Literal["http", "tcp"] = Field("http", description="http: GET path until expect_status; "
                                                           "tcp: a TCP connect (Redis, PostgreSQL)")
    path: matching(URL_PATH) = "/health"
    expect_status: int = 200
    deadline_s: float = Field(300, gt=0, description="from RUNNING to ready")
    interval_s: float = Field(1.0, gt=0)


RESERVED_PREFIXES = ("FB_", "SLURM_", "SBATCH_")
AIRFLOW_KEY = ValuePattern(r"[A-Za-z0-9_.\-]{1,250}", "an Airflow id (letters, digits, '_', '.', '-')")
CONN_FIELD = ValuePattern(r"password|login|extra\.[A-Za-z0-9_.\-]{1,250}", "password, login or extra.<key>")


class SecretRef(Strict):
    """Where a secret lives: exactly one of connection, variable, file or env. Only the reference
    is in the recipe; Airflow resolves it when it submits the job (factorybench.secrets)."""

    connection: matching(AIRFLOW_KEY) | None = Field(None, description="an Airflow connection id")
    field: matching(CONN_FIELD) | None = Field(None, description="the connection's password (default), "
                                                                "login or extra.<key>")
    variable: matching(AIRFLOW_KEY) | None = Field(None, description="an Airflow Variable's key")
    file: matching(patterns.PATH) | None = Field(None, description="a file readable by the Airflow worker")
    env: EnvName | None = Field(None, description="an environment variable of the Airflow worker")

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("connection", "variable", "file", "env") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of connection, variable, file or env"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.field is not None and self.connection is None:
            raise ValueError("field applies only to a connection")
        return self

    def describe(self) -> str:
        """The reference in words, for messages (never the value)."""
        if self.connection is not None:
            return f"connection {self.connection!r} ({self.field or 'password'})"
        kind = next(k for k in ("variable", "file", "env") if getattr(self, k) is not None)
        return f"{kind} {getattr(self, kind)!r}"


class Service(Strict):
    kind: Literal["sim", "vllm", "ollama", "llamacpp", "openai", "chroma", "qdrant",
                  "pgvector", "http", "infinity", "redis", "postgres"] = "openai"
    command: list[Text] = Field(..., min_length=1, description="argv, each word shell-quoted")
    image: Text | None = Field(None, description="Apptainer image; the command runs inside it")
    apptainer_args: list[Text] = Field(default_factory=list)
    model: Text | None = None
    args: list[Text] = Field(default_factory=list, description="extra argv appended to command")
    port: int | Literal["auto"] = Field(8000, description="'auto' = 20000 + job id % 10000")
    env: dict[EnvName, Text] = Field(default_factory=dict, description="exported in the script, shell-quoted")
    secrets: dict[EnvName, SecretRef] = Field(
        default_factory=dict, description="environment variables whose values are resolved by Airflow at "
                                          "submit time and never written to the script, XCom or the archive")
    modules: list[matching(patterns.MODULE, 256)] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    serve_on: Literal["every-node", "first-node"] = Field(
        "every-node", description="with resources.nodes > 1: every-node runs the command once per node (srun, "
                                  "a replica each, the load spread over them); first-node runs it once, and it "
                                  "starts its own workers on the other nodes (vLLM over Ray)")

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

    @model_validator(mode="after")
    def _replicas(self):
        res = self.resources
        if res.nodes > 1 and self.serve_on == "every-node" and res.ntasks < res.nodes:
            raise ValueError(f"resources.ntasks: a replica on each of the {res.nodes} nodes needs ntasks >= nodes "
                             f"(got {res.ntasks}); or set serve_on: first-node")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """serve_on is left out at its default, so recipes written before it keep their hash."""
        data = handler(self)
        if self.serve_on == "every-node":
            data.pop("serve_on", None)
        return data

    @model_validator(mode="after")
    def _secret_names(self):
        for name in self.secrets:
            if name in self.env:
                raise ValueError(f"secrets.{name}: also set in service.env; a value is either plain or secret")
            if name == "PATH" or name.startswith(RESERVED_PREFIXES):
                raise ValueError(f"secrets.{name}: PATH and names starting with "
                                 f"{', '.join(RESERVED_PREFIXES)} are reserved")
        return self


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
    ignore_eos: bool = Field(False, description="ask for exactly max_tokens (vLLM, llama.cpp)")
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)
    vector: VectorConfig = Field(default_factory=VectorConfig)
    kv: KVConfig = Field(default_factory=KVConfig)
    sql: SQLConfig = Field(default_factory=SQLConfig)
    db: DatabaseTarget = Field(default_factory=DatabaseTarget)
    sanity: SanityConfig = Field(default_factory=SanityConfig)
    workers: int = Field(1, ge=1, le=64, description="client processes per task")
    timeout_s: float = Field(600, gt=0)
    tasks: int = Field(1, ge=1, le=256, description="SLURM tasks when where=slurm")
    resources: Resources = Field(default_factory=lambda: Resources(partition="cpu"))

    @model_validator(mode="after")
    def _workload(self) -> Client:
        check_workload(self.protocol, self.vector)
        return self


class Monitoring(Strict):
    """What to watch beside the load (docs/MONITORING.md); the cluster profile says where things are."""

    prometheus: bool = Field(True, description="scrape the service's /metrics during the load (kinds sim, "
                                               "vllm, llamacpp)")
    metrics_path: matching(URL_PATH) = "/metrics"
    interval_s: float = Field(2.0, ge=0.1, le=300, description="scrape interval of the service's /metrics")
    exporters: list[Literal["node", "dcgm"]] = Field(
        default_factory=list, description="exporters the service job starts next to the service and registers "
                                          "for Prometheus (needs the profile's monitoring.file_sd_dir)")
    push: bool = Field(True, description="push live progress and the run's summary to the profile's Pushgateway")
    token_tolerance: float = Field(0.0, ge=0, le=1, description="relative server/client output-token "
                                                                "difference the validity check accepts")


class ClusterRef(Strict):
    profile: str = Field("dev", description="a name from clusters.yaml")
    transport: Literal["ssh", "rest", "local"] | None = Field(None, description="overrides the profile")


class Recipe(Strict):
    name: str = Field(..., description="becomes the DAG id factorybench_<name>")
    description: str = ""
    schedule: str | None = None
    # How Airflow schedules the recipe, not what a run measures: left out of model_dump, so it is in
    # no recipe hash and no plan.
    max_active_runs: int = Field(1, ge=1, le=64, exclude=True,
                                 description="runs of this recipe at once (the DAG's max_active_runs)")
    tags: list[str] = Field(default_factory=list)
    cluster: ClusterRef = Field(default_factory=ClusterRef)
    service: Service
    readiness: Readiness = Field(default_factory=Readiness)
    client: Client = Field(default_factory=Client)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    checks: ChecksConfig = Field(default_factory=ChecksConfig, description="how runs are judged against history")

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not NAME.matches(v):
            raise ValueError(NAME.what)
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v):
        if v is None or v in PRESETS:
            return v
        from croniter import croniter  # only for recipes that have a cron schedule

        if not (re.fullmatch(r"\S+(?: \S+){4}", v) and croniter.is_valid(v)):
            raise ValueError(f"{v!r} is not a valid 5-field cron expression, an Airflow preset "
                             f"({', '.join(PRESETS)}) or null")
        return v

    @model_validator(mode="after")
    def _one_metrics_endpoint(self):
        svc = self.service
        if svc.resources.nodes > 1 and svc.serve_on == "every-node" and self.monitoring.prometheus:
            raise ValueError("monitoring.prometheus: the server-metrics watcher scrapes one server, and the run's "
                             "token check would compare one replica's counters with the whole load; set it to "
                             "false for a service with a replica on every node")
        return self

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.name)


def dag_id_for(recipe_name: str) -> str:
    return f"factorybench_{recipe_name.replace('-', '_')}"


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
