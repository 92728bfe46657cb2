"""The numbers behind the plots: latency values from samples, CDFs, the timeline, the sweep and its knee.

Everything here is computed from the raw samples and the LoadResult, with the load engine's own
definitions (TPOT as in `Sample.tpot_ms`, the SLO test of the capacity search), so a plot never
disagrees with the summary it sits beside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LATENCIES = (("ttft", "TTFT"), ("itl", "ITL"), ("tpot", "TPOT"), ("e2e", "E2E"))
STATS = (("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9"))
_NICE = (1, 2, 5)


def _floats(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)


def measured(table: pa.Table, step: int | None = None) -> pa.Table:
    """Successful, non-warm-up requests (optionally of one step): what every statistic uses."""
    keep = pc.and_(pc.invert(table["warmup"]), pc.is_null(table["error"]))
    if step is not None:
        keep = pc.and_(keep, pc.equal(table["step"], step))
    return table.filter(keep)


def latency_values(table: pa.Table | None, step: int | None = None) -> dict[str, np.ndarray]:
    """ms values per latency (ttft, itl, tpot, e2e); ITL flattened over requests."""
    empty = {k: np.empty(0) for k, _ in LATENCIES}
    if table is None or table.num_rows == 0:
        return empty
    ok = measured(table, step)
    ttft, e2e = _floats(ok["ttft_ms"]), _floats(ok["e2e_ms"])
    out = _floats(ok["output_tokens"]) if "output_tokens" in ok.column_names else np.full(len(ttft), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(out >= 2, (e2e - ttft) / (out - 1), np.nan)
    itl = _floats(pc.list_flatten(ok["itl_ms"])) if "itl_ms" in ok.column_names else np.empty(0)
    values = {"ttft": ttft, "itl": itl, "tpot": tpot, "e2e": e2e}
    return {k: v[np.isfinite(v)] for k, v in values.items()}


def ecdf(values: np.ndarray, max_points: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF as (x, fraction <= x), thinned to at most `max_points` points, denser in
    the tail (p99, p99.9 stay exact) so file size does not grow with the sample count."""
    x = np.sort(values)
    n = x.size
    if n == 0:
        return x, x
    if n <= max_points:
        return x, np.arange(1, n + 1) / n
    body = np.linspace(0, 0.99, int(max_points * 0.7))
    tail = 1 - np.logspace(-2, math.log10(1 / n), max_points - body.size)
    p = np.unique(np.clip(np.concatenate((body, tail, [1.0])), 0, 1))
    return np.quantile(x, p), p


def log_scale(values: np.ndarray) -> bool:
    """A log axis when the values span more than ~1.5 decades between p1 and the maximum."""
    if values.size < 2 or values.min() <= 0:
        return False
    lo = np.quantile(values, 0.01)
    return bool(lo > 0 and values.max() / lo > 30)


def nice_width(span: float, bins: int) -> float:
    """A bin width of 1, 2 or 5 times a power of ten giving about `bins` bins."""
    raw = max(span / max(bins, 1), 1e-3)
    exp = math.floor(math.log10(raw))
    return next((m * 10 ** exp for m in _NICE if m * 10 ** exp >= raw), 10 ** (exp + 1))


@dataclass
class Timeline:
    """Request rate, errors and in-flight requests over the run, steps laid end to end."""

    width: float  # s per bin
    starts: np.ndarray  # bin starts, s
    ok_rate: np.ndarray  # successful completions per second
    error_rate: np.ndarray  # failed completions per second
    t: np.ndarray  # in-flight sampling instants, s
    in_flight: np.ndarray
    boundaries: list[tuple[float, str]]  # (start of step, its label); one entry per step
    warmup_end: list[float]  # per step, the last warm-up completion (s), if any


def timeline(table: pa.Table | None, labels: dict[int, str] | None = None, bins: int = 120) -> Timeline | None:
    """Steps' clocks all start at 0, so each step is shifted to start where the previous one ended."""
    if table is None or table.num_rows == 0:
        return None
    step = np.asarray(table["step"].to_numpy(), dtype=int)
    sent, done = _floats(table["sent_s"]), _floats(table["done_s"])
    failed = np.asarray(pc.is_valid(table["error"]).to_numpy(zero_copy_only=False), dtype=bool)
    warm = np.asarray(table["warmup"].to_numpy(zero_copy_only=False), dtype=bool)
    offset, boundaries, warm_end = 0.0, [], []
    sent_all, done_all = np.empty_like(sent), np.empty_like(done)
    for k in np.unique(step):
        sel = step == k
        begin = min(0.0, float(sent[sel].min()))
        sent_all[sel], done_all[sel] = sent[sel] - begin + offset, done[sel] - begin + offset
        boundaries.append((offset, (labels or {}).get(int(k), f"step {k}")))
        if warm[sel].any():
            warm_end.append(float(done_all[sel & warm].max()))
        offset = float(done_all[sel].max())
    width = nice_width(offset, bins)
    edges = np.arange(0, offset + width, width)
    ok, _ = np.histogram(done_all[~failed], edges)
    err, _ = np.histogram(done_all[failed], edges)
    t = np.linspace(0, offset, min(800, max(2, 4 * len(edges))))
    s_sorted, d_sorted = np.sort(sent_all), np.sort(done_all)
    in_flight = np.searchsorted(s_sorted, t, side="right") - np.searchsorted(d_sorted, t, side="right")
    return Timeline(width, edges[:-1], ok / width, err / width, t, in_flight, boundaries, warm_end)


# --- sweeps ------------------------------------------------------------------------------

def step_rows(load: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One flat row per step: the offered load and the measured figures."""
    rows = []
    for r in (load or {}).get("steps") or []:
        step, s = r.get("step") or {}, r.get("summary") or {}
        row = {"index": r.get("index"), "label": step.get("label"), "mode": step.get("mode"),
               "streams": step.get("streams") if step.get("mode") == "closed" else None,
               "rate": step.get("rate"), "requests": s.get("requests"), "errors": s.get("errors"),
               "error_rate": s.get("error_rate"), "request_rate": s.get("request_rate"),
               "output_tokens_per_s": s.get("output_tokens_per_s"), "goodput_rate": s.get("goodput_rate")}
        for short, _ in LATENCIES:
            dist = s.get(f"{short}_ms") or {}
            row[f"{short}_p50_ms"], row[f"{short}_p99_ms"] = dist.get("p50"), dist.get("p99")
        row["valid"] = bool(s.get("valid", True))
        rows.append(row)
    return rows


def sweep_axis(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(row key, axis title): concurrency for closed-loop sweeps, offered rate for open-loop ones,
    and the achieved rate when a sweep mixes both (GuideLLM's synchronous, throughput, rates)."""
    modes = {r["mode"] for r in rows}
    if modes == {"closed"}:
        return "streams", "concurrency (streams)"
    if modes == {"open"} and all(r["rate"] is not None for r in rows):
        return "rate", "offered rate (req/s)"
    return "request_rate", "achieved request rate (req/s)"


@dataclass(frozen=True)
class Knee:
    index: int  # the step's index
    label: str
    rule: str  # "slo" or "power"
    text: str  # one line for people


def knee(load: dict[str, Any] | None) -> Knee | None:
    """The sweep's knee (see docs/REPORTS.md).

    With an SLO: the highest load whose step meets every p99 SLO, with the capacity search's own
    test (`load.profiles.judge`: p99 TTFT/TPOT/E2E within the SLO, error rate within the
    profile's max_error_rate, client valid). Without one: the step of highest power, request
    rate / p99 E2E latency (Kleinrock), the point past which more load buys less throughput than
    it costs in latency.
    """
    from factorybench.load.config import SLOConfig
    from factorybench.load.profiles import judge
    from factorybench.load.stats import Summary

    rows = step_rows(load)
    if len(rows) < 2:
        return None
    key, _ = sweep_axis(rows)
    by_load = sorted(zip(rows, (load or {}).get("steps") or []), key=lambda rs: rs[0][key] or 0.0)
    config = (load or {}).get("config") or {}
    slo = SLOConfig.model_validate(config.get("slo") or {})
    if slo.is_set():
        max_err = float((config.get("profile") or {}).get("max_error_rate", 0.01))
        passing = [row for row, raw in by_load if not judge(Summary.model_validate(raw["summary"]), slo, max_err)]
        if not passing:
            return None
        best = passing[-1]
        return Knee(best["index"], best["label"], "slo", f"knee: {best['label']}, the highest load meeting "
                                                        f"every p99 SLO")

    def power(row: dict[str, Any]) -> float:
        lat = row["e2e_p99_ms"]
        return (row["request_rate"] or 0.0) / lat if lat else 0.0

    best = max((row for row, _ in by_load), key=power)
    if power(best) <= 0:
        return None
    return Knee(best["index"], best["label"], "power", f"knee: {best['label']}, the highest request rate "
                                                        f"per ms of p99 E2E latency (no SLO set)")
