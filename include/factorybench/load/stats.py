"""Distributions built once from raw values, and the per-step summary.

Percentiles always come from the full set of raw values (numpy's linear
interpolation), never from averaging percentiles of parts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from factorybench.load.config import SLOConfig
from factorybench.load.samples import ErrorClass, Sample

PERCENTILES = (50, 90, 95, 99, 99.9)


class Distribution(BaseModel):
    """Summary of raw values (milliseconds unless the field name says otherwise)."""

    count: int = Field(0, description="Number of values")
    mean: float | None = Field(None, description="Arithmetic mean")
    std: float | None = Field(None, description="Population standard deviation")
    min: float | None = Field(None, description="Smallest value")
    max: float | None = Field(None, description="Largest value")
    p50: float | None = Field(None, description="Median")
    p90: float | None = Field(None, description="90th percentile")
    p95: float | None = Field(None, description="95th percentile")
    p99: float | None = Field(None, description="99th percentile")
    p999: float | None = Field(None, description="99.9th percentile")

    @classmethod
    def of(cls, values: Iterable[float] | np.ndarray) -> Distribution:
        arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
        if arr.size == 0:
            return cls()
        p = np.percentile(arr, PERCENTILES)
        return cls(count=int(arr.size), mean=float(arr.mean()), std=float(arr.std()), min=float(arr.min()),
                   max=float(arr.max()), p50=float(p[0]), p90=float(p[1]), p95=float(p[2]), p99=float(p[3]),
                   p999=float(p[4]))


class ClientHealth(BaseModel):
    """How hard the client itself worked; the evidence behind `valid`."""

    processes: int = Field(1, description="Client processes whose health was merged")
    loop_lag_ms: Distribution = Field(default_factory=Distribution, description="Event-loop timer lateness")
    cpu_fraction: float = Field(0.0, description="Highest per-process mean of CPU time / wall time")
    cpu_peak: float = Field(0.0, description="Highest CPU fraction over any one-second interval")


class SanityCheck(BaseModel):
    """One check of what the server answered against what the client asked for."""

    name: str = Field(..., description="prompt_tokens, output_tokens or model")
    passed: bool = Field(..., description="The server did what was asked")
    observed: str = Field(..., description="What the responses showed")
    expected: str = Field(..., description="What the request asked for")
    message: str = Field("", description="What a failure probably means")
    warn_only: bool = Field(False, description="A failure is reported but leaves the run valid")


_KV_OPS = ("get", "set", "read", "write")


class ReplicaShare(BaseModel):
    """What one replica of a multi-node service served (load spread over replicas, LoadConfig.replicas)."""

    replica: int = Field(..., description="0 the target, k the config's replicas[k-1]")
    requests: int = Field(0, description="Successful requests it served")
    errors: int = Field(0, description="Failed requests sent to it")
    share: float = Field(0.0, description="Its fraction of all successful requests")
    request_rate: float = Field(0.0, description="Its successful requests / the measured duration")
    ttft_p50_ms: float | None = Field(None, description="Its median time to first content chunk")
    e2e_p50_ms: float | None = Field(None, description="Its median end-to-end latency")


class Summary(BaseModel):
    """Aggregates of one step (or of a whole run) from its non-warm-up samples."""

    requests: int = Field(0, description="Successful requests")
    errors: int = Field(0, description="Failed requests")
    error_rate: float = Field(0.0, description="errors / (requests + errors)")
    errors_by_class: dict[str, int] = Field(default_factory=dict, description="Failed requests per error class")
    warmup_requests: int = Field(0, description="Requests excluded as warm-up")
    duration_s: float = Field(0.0, description="First send to last completion of the measured requests")
    request_rate: float = Field(0.0, description="Successful requests / duration")
    output_tokens_per_s: float = Field(0.0, description="Output tokens of successful requests / duration")
    total_tokens_per_s: float = Field(0.0, description="(prompt + output) tokens / duration")
    goodput_rate: float | None = Field(None, description="Requests/s meeting every SLO at once (None: no SLO)")
    goodput_fraction: float | None = Field(None, description="Share of successful requests meeting every SLO")
    ttft_ms: Distribution = Field(default_factory=Distribution, description="Time to first content chunk")
    itl_ms: Distribution = Field(default_factory=Distribution, description="Gaps between content chunks")
    tpot_ms: Distribution = Field(default_factory=Distribution, description="(E2E - TTFT) / (output tokens - 1)")
    e2e_ms: Distribution = Field(default_factory=Distribution, description="Send to last content chunk")
    queue_ms: Distribution = Field(default_factory=Distribution, description="Client-side wait for a cap slot")
    lateness_ms: Distribution = Field(default_factory=Distribution, description="Actual - planned send - queue")
    tokens_per_chunk: float | None = Field(None, description="Mean output tokens per content chunk")
    output_tokens_source: dict[str, int] = Field(default_factory=dict, description="Requests per token-count source")
    ttft_p50_ms: float | None = Field(None, description="Shortcut for ttft_ms.p50")
    ttft_p99_ms: float | None = Field(None, description="Shortcut for ttft_ms.p99")
    itl_p50_ms: float | None = Field(None, description="Shortcut for itl_ms.p50")
    tpot_p50_ms: float | None = Field(None, description="Shortcut for tpot_ms.p50")
    e2e_p50_ms: float | None = Field(None, description="Shortcut for e2e_ms.p50")
    embeddings_per_s: float | None = Field(None, description="Texts embedded per second (openai-embeddings)")
    insert_vectors_per_s: float | None = Field(None, description="Vectors inserted per second (vector insert step)")
    query_rate: float | None = Field(None, description="Successful vector queries per second")
    recall_at_k: float | None = Field(None, description="Mean recall@k of the vector queries")
    recall_min: float | None = Field(None, description="Lowest recall@k of any vector query")
    ops_per_s: float | None = Field(None, description="Successful key-value / SQL operations per second")
    peak_request_rate: float | None = Field(None, description="Several steps: the highest step's request rate")
    peak_output_tokens_per_s: float | None = Field(None, description="Several steps: the highest step's output tok/s")
    capacity_rate: float | None = Field(None, description="Capacity search: the highest rate meeting every p99 SLO")
    replicas: list[ReplicaShare] = Field(default_factory=list, description=(
        "Per-replica counts and rates when the load went to several replicas (empty: one server)"))
    ops: dict[str, int] = Field(default_factory=dict, description="Successful requests per operation")
    stale_connection_retries: int = Field(0, description=(
        "Requests resent on a fresh connection because the server had closed the reused one before reading them"))
    connections_opened: int = Field(0, description=(
        "Connections the requests opened or tried to open (churn: compare with requests)"))
    aborted_requests: int = Field(0, description="In-flight requests cut by a stop; neither requests nor errors")
    aborted: bool = Field(False, description="The run was stopped before its profile ended")
    abort_reason: str | None = Field(None, description="Why it was stopped (service unreachable, job ended, ...)")
    sanity: list[SanityCheck] = Field(default_factory=list, description="Checks of what the server answered")
    client: ClientHealth = Field(default_factory=ClientHealth, description="Client load during the measurement")
    valid: bool = Field(True, description="False when the client could not keep up or a sanity check failed")
    invalid_reasons: list[str] = Field(default_factory=list, description="Why the run is invalid")


def meets_slo(s: Sample, slo: SLOConfig) -> bool:
    """All objectives at once (DistServe goodput); an unknown TPOT fails a set TPOT objective."""
    checks = ((slo.ttft_ms, s.ttft_ms), (slo.tpot_ms, s.tpot_ms), (slo.e2e_ms, s.e2e_ms))
    return all(limit is None or (value is not None and value <= limit) for limit, value in checks)


def summarize(samples: Sequence[Sample], slo: SLOConfig, client: ClientHealth | None = None) -> Summary:
    measured = [s for s in samples if not s.warmup and s.error is not ErrorClass.ABORTED]
    ok = [s for s in measured if s.error is None]
    errors = Counter(s.error.value for s in measured if s.error is not None)
    # Each step's clock starts at 0: a run's measured time is the sum of its steps' spans.
    steps: dict[int, list[Sample]] = {}
    for s in measured:
        steps.setdefault(s.step, []).append(s)
    duration = sum(max(s.done_s for s in g) - min(s.sent_s for s in g) for g in steps.values())
    per_s = 1 / duration if duration > 0 else 0.0
    out_tokens = sum(s.output_tokens or 0 for s in ok)
    in_tokens = sum(s.prompt_tokens or 0 for s in ok)
    chunks = sum(s.chunks for s in ok)
    itl = np.fromiter((x for s in ok for x in s.itl_ms), dtype=float)
    good = sum(meets_slo(s, slo) for s in ok) if slo.is_set() else None
    summary = Summary(
        requests=len(ok), errors=sum(errors.values()), errors_by_class=dict(errors),
        error_rate=sum(errors.values()) / len(measured) if measured else 0.0,
        warmup_requests=len(samples) - len(measured), duration_s=duration,
        request_rate=len(ok) * per_s, output_tokens_per_s=out_tokens * per_s,
        total_tokens_per_s=(out_tokens + in_tokens) * per_s,
        goodput_rate=None if good is None else good * per_s,
        goodput_fraction=None if good is None or not ok else good / len(ok),
        ttft_ms=Distribution.of(s.ttft_ms for s in ok if s.ttft_ms is not None),
        itl_ms=Distribution.of(itl),
        tpot_ms=Distribution.of(t for s in ok if (t := s.tpot_ms) is not None),
        e2e_ms=Distribution.of(s.e2e_ms for s in ok if s.e2e_ms is not None),
        queue_ms=Distribution.of(s.queue_s * 1e3 for s in measured),
        lateness_ms=Distribution.of(s.lateness_s * 1e3 for s in measured),
        tokens_per_chunk=out_tokens / chunks if chunks and out_tokens else None,
        output_tokens_source=dict(Counter(s.output_tokens_source.value for s in ok if s.output_tokens_source)),
        client=client or ClientHealth(),
        stale_connection_retries=sum(s.retries for s in measured),
        connections_opened=sum(s.new_connection for s in measured),
        aborted_requests=sum(1 for s in samples if s.error is ErrorClass.ABORTED),
    )
    if any(s.op for s in ok):
        _per_op(summary, ok)
    if any(s.replica for s in measured):
        summary.replicas = _per_replica(measured, per_s)
    summary.ttft_p50_ms, summary.ttft_p99_ms = summary.ttft_ms.p50, summary.ttft_ms.p99
    summary.itl_p50_ms, summary.tpot_p50_ms = summary.itl_ms.p50, summary.tpot_ms.p50
    summary.e2e_p50_ms = summary.e2e_ms.p50
    return summary


def _per_replica(measured: list[Sample], per_s: float) -> list[ReplicaShare]:
    ok_total = sum(1 for s in measured if s.error is None)
    out = []
    for replica in range(max(s.replica for s in measured) + 1):
        mine = [s for s in measured if s.replica == replica]
        ok = [s for s in mine if s.error is None]
        out.append(ReplicaShare(replica=replica, requests=len(ok), errors=len(mine) - len(ok),
                                share=len(ok) / ok_total if ok_total else 0.0, request_rate=len(ok) * per_s,
                                ttft_p50_ms=Distribution.of(s.ttft_ms for s in ok if s.ttft_ms is not None).p50,
                                e2e_p50_ms=Distribution.of(s.e2e_ms for s in ok if s.e2e_ms is not None).p50))
    return out


def _rate(samples: list[Sample], amount: float) -> float:
    """Per second over these samples' own span (an insert step and a query step have their own)."""
    span = max(s.done_s for s in samples) - min(s.sent_s for s in samples)
    return amount / span if span > 0 else 0.0


def _per_op(summary: Summary, ok: list[Sample]) -> None:
    by_op: dict[str, list[Sample]] = {}
    for s in ok:
        by_op.setdefault(s.op or "", []).append(s)
    summary.ops = {op: len(v) for op, v in by_op.items() if op}
    if embeds := by_op.get("embed"):
        summary.embeddings_per_s = _rate(embeds, sum(s.items for s in embeds))
    if inserts := by_op.get("insert"):
        summary.insert_vectors_per_s = _rate(inserts, sum(s.items for s in inserts))
    if queries := by_op.get("query"):
        summary.query_rate = _rate(queries, len(queries))
        recalls = [s.recall for s in queries if s.recall is not None]
        summary.recall_at_k = sum(recalls) / len(recalls) if recalls else None
        summary.recall_min = min(recalls) if recalls else None
    if kv := [s for op in _KV_OPS for s in by_op.get(op, ())]:
        summary.ops_per_s = _rate(kv, len(kv))
