"""Prometheus' HTTP API over a run window: the node's and GPUs' figures, and the energy series.

Each figure is reduced here from raw series that query_range returns (evaluated at steps that
hit both ends of the window exactly), so the arithmetic is ours and tested, not PromQL's
extrapolation. The job's exporters are selected with label matchers (the cluster profile's
monitoring.selector; by default the slurm_job_id label the job script gives its targets).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from factorybench.errors import FactorybenchError
from factorybench.monitoring import energy as energy_math

NODE_CPU = "node_cpu_seconds_total"
NODE_MEM_TOTAL = "node_memory_MemTotal_bytes"
NODE_MEM_AVAILABLE = "node_memory_MemAvailable_bytes"
NODE_RX = "node_network_receive_bytes_total"
NODE_TX = "node_network_transmit_bytes_total"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
GPU_FB_USED = "DCGM_FI_DEV_FB_USED"
GPU_POWER = "DCGM_FI_DEV_POWER_USAGE"
GPU_ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
EXPORTER_NAMES = (NODE_CPU, NODE_MEM_TOTAL, NODE_MEM_AVAILABLE, NODE_RX, NODE_TX, GPU_UTIL, GPU_FB_USED,
                  GPU_POWER, GPU_ENERGY, "up")


class PrometheusError(FactorybenchError):
    """Prometheus could not be asked, or refused the query (its own error text is kept)."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]


class Prometheus:
    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def _get(self, path: str, params: dict[str, str]) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                doc = json.load(resp)
        except urllib.error.HTTPError as exc:  # 400/422 carry Prometheus' own explanation
            body = exc.read().decode(errors="replace")[:300]
            raise PrometheusError(f"{self.url}{path}: HTTP {exc.code}: {body}") from None
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"{self.url}{path}: {type(exc).__name__}: {exc}") from None
        if doc.get("status") != "success":
            raise PrometheusError(f"{self.url}{path}: {doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        data = self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step:.3f}"})
        return [Series(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]

    def query(self, expr: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self._get("/api/v1/query", params)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]


def steps_for(start: float, end: float, target_s: float = 5.0, max_points: int = 1000) -> float:
    """A step that divides the window exactly, about `target_s` (coarser for long windows)."""
    span = max(end - start, 1e-3)
    n = max(1, min(max_points, math.ceil(span / target_s)))
    return span / n


def _sum_by_time(series: list[Series]) -> list[tuple[float, float]]:
    totals: dict[float, float] = defaultdict(float)
    for s in series:
        for t, v in s.points:
            totals[t] += v
    return sorted(totals.items())


def _sel(metric: str, selector: str, extra: str = "") -> str:
    matchers = ",".join(x for x in (extra, selector) if x)
    return f"{metric}{{{matchers}}}"


def cluster_figures(prom: Prometheus, selector: str, start: float, end: float,
                    sacct: tuple[float | None, float | None] = (None, None)) -> tuple[dict[str, float], dict]:
    """Node, GPU and energy figures of the window, and what they came from (for the archive)."""
    step = steps_for(start, end)
    seconds = end - start

    def get(expr: str) -> list[Series]:
        return prom.query_range(expr, start, end, step)

    out: dict[str, float] = {}
    cpu = get(_sel(NODE_CPU, selector))
    total = sum(energy_math.counter_increase(s.points) for s in cpu)
    if total > 0:
        idle = sum(energy_math.counter_increase(s.points) for s in cpu if s.labels.get("mode") == "idle")
        out["node_cpu_busy_mean"] = 1 - idle / total
    used = _sum_by_time(get(f"{_sel(NODE_MEM_TOTAL, selector)} - {_sel(NODE_MEM_AVAILABLE, selector)}"))
    if used:
        out["node_memory_used_peak_bytes"] = max(v for _, v in used)
    for key, metric in (("node_network_rx_bytes_per_s", NODE_RX), ("node_network_tx_bytes_per_s", NODE_TX)):
        net = get(_sel(metric, selector, 'device!="lo"'))
        if net and seconds > 0:
            out[key] = sum(energy_math.counter_increase(s.points) for s in net) / seconds
    util = [v for s in get(_sel(GPU_UTIL, selector)) for _, v in s.points]
    if util:
        out["gpu_util_mean"] = sum(util) / len(util)
    fb = _sum_by_time(get(_sel(GPU_FB_USED, selector)))
    if fb:
        out["gpu_memory_used_peak_mib"] = max(v for _, v in fb)
    power_series = get(_sel(GPU_POWER, selector))
    power = _sum_by_time(power_series)
    if power:
        out["gpu_power_mean_w"] = energy_math.integrate(power) / seconds if seconds > 0 else power[0][1]
        out["gpu_power_peak_w"] = max(v for _, v in power)
    counter = get(_sel(GPU_ENERGY, selector))
    found = energy_math.choose([s.points for s in counter], [s.points for s in power_series], sacct)
    if found.joules is not None:
        out["energy_j"] = found.joules
    detail = {"prometheus": prom.url, "selector": selector, "start": start, "end": end, "step_s": step,
              "series": {"node_cpu": len(cpu), "gpu_power": len(power_series), "gpu_energy": len(counter)},
              "energy": found.to_dict()}
    return out, detail
