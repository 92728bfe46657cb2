"""The Pushgateway: each run's summary and verdicts after it is archived, live progress while it runs.

Three groups (job label, grouping key), so Grafana gets both a history and a live view:
- `factorybench_run` {recipe, run_id}: the run's metrics, whole run (step="all") and per step,
  its status and verdicts. Kept after the run: one group per run is the record.
- `factorybench_latest` {recipe}: the same series for the recipe's newest run, replaced by every
  run, so each metric is one continuous series over the nights (the trend panels).
- `factorybench_live` {recipe, run_id}: progress every few seconds while the load runs, deleted
  when it ends (Prometheus keeps what it scraped).
Metric names are `fb_<catalog name>`; `produced_names()` lists every name this module can push.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

from factorybench.results import metrics as catalog

JOB_RUN, JOB_LATEST, JOB_LIVE = "factorybench_run", "factorybench_latest", "factorybench_live"
RUN_EXTRA = {
    "fb_run_valid": "1 when the run is a valid measurement (status success), else 0",
    "fb_run_verdict": "the run's verdict against history: 1 improvement, 0 pass, -1 regression, NaN no data",
    "fb_verdict": "one metric's verdict against history: 1 improvement, 0 pass, -1 regression, NaN no data",
    "fb_run_finished_timestamp_seconds": "when the run was archived (unix seconds)",
    "fb_energy_source_info": "where energy_j came from (label source), 1",
}
LIVE = {
    "fb_live_active": "1 while the load runs",
    "fb_live_elapsed_s": "seconds since the load started",
    "fb_live_step": "index of the step the last finished request belonged to",
    "fb_live_requests_done": "requests finished so far (warm-up and errors included)",
    "fb_live_errors": "requests failed so far",
    "fb_live_request_rate": "requests finished per second over the last interval",
    "fb_live_output_tokens_per_s": "output tokens received per second over the last interval",
    "fb_live_ttft_p50_ms": "TTFT p50 over the last interval",
    "fb_live_ttft_p99_ms": "TTFT p99 over the last interval",
    "fb_live_e2e_p50_ms": "E2E latency p50 over the last interval",
    "fb_live_e2e_p99_ms": "E2E latency p99 over the last interval",
    "fb_live_server_running": "requests the server is running (its /metrics)",
    "fb_live_server_waiting": "requests the server has queued (its /metrics)",
    "fb_live_server_kv_cache_usage": "the server's KV-cache usage, 0..1",
    "fb_live_server_output_tokens_per_s": "the server's generation rate between its last two scrapes",
}
VERDICT_CODES = {"improvement": 1.0, "pass": 0.0, "regression": -1.0}
# Added by the Pushgateway itself to every group.
GATEWAY = ("push_time_seconds", "push_failure_time_seconds")
_BAD = re.compile(r"[^a-zA-Z0-9_:]")


def name_of(metric: str) -> str:
    return "fb_" + _BAD.sub("_", metric)


def produced_names() -> set[str]:
    """Every metric name factorybench pushes, and the Pushgateway adds."""
    return {name_of(m) for m in catalog.CATALOG} | set(RUN_EXTRA) | set(LIVE) | set(GATEWAY)


def _help(metric: str) -> str:
    """The same HELP for a name in every group and run: the Pushgateway rejects inconsistent ones."""
    d = catalog.define(metric)
    return f"{d.description or metric} [{d.unit or '1'}; {d.source}; better: {d.direction}]"


def _code(verdict: str | None) -> float:
    return VERDICT_CODES.get(verdict or "", math.nan)


def run_registry(run_id: str, status: str, metrics: Iterable[catalog.MetricValue],
                 steps: Iterable[tuple[int, Iterable[catalog.MetricValue]]], judged: dict[str, Any],
                 finished_at: float, energy_source: str | None = None):
    """One run's summary as a registry: every metric with labels run_id, step ("all" or the index)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}

    def put(metric: str, step: str, value: float | None) -> None:
        if value is None:
            return
        name = name_of(metric)
        if name not in gauges:
            gauges[name] = Gauge(name, _help(metric), ["run_id", "step"], registry=registry)
        gauges[name].labels(run_id, step).set(value)

    for m in metrics:
        put(m.name, "all", m.value)
    for index, step_metrics in steps:
        for m in step_metrics:
            put(m.name, str(index), m.value)
    Gauge("fb_run_valid", RUN_EXTRA["fb_run_valid"], ["run_id"], registry=registry).labels(run_id).set(
        1.0 if status == "success" else 0.0)
    Gauge("fb_run_verdict", RUN_EXTRA["fb_run_verdict"], ["run_id"], registry=registry).labels(run_id).set(
        _code(judged.get("verdict")))
    per_metric = Gauge("fb_verdict", RUN_EXTRA["fb_verdict"], ["run_id", "metric"], registry=registry)
    for v in (judged.get("verdicts") or {}).get("metrics") or []:
        per_metric.labels(run_id, v["metric"]).set(_code(v.get("verdict")))
    Gauge("fb_run_finished_timestamp_seconds", RUN_EXTRA["fb_run_finished_timestamp_seconds"], ["run_id"],
          registry=registry).labels(run_id).set(finished_at)
    if energy_source:
        Gauge("fb_energy_source_info", RUN_EXTRA["fb_energy_source_info"], ["run_id", "source"],
              registry=registry).labels(run_id, energy_source).set(1.0)
    return registry


def push_run(gateway: str, recipe: str, run_id: str, registry, timeout_s: float = 5.0) -> None:
    """The run's own group, then the recipe's `latest` group (replaced)."""
    from prometheus_client import push_to_gateway

    push_to_gateway(gateway, job=JOB_RUN, registry=registry, grouping_key={"recipe": recipe, "run_id": run_id},
                    timeout=timeout_s)
    push_to_gateway(gateway, job=JOB_LATEST, registry=registry, grouping_key={"recipe": recipe},
                    timeout=timeout_s)


def live_registry(values: dict[str, float], step: int | None):
    """A live snapshot: keys are LIVE names without the fb_live_ prefix."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    for key, value in values.items():
        name = f"fb_live_{key}"
        Gauge(name, LIVE[name], ["step"], registry=registry).labels("-" if step is None else str(step)).set(value)
    return registry


def push_live(gateway: str, recipe: str, run_id: str, registry, timeout_s: float = 5.0) -> None:
    from prometheus_client import push_to_gateway

    push_to_gateway(gateway, job=JOB_LIVE, registry=registry, grouping_key={"recipe": recipe, "run_id": run_id},
                    timeout=timeout_s)


def delete_live(gateway: str, recipe: str, run_id: str, timeout_s: float = 5.0) -> None:
    from prometheus_client import delete_from_gateway

    delete_from_gateway(gateway, job=JOB_LIVE, grouping_key={"recipe": recipe, "run_id": run_id},
                        timeout=timeout_s)
