"""The metric catalog: every figure a run stores, with its unit, its good direction and its source.

The results database keeps metrics in long form (run, step, name, value, unit, direction,
source), so new figures (server-side, energy...) need no migration. The catalog is the one
place that says which way is better for a metric and which raw sample field it summarises,
which the regression analysis needs to call a change a regression or an improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal

Direction = Literal["higher", "lower", "none"]
Source = Literal["client", "server", "derived"]


@dataclass(frozen=True)
class MetricDef:
    name: str
    unit: str
    direction: Direction  # which way is better; "none" is reported but never judged
    source: Source
    sample_field: str | None = None  # the per-request sample column behind it (Mann-Whitney)
    description: str = ""


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float | None
    unit: str
    direction: Direction
    source: Source

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "direction": self.direction,
                "source": self.source}


_LATENCIES = {
    "ttft": ("ttft_ms", "time to first content chunk"),
    "itl": ("itl_ms", "gap between content chunks"),
    "tpot": ("tpot_ms", "(E2E - TTFT) / (output tokens - 1)"),
    "e2e": ("e2e_ms", "send to last content chunk"),
}
_STATS = ("mean", "p50", "p90", "p95", "p99", "p999")

_CLIENT: list[MetricDef] = [
    MetricDef("requests", "count", "none", "client", description="successful requests"),
    MetricDef("errors", "count", "lower", "client", description="failed requests"),
    MetricDef("error_rate", "ratio", "lower", "client", description="errors / all measured requests"),
    MetricDef("duration_s", "s", "none", "client", description="first send to last completion"),
    MetricDef("request_rate", "req/s", "higher", "client", description="successful requests per second"),
    MetricDef("output_tokens_per_s", "tok/s", "higher", "client", description="output tokens per second"),
    MetricDef("total_tokens_per_s", "tok/s", "higher", "client", description="prompt + output tokens per second"),
    MetricDef("goodput_rate", "req/s", "higher", "client", description="requests/s meeting every SLO"),
    MetricDef("goodput_fraction", "ratio", "higher", "client", description="share of requests meeting every SLO"),
    MetricDef("tokens_per_chunk", "tok", "none", "client", description="output tokens per content chunk"),
    MetricDef("client_cpu_fraction", "ratio", "none", "client", description="client CPU time / wall time"),
    MetricDef("loop_lag_p99_ms", "ms", "none", "client", description="client event-loop lag p99"),
    MetricDef("lateness_p99_ms", "ms", "none", "client", description="client send lateness p99"),
    MetricDef("queue_p99_ms", "ms", "lower", "client", description="wait for a concurrency-cap slot, p99"),
]
for _short, (_field, _what) in _LATENCIES.items():
    for _stat in _STATS:
        _CLIENT.append(MetricDef(f"{_short}_{_stat}_ms", "ms", "lower", "client", _field, f"{_what}, {_stat}"))

# The non-LLM protocols' figures and the client's connection churn (docs/LOAD.md).
_CLIENT += [
    MetricDef("embeddings_per_s", "texts/s", "higher", "client", description="texts embedded per second"),
    MetricDef("insert_vectors_per_s", "vectors/s", "higher", "client",
              description="vectors inserted per second (vector insert step)"),
    MetricDef("query_rate", "req/s", "higher", "client", description="vector queries per second"),
    MetricDef("recall_at_k", "ratio", "higher", "client", "recall",
              "mean recall@k of the vector queries against the exact neighbours"),
    MetricDef("recall_min", "ratio", "higher", "client", description="lowest recall@k of any vector query"),
    MetricDef("ops_per_s", "ops/s", "higher", "client", description="key-value / SQL operations per second"),
    MetricDef("peak_request_rate", "req/s", "higher", "client", description="sweeps: the highest step's request rate"),
    MetricDef("peak_output_tokens_per_s", "tok/s", "higher", "client",
              description="sweeps: the highest step's output tokens per second"),
    MetricDef("capacity_rate", "req/s", "higher", "client",
              description="capacity search: the highest rate meeting every p99 SLO"),
    MetricDef("stale_connection_retries", "count", "none", "client",
              description="requests resent on a fresh connection: the server had closed the kept-alive one"),
    MetricDef("connections_opened", "count", "none", "client", description="connections the requests opened"),
    MetricDef("aborted_requests", "count", "none", "client", description="in-flight requests cut by a stop"),
]

# What the monitoring layer measures beside the client (factorybench.monitoring, docs/MONITORING.md):
# the server's own counters, gauges and histograms, the node's and GPUs' exporters, energy.
_SERVER: list[MetricDef] = [
    MetricDef("server_generation_tokens", "count", "none", "server",
              description="output tokens the server generated during the run (counter increase)"),
    MetricDef("server_prompt_tokens", "count", "none", "server", description="prompt tokens the server processed"),
    MetricDef("server_requests", "count", "none", "server", description="requests the server finished"),
    MetricDef("server_preemptions", "count", "lower", "server", description="sequences the server preempted"),
    MetricDef("server_output_tokens_per_s", "tok/s", "higher", "server",
              description="generation counter increase / time while it moved"),
    MetricDef("server_running_peak", "requests", "none", "server", description="most requests running at once"),
    MetricDef("server_running_mean", "requests", "none", "server", description="mean requests running"),
    MetricDef("server_waiting_peak", "requests", "lower", "server", description="most requests queued at once"),
    MetricDef("server_waiting_mean", "requests", "lower", "server", description="mean requests queued"),
    MetricDef("server_kv_cache_usage_peak", "ratio", "none", "server", description="highest KV-cache usage"),
    MetricDef("server_kv_cache_usage_mean", "ratio", "none", "server", description="mean KV-cache usage"),
    MetricDef("node_cpu_busy_mean", "ratio", "none", "server", description="share of the node's CPU time not idle"),
    MetricDef("node_memory_used_peak_bytes", "bytes", "none", "server", description="node memory in use, peak"),
    MetricDef("node_network_rx_bytes_per_s", "B/s", "none", "server", description="node network receive rate"),
    MetricDef("node_network_tx_bytes_per_s", "B/s", "none", "server", description="node network transmit rate"),
    MetricDef("gpu_util_mean", "%", "none", "server", description="GPU utilisation, mean over the job's GPUs"),
    MetricDef("gpu_memory_used_peak_mib", "MiB", "none", "server", description="GPU memory in use, peak sum"),
    MetricDef("gpu_power_mean_w", "W", "none", "server", description="GPU power, sum over GPUs, mean"),
    MetricDef("gpu_power_peak_w", "W", "none", "server", description="GPU power, sum over GPUs, peak"),
    MetricDef("energy_j", "J", "lower", "derived", description="energy of the run window (source in energy.json)"),
    MetricDef("energy_per_output_token_j", "J/tok", "lower", "derived",
              description="energy_j / output tokens generated in the window"),
    MetricDef("client_output_tokens_all", "count", "none", "client",
              description="output tokens the client received, warm-up included"),
    MetricDef("server_client_token_agreement", "ratio", "none", "derived",
              description="server_generation_tokens / client_output_tokens_all (1 = they agree)"),
]
for _short in ("ttft", "e2e", "itl"):
    for _q in (50, 90, 99):
        _SERVER.append(MetricDef(f"server_{_short}_p{_q}_ms", "ms", "lower", "server",
                                 description=f"{_short} p{_q} from the server's histogram"))

CATALOG: dict[str, MetricDef] = {m.name: m for m in _CLIENT + _SERVER}


def define(name: str, unit: str = "", direction: Direction = "none", source: Source = "derived") -> MetricDef:
    """The catalog entry, or an ad-hoc definition for a metric the catalog does not know."""
    return CATALOG.get(name) or MetricDef(name, unit, direction, source)


def value_of(name: str, value: Any, **defaults: Any) -> MetricValue:
    d = define(name, **defaults)
    return MetricValue(d.name, None if value is None else float(value), d.unit, d.direction, d.source)


def from_summary(summary: dict[str, Any]) -> list[MetricValue]:
    """A load-engine Summary (as JSON) → long-form client metrics, only those it has a value for
    (an embeddings run has no TTFT; a metric absent from a run is absent from its row set)."""
    out = []
    for d in _CLIENT:
        value = _lookup(summary, d.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(MetricValue(d.name, float(value), d.unit, d.direction, d.source))
    return out


def _lookup(summary: dict[str, Any], name: str) -> Any:
    client = summary.get("client") or {}
    special = {
        "client_cpu_fraction": client.get("cpu_fraction"),
        "loop_lag_p99_ms": (client.get("loop_lag_ms") or {}).get("p99"),
        "lateness_p99_ms": (summary.get("lateness_ms") or {}).get("p99"),
        "queue_p99_ms": (summary.get("queue_ms") or {}).get("p99"),
    }
    if name in special:
        return special[name]
    for short in _LATENCIES:
        prefix = f"{short}_"
        if name.startswith(prefix) and name.endswith("_ms") and name[len(prefix):-3] in _STATS:
            return (summary.get(f"{short}_ms") or {}).get(name[len(prefix):-3])
    return summary.get(name)


def sample_field(name: str) -> str | None:
    d = CATALOG.get(name)
    return d.sample_field if d else None


def names(defs: Iterable[MetricDef] = _CLIENT) -> list[str]:
    return [d.name for d in defs]
