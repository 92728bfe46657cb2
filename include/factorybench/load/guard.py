"""Client validity: a run where the client could not keep up must not look like a slow server.

Three witnesses run throughout: a periodic timer's lateness (event-loop lag),
each request's send lateness (from its sample), and process CPU time / wall time.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, Field

from factorybench.load.config import GuardConfig
from factorybench.load.stats import ClientHealth, Distribution, Summary


class ProcessHealth(BaseModel):
    """Raw witnesses of one client process, kept raw so several processes merge exactly."""

    loop_lag_ms: list[float] = Field(default_factory=list, description="Every timer lateness observed")
    cpu_fraction: float = Field(0.0, description="CPU time / wall time over the measurement")
    cpu_peak: float = Field(0.0, description="Highest CPU fraction over a one-second interval")
    abort_reason: str | None = Field(None, description="Why this process stopped early (None: it did not)")


def abort_reason(parts: list[ProcessHealth]) -> str | None:
    return next((p.abort_reason for p in parts if p.abort_reason), None)


class LoopMonitor:
    """Schedules itself every `tick_ms` and records how late it wakes, plus CPU use per second."""

    def __init__(self, tick_ms: float):
        self._tick = tick_ms / 1e3
        self._lags: list[float] = []
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._cpu0 = self._wall0 = self._cpu_mark = self._wall_mark = 0.0
        self._peak = 0.0

    def start(self) -> None:
        self._lags.clear()
        self._peak = 0.0
        self._wall0 = self._wall_mark = time.perf_counter()
        self._cpu0 = self._cpu_mark = time.process_time()
        self._schedule(self._wall0)

    def _schedule(self, now: float) -> None:
        self._due = now + self._tick
        self._handle = asyncio.get_running_loop().call_later(self._tick, self._fire)

    def _fire(self) -> None:
        now = time.perf_counter()
        self._lags.append(max(0.0, now - self._due) * 1e3)
        if now - self._wall_mark >= 1.0:
            cpu = time.process_time()
            self._peak = max(self._peak, (cpu - self._cpu_mark) / (now - self._wall_mark))
            self._cpu_mark, self._wall_mark = cpu, now
        self._schedule(now)

    def stop(self) -> ProcessHealth:
        if self._handle:
            self._handle.cancel()
        wall = time.perf_counter() - self._wall0
        cpu = (time.process_time() - self._cpu0) / wall if wall > 0 else 0.0
        return ProcessHealth(loop_lag_ms=list(self._lags), cpu_fraction=cpu, cpu_peak=max(self._peak, cpu))


def merge_health(parts: list[ProcessHealth]) -> ClientHealth:
    return ClientHealth(
        processes=len(parts),
        loop_lag_ms=Distribution.of(x for p in parts for x in p.loop_lag_ms),
        cpu_fraction=max((p.cpu_fraction for p in parts), default=0.0),
        cpu_peak=max((p.cpu_peak for p in parts), default=0.0),
    )


def assess(summary: Summary, guard: GuardConfig) -> Summary:
    """Sets `valid` and `invalid_reasons` from the client witnesses against the thresholds."""
    reasons = []
    lag = summary.client.loop_lag_ms.p99
    if lag is not None and lag > guard.max_loop_lag_p99_ms:
        reasons.append(f"event-loop lag p99 {lag:.1f} ms > {guard.max_loop_lag_p99_ms:g} ms")
    late = summary.lateness_ms.p99
    if late is not None and late > guard.max_lateness_p99_ms:
        reasons.append(f"send lateness p99 {late:.1f} ms > {guard.max_lateness_p99_ms:g} ms")
    if summary.client.cpu_fraction > guard.max_cpu_fraction:
        reasons.append(f"client CPU {summary.client.cpu_fraction:.0%} of a core > {guard.max_cpu_fraction:.0%}")
    summary.valid, summary.invalid_reasons = not reasons, reasons
    return summary
