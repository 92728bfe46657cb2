"""What a load run is: target, protocol, dataset, load profile, SLOs and client limits.

One pydantic model so the same run can come from a CLI, a recipe, a DAG task or
a SLURM job's JSON file, and be recorded next to its results.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Protocol(str, Enum):
    """Wire protocol: decides request bodies and how responses are parsed."""

    OPENAI_CHAT = "openai-chat"
    OPENAI_COMPLETIONS = "openai-completions"
    OPENAI_EMBEDDINGS = "openai-embeddings"
    OLLAMA_GENERATE = "ollama-generate"
    OLLAMA_CHAT = "ollama-chat"
    HTTP_JSON = "http-json"


class Lengths(BaseModel):
    """A token-length distribution; sampled with a seeded generator so runs are reproducible."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["fixed", "uniform", "normal", "lognormal"] = Field(
        "fixed", description="fixed: always `mean`; uniform: [min, max]; normal/lognormal: `mean`, `std`")
    mean: float = Field(64, gt=0, description="Mean length in tokens")
    std: float = Field(0, ge=0, description="Standard deviation in tokens (normal, lognormal)")
    min: int = Field(1, ge=1, description="Lower clip, in tokens")
    max: int | None = Field(None, ge=1, description="Upper clip, in tokens (also the uniform upper bound)")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "fixed":
            values = np.full(n, self.mean)
        elif self.kind == "uniform":
            values = rng.uniform(self.min, self.max or 2 * self.mean - self.min, n)
        elif self.kind == "normal":
            values = rng.normal(self.mean, self.std, n)
        else:  # parametrised by the mean and std of the lengths themselves, not of the log
            sigma2 = np.log1p((self.std / self.mean) ** 2)
            values = rng.lognormal(np.log(self.mean) - sigma2 / 2, np.sqrt(sigma2), n)
        return np.clip(np.rint(values), self.min, self.max or np.inf).astype(int)


class DatasetConfig(BaseModel):
    """Where prompts come from."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["synthetic", "jsonl", "bundled"] = Field(
        "synthetic", description="synthetic prompts, a JSONL file, or the bundled prompt set")
    path: str | None = Field(None, description="JSONL file of {prompt|messages, output_tokens?} (kind=jsonl)")
    prompt_tokens: Lengths = Field(default_factory=Lengths, description="Synthetic prompt lengths")
    output_tokens: Lengths = Field(default_factory=lambda: Lengths(mean=32),
                                   description="max_tokens per request, unless the record sets output_tokens")
    pool_size: int = Field(1024, ge=1, description="Distinct synthetic prompts; requests cycle through them")
    seed: int = Field(0, description="Seed for lengths and prompt text")

    @model_validator(mode="after")
    def _path_for_jsonl(self) -> DatasetConfig:
        if self.kind == "jsonl" and not self.path:
            raise ValueError("dataset kind=jsonl needs a path")
        return self


ProfileKind = Literal["synchronous", "concurrent", "constant", "poisson", "gamma", "sweep", "capacity"]


class ProfileConfig(BaseModel):
    """How load is offered over time, and when each step stops."""

    model_config = ConfigDict(extra="forbid")

    kind: ProfileKind = Field("concurrent", description="Load model")
    streams: int = Field(1, ge=1, description="Closed-loop users (concurrent; the max-throughput step of sweep)")
    rate: float | None = Field(None, gt=0, description="Requests/s for constant, poisson, gamma")
    burstiness: float = Field(1.0, gt=0, description="Gamma shape: 1 is Poisson, below 1 burstier")
    max_concurrency: int | None = Field(
        None, ge=1, description="Cap on in-flight requests for open loop; the wait is reported as queue time")
    duration_s: float | None = Field(None, gt=0, description="Stop sending after this many seconds (per step)")
    max_requests: int | None = Field(None, ge=1, description="Stop after this many requests (per step, incl. warm-up)")
    warmup_requests: int = Field(0, ge=0, description="First requests of each step excluded from statistics")
    warmup_s: float = Field(0, ge=0, description="Requests sent in the first seconds of each step are excluded")
    sweep_points: int = Field(5, ge=1, description="Sweep: number of rates between synchronous and max throughput")
    sweep_arrival: Literal["constant", "poisson"] = Field("constant",
                                                          description="Sweep and capacity: arrival process")
    rate_lo: float | None = Field(None, gt=0, description="Capacity: a rate expected to pass (default 1 req/s)")
    rate_hi: float | None = Field(None, gt=0, description="Capacity: a rate expected to fail (found by doubling)")
    rel_tolerance: float = Field(0.05, gt=0, description="Capacity: stop when (fail - pass) / pass is below this")
    max_probes: int = Field(12, ge=1, description="Capacity: give up after this many probes")
    max_error_rate: float = Field(0.01, ge=0, le=1, description="Capacity: a probe fails above this error rate")
    seed: int = Field(0, description="Seed for arrival times")

    @model_validator(mode="after")
    def _bounded(self) -> ProfileConfig:
        if self.duration_s is None and self.max_requests is None:
            raise ValueError("a profile needs duration_s and/or max_requests")
        if self.kind in ("constant", "poisson", "gamma") and self.rate is None:
            raise ValueError(f"profile {self.kind} needs a rate")
        return self


class SLOConfig(BaseModel):
    """Latency objectives: per request for goodput, at p99 for capacity search."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: float | None = Field(None, gt=0, description="Time to first token")
    tpot_ms: float | None = Field(None, gt=0, description="Time per output token after the first")
    e2e_ms: float | None = Field(None, gt=0, description="End-to-end latency")

    def is_set(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2e_ms))


class GuardConfig(BaseModel):
    """Thresholds past which the client, not the server, limited the measurement."""

    model_config = ConfigDict(extra="forbid")

    tick_ms: float = Field(10, gt=0, description="Period of the event-loop lag probe")
    max_loop_lag_p99_ms: float = Field(10, gt=0, description="Event-loop lag p99 above this invalidates the run")
    max_lateness_p99_ms: float = Field(10, gt=0, description="Send lateness (actual - planned - queue) p99 limit")
    max_cpu_fraction: float = Field(0.9, gt=0, description="Mean client CPU time / wall time limit per process")


class HttpTemplate(BaseModel):
    """A generic JSON request, for vector DBs and other non-LLM services."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field("POST", description="HTTP method")
    path: str = Field("/", description="Request path; may hold placeholders")
    body: str | None = Field(None, description=(
        "Body template with {prompt}, {prompt_json} (JSON-quoted), {i}, {output_tokens}, {model};"
        " with engine=format, literal JSON braces are doubled"))
    engine: Literal["format", "jinja2"] = Field("format", description="str.format or Jinja2 templates")
    ok_status: list[int] = Field(default_factory=lambda: [200, 201, 204], description="Statuses that count as success")


class LoadConfig(BaseModel):
    """One load run against one endpoint."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(..., description="Base URL, e.g. http://127.0.0.1:8000")
    protocol: Protocol = Field(Protocol.OPENAI_CHAT, description="Wire protocol")
    model: str = Field("", description="Model name sent in the body")
    stream: bool = Field(True, description="Ask for a streamed response (LLM protocols)")
    profile: ProfileConfig = Field(default_factory=lambda: ProfileConfig(max_requests=100))
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    slo: SLOConfig = Field(default_factory=SLOConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    http: HttpTemplate = Field(default_factory=HttpTemplate, description="Request template for protocol http-json")
    extra_body: dict = Field(default_factory=dict, description="Merged into every LLM request body")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers")
    workers: int = Field(1, ge=1, description="Client processes on this host; the schedule is split between them")
    timeout_s: float = Field(600, gt=0, description="Per-request timeout")
    progress_s: float | None = Field(None, gt=0, description="Print progress to stderr this often")
