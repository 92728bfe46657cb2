"""One record per request, and its storage.

Every aggregate is recomputed from these raw records, which is what makes merging
results of several processes or SLURM tasks exact.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field


class ErrorClass(str, Enum):
    """Why a request failed; rates are reported per class."""

    CONNECT = "connect"
    TIMEOUT = "timeout"
    HTTP_429 = "http_429"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    PROTOCOL = "protocol"
    DROPPED = "dropped"
    SERVER = "server"  # a non-HTTP server answered with an error (SQL error, Redis error reply)
    ABORTED = "aborted"  # cut by a stop (service died, run stopped): not counted as a request or an error


class TokenSource(str, Enum):
    """Where a token count came from, so estimates are never mistaken for the server's count."""

    USAGE = "usage"
    COUNTED_CHUNKS = "counted_chunks"
    ESTIMATE = "estimate"


SampleFormat = Literal["parquet", "jsonl"]


def error_for_status(status: int) -> ErrorClass:
    if status == 429:
        return ErrorClass.HTTP_429
    return ErrorClass.HTTP_5XX if status >= 500 else ErrorClass.HTTP_4XX


class Sample(BaseModel):
    """A request as the client saw it. Times are seconds from the step's common start instant."""

    index: int = Field(..., description="Global schedule index of the request within its step")
    step: int = Field(0, description="Profile step the request belongs to")
    worker: int = Field(0, description="Client share (process or SLURM task) that sent it")
    replica: int = Field(0, description="Server replica it went to: 0 the target, k the config's replicas[k-1]")
    warmup: bool = Field(False, description="Excluded from statistics")
    planned_s: float = Field(..., description="Planned send time (open loop: arrival; closed loop: slot free)")
    queue_s: float = Field(0.0, description="Wait for a concurrency-cap slot (open loop with a cap)")
    sent_s: float = Field(..., description="Actual send time")
    done_s: float = Field(..., description="Time the request completed or failed")
    ttft_ms: float | None = Field(None, description="Send to first chunk carrying content")
    e2e_ms: float | None = Field(None, description="Send to last content chunk (usage-only chunk excluded)")
    itl_ms: list[float] = Field(default_factory=list, description="Gaps between successive content chunks")
    chunks: int = Field(0, description="Content chunks received")
    prompt_tokens: int | None = Field(None, description="Prompt tokens")
    prompt_tokens_source: TokenSource | None = Field(None, description="Where prompt_tokens came from")
    output_tokens: int | None = Field(None, description="Output tokens")
    output_tokens_source: TokenSource | None = Field(None, description="Where output_tokens came from")
    status: int | None = Field(None, description="HTTP status, if a response arrived")
    error: ErrorClass | None = Field(None, description="Error class; None when the request succeeded")
    error_detail: str | None = Field(None, description="Short error text for humans")
    op: str | None = Field(None, description="Operation: embed, insert, query, get, set, read, write (None: LLM)")
    items: int = Field(1, description="Inputs in the request: texts embedded, vectors inserted, 1 otherwise")
    recall: float | None = Field(None, description="Vector queries: recall@k against the exact neighbours")
    intended_prompt_tokens: int | None = Field(None, description="Prompt length the client meant to send")
    max_tokens: int | None = Field(None, description="Output length asked for (max_tokens / num_predict)")
    model_echo: str | None = Field(None, description="Model the server named in its response")
    retries: int = Field(0, description="Resends on a fresh connection after the server closed a reused one")
    new_connection: bool = Field(False, description="The request (or its resend) opened, or tried to open, a "
                                                    "new connection")

    @property
    def lateness_s(self) -> float:
        """Send delay the client caused (queue time for a cap is the server's, reported apart)."""
        return self.sent_s - self.planned_s - self.queue_s

    @property
    def tokens_per_chunk(self) -> float | None:
        return self.output_tokens / self.chunks if self.chunks and self.output_tokens else None

    @property
    def tpot_ms(self) -> float | None:
        if self.error or self.ttft_ms is None or self.e2e_ms is None or not self.output_tokens \
                or self.output_tokens < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)


_ENUMS = {"prompt_tokens_source": TokenSource, "output_tokens_source": TokenSource, "error": ErrorClass}


def save_samples(samples: list[Sample], path: Path) -> Path:
    """Write raw samples as Parquet (`.parquet`) or JSON lines (anything else)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [s.model_dump(mode="json") for s in samples]
    if path.suffix == ".parquet":
        schema = _schema()
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def load_samples(path: Path) -> list[Sample]:
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [Sample.model_validate(r) for r in rows]


def _schema() -> pa.Schema:
    types = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}
    fields = []
    for name, info in Sample.model_fields.items():
        ann = info.annotation
        if name == "itl_ms":
            typ = pa.list_(pa.float64())
        elif name in _ENUMS:
            typ = pa.string()
        else:
            base = next(t for t in types if t is ann or t in getattr(ann, "__args__", ()))
            typ = types[base]
        fields.append(pa.field(name, typ))
    return pa.schema(fields)
