"""What a load run is: target, protocol, dataset, load profile, SLOs and client limits.

One pydantic model so the same run can come from a CLI, a recipe, a DAG task or
a SLURM job's JSON file, and be recorded next to its results.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # numpy stays out of recipe parsing, which imports these models
    import numpy as np


class Protocol(str, Enum):
    """Wire protocol: decides request bodies and how responses are parsed."""

    OPENAI_CHAT = "openai-chat"
    OPENAI_COMPLETIONS = "openai-completions"
    OPENAI_EMBEDDINGS = "openai-embeddings"
    OLLAMA_GENERATE = "ollama-generate"
    OLLAMA_CHAT = "ollama-chat"
    HTTP_JSON = "http-json"
    VECTOR_CHROMA = "vector-chroma"
    VECTOR_PGVECTOR = "vector-pgvector"
    VECTOR_QDRANT = "vector-qdrant"
    KV_REDIS = "kv-redis"
    SQL_POSTGRES = "sql-postgres"

    @property
    def is_llm(self) -> bool:
        """Generates text: prompts, token counts, TTFT and ITL mean something."""
        return self in _LLM

    @property
    def is_vector(self) -> bool:
        """Two phases: insert vectors, then query them with recall against exact neighbours."""
        return self in (Protocol.VECTOR_CHROMA, Protocol.VECTOR_PGVECTOR, Protocol.VECTOR_QDRANT)

    @property
    def scheme(self) -> str:
        """The target URL's scheme: non-HTTP services are named by theirs."""
        if self is Protocol.KV_REDIS:
            return "redis"
        if self in (Protocol.VECTOR_PGVECTOR, Protocol.SQL_POSTGRES):
            return "postgresql"
        return "http"


_LLM = frozenset({Protocol.OPENAI_CHAT, Protocol.OPENAI_COMPLETIONS, Protocol.OLLAMA_GENERATE, Protocol.OLLAMA_CHAT})


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
        import numpy as np

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


# A SQL table or collection name, safe to splice into a statement, and valid in Chroma (3+ characters,
# alphanumeric at both ends) and Qdrant.
_IDENT = r"^[a-z][a-z0-9_]{1,61}[a-z0-9]$"


class EmbeddingsConfig(BaseModel):
    """openai-embeddings: how many texts go in one request."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(1, ge=1, le=4096, description=(
        "Texts per request (`input` is a list when above 1); embeddings/s counts texts, not requests"))


class VectorIndex(BaseModel):
    """The index the vector protocols build, with the same parameters sent to every database."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["hnsw", "exact"] = Field("hnsw", description=(
        "hnsw, or exact (pgvector: no index, a sequential scan; Qdrant: search with exact=true;"
        " Chroma has no exact index and refuses it)"))
    m: int = Field(16, ge=2, le=100, description="HNSW links per node (Chroma max_neighbors, Qdrant m)")
    ef_construction: int = Field(100, ge=4, le=1000, description="HNSW candidate list while building")
    ef_search: int = Field(40, ge=1, le=1000, description=(
        "HNSW candidate list while searching (pgvector hnsw.ef_search, Qdrant hnsw_ef, Chroma ef_search);"
        " pgvector returns at most ef_search rows"))


class VectorConfig(BaseModel):
    """vector-*: seeded vectors are inserted in batches (step 1), then queried (step 2, the profile).

    Recall@k is measured against the exact nearest neighbours, computed by the client with numpy
    on the same float32 vectors.
    """

    model_config = ConfigDict(extra="forbid")

    count: int = Field(10_000, ge=1, le=10_000_000, description="Vectors inserted (the data set size)")
    dim: int = Field(384, ge=1, le=16_000, description="Dimension")
    metric: Literal["l2", "cosine"] = Field("l2", description="Distance for the index, the queries and recall")
    k: int = Field(10, ge=1, le=1000, description="Neighbours asked for per query (recall@k)")
    insert_batch: int = Field(100, ge=1, le=100_000, description="Vectors per insert request")
    insert_streams: int = Field(1, ge=1, le=256, description="Concurrent insert requests")
    queries: int = Field(100, ge=1, le=100_000, description=(
        "Distinct query vectors; query requests cycle through them (the profile says how many are sent)"))
    index: VectorIndex = Field(default_factory=VectorIndex, description="Index kind and parameters")
    collection: str = Field("fb_vectors", pattern=_IDENT, description=(
        "Collection (Chroma, Qdrant) or table (pgvector); dropped and recreated at the start of the run"))
    seed: int = Field(0, description="Seed of the data and query vectors (standard normal, float32)")
    index_wait_s: float = Field(600, gt=0, description=(
        "Qdrant: longest wait after the inserts for the collection to finish indexing (status green)"))


class KVConfig(BaseModel):
    """kv-redis: a GET/SET mix over a fixed key space (redis-py's asyncio client)."""

    model_config = ConfigDict(extra="forbid")

    read_ratio: float = Field(0.9, ge=0, le=1, description="Share of GETs; the rest are SETs")
    keys: int = Field(10_000, ge=1, le=100_000_000, description="Key space; keys are drawn uniformly")
    value_bytes: int = Field(100, ge=0, le=64 * 1024 * 1024, description="Size of each value")
    key_prefix: str = Field("fb:", pattern=r"^[A-Za-z0-9:_\-]{0,64}$", description="Prefix of every key")
    preload: bool = Field(True, description="SET every key once before the run, so that GETs hit")
    seed: int = Field(0, description="Seed of the operation mix and the keys")


class SQLConfig(BaseModel):
    """sql-postgres: queries by random key on a table the protocol creates and fills (asyncpg)."""

    model_config = ConfigDict(extra="forbid")

    table: str = Field("fb_kv", pattern=_IDENT, description="Table (k bigint primary key, v text)")
    rows: int = Field(10_000, ge=1, le=100_000_000, description="Rows; keys are 0 .. rows-1, drawn uniformly")
    value_bytes: int = Field(100, ge=0, le=1024 * 1024, description="Size of v in each row")
    create: bool = Field(True, description="Drop, create and fill the table before the run (False: use it as is)")
    read_ratio: float = Field(1.0, ge=0, le=1, description="Share of reads; the rest run write_query")
    query: str | None = Field(None, description="Read statement; $1 is the key (default: SELECT v ... WHERE k = $1)")
    write_query: str | None = Field(None, description=(
        "Write statement; $1 is the key, $2 a value of value_bytes (default: UPDATE ... SET v = $2 WHERE k = $1)"))
    seed: int = Field(0, description="Seed of the operation mix and the keys")


class DatabaseTarget(BaseModel):
    """What a non-HTTP target URL needs beyond host and port (no secrets: asyncpg reads PGPASSWORD)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field("postgres", pattern=r"^[A-Za-z0-9_.\-]{1,63}$", description="PostgreSQL user")
    dbname: str = Field("postgres", pattern=r"^[A-Za-z0-9_.\-]{1,63}$", description="PostgreSQL database")
    redis_db: int = Field(0, ge=0, le=15, description="Redis logical database")


SanityName = Literal["prompt_tokens", "output_tokens", "model"]


class SanityConfig(BaseModel):
    """Checks that the server did what was asked; a failed one makes the run invalid unless it only warns."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: bool = Field(True, description=(
        "Compare the server's usage.prompt_tokens with the prompt lengths the client meant to send"))
    prompt_ratio_min: float = Field(0.5, gt=0, description=(
        "Lowest accepted (server prompt tokens) / (intended prompt tokens), summed over requests"))
    prompt_ratio_max: float = Field(4.0, gt=0, description="Highest accepted ratio (chat templates add tokens)")
    output_tokens: Literal["auto", "on", "off"] = Field("auto", description=(
        "Flag requests that stopped before max_tokens; auto: only when ignore_eos asks for fixed lengths"))
    max_early_fraction: float = Field(0.0, ge=0, le=1, description="Share of early stops still accepted")
    model: bool = Field(True, description="The model the server names in its responses must be the one requested")
    warn_only: list[SanityName] = Field(default_factory=list, description=(
        "Checks whose failure is reported but leaves the run valid"))


class LoadConfig(BaseModel):
    """One load run against one endpoint."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(..., description="Base URL, e.g. http://127.0.0.1:8000")
    replicas: list[str] = Field(default_factory=list, description=(
        "More base URLs serving the same model (a multi-node service): request i goes to [target, *replicas]"
        "[i % n], and the summary reports each replica's share. HTTP protocols without a driver only"))
    protocol: Protocol = Field(Protocol.OPENAI_CHAT, description="Wire protocol")
    model: str = Field("", description="Model name sent in the body")
    stream: bool = Field(True, description="Ask for a streamed response (LLM protocols)")
    profile: ProfileConfig = Field(default_factory=lambda: ProfileConfig(max_requests=100))
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    slo: SLOConfig = Field(default_factory=SLOConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    http: HttpTemplate = Field(default_factory=HttpTemplate, description="Request template for protocol http-json")
    extra_body: dict = Field(default_factory=dict, description="Merged into every LLM request body")
    ignore_eos: bool = Field(False, description=(
        "Send ignore_eos: true (vLLM, llama.cpp) so every answer is max_tokens long; enables the output check"))
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig, description="openai-embeddings")
    vector: VectorConfig = Field(default_factory=VectorConfig, description="vector-chroma|pgvector|qdrant")
    kv: KVConfig = Field(default_factory=KVConfig, description="kv-redis")
    sql: SQLConfig = Field(default_factory=SQLConfig, description="sql-postgres")
    db: DatabaseTarget = Field(default_factory=DatabaseTarget, description="User and database of non-HTTP targets")
    sanity: SanityConfig = Field(default_factory=SanityConfig, description="Checks of what the server answered")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers")
    workers: int = Field(1, ge=1, description="Client processes on this host; the schedule is split between them")
    timeout_s: float = Field(600, gt=0, description="Per-request timeout")
    progress_s: float | None = Field(None, gt=0, description="Print progress to stderr this often")
    unreachable_after: int = Field(10, ge=1, description=(
        "Stop the run (aborted, 'service unreachable') after this many consecutive connection failures"
        " with no success in between"))
    stop_grace_s: float = Field(2.0, ge=0, description=(
        "On a stop, in-flight requests get this long to finish before they are cut (recorded as aborted)"))

    @model_validator(mode="after")
    def _fits_protocol(self) -> LoadConfig:
        scheme = urlsplit(self.target).scheme
        if scheme != self.protocol.scheme and not (scheme == "https" and self.protocol.scheme == "http"):
            raise ValueError(f"protocol {self.protocol.value} needs a {self.protocol.scheme}:// target, "
                             f"got {self.target!r}")
        check_workload(self.protocol, self.vector)
        if self.replicas and (self.protocol.is_vector or self.protocol.scheme != "http"):
            raise ValueError(f"replicas: protocol {self.protocol.value} talks to one server; only the HTTP "
                             "protocols without a driver spread over replicas")
        return self

    @property
    def targets(self) -> list[str]:
        """Every base URL the load goes to: the target, then the replicas."""
        return [self.target, *self.replicas]


def check_workload(protocol: Protocol, vector: VectorConfig) -> None:
    """Settings a protocol cannot honour (shared with the recipe's client section)."""
    if protocol is Protocol.VECTOR_CHROMA and vector.index.kind == "exact":
        raise ValueError("vector.index.kind=exact: Chroma has no exact index (use hnsw with a large ef_search)")


def target_url(protocol: Protocol | str, url: str, db: DatabaseTarget | None = None) -> str:
    """The load target for a protocol, from the service's discovered http://host:port URL.

    Non-HTTP protocols are named by their scheme: redis://host:port/DB, postgresql://USER@host:port/DB.
    """
    protocol, db = Protocol(protocol), db or DatabaseTarget()
    if protocol.scheme == "http":
        return url
    netloc = urlsplit(url).netloc
    if protocol.scheme == "redis":
        return f"redis://{netloc}/{db.redis_db}"
    return f"postgresql://{quote(db.user, safe='')}@{netloc}/{quote(db.dbname, safe='')}"
