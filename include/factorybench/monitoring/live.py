"""Live progress to the Pushgateway while the load runs (a Watcher).

The client side comes from the load's progress hook (every finished request of an in-process
load), the server side from the server-metrics watcher's latest scrape. Pushing is an HTTP call
in a worker thread, so the load's event loop only pays for a few percentiles per interval. With
`client.where: slurm` or `workers > 1` the requests finish in other processes: only the server
side is pushed then.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from typing import Any, Callable

from factorybench.load import progress
from factorybench.load.samples import Sample
from factorybench.monitoring import push
from factorybench.monitoring.server import ServerMetricsWatcher
from factorybench.watch import Observed

log = logging.getLogger("factorybench.monitoring")


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


class LiveWatcher:
    name = "live"

    def __init__(self, gateway: str, recipe: str, run_id: str, interval_s: float,
                 server: ServerMetricsWatcher | None = None, timeout_s: float = 5.0):
        self.gateway, self.recipe, self.run_id = gateway, recipe, run_id
        self.interval_s, self.server, self.timeout_s = interval_s, server, timeout_s
        self.done = self.errors = 0
        self.step: int | None = None
        self._window: list[Sample] = []
        self._t0 = self._last = time.time()
        self.pushes = 0
        self.failures: list[str] = []

    def on_sample(self, _progress: Any, sample: Sample) -> None:
        self.done += 1
        self.errors += sample.error is not None
        self.step = sample.step
        self._window.append(sample)

    def snapshot(self, active: bool = True) -> dict[str, float]:
        """The figures of the interval since the previous snapshot (and resets it)."""
        now = time.time()
        window, self._window = self._window, []
        seconds, self._last = max(now - self._last, 1e-9), now
        ok = [s for s in window if s.error is None]
        ttft = sorted(s.ttft_ms for s in ok if s.ttft_ms is not None)
        e2e = sorted(s.e2e_ms for s in ok if s.e2e_ms is not None)
        values: dict[str, float | None] = {
            "active": 1.0 if active else 0.0, "elapsed_s": now - self._t0, "requests_done": self.done,
            "errors": self.errors, "request_rate": len(window) / seconds,
            "output_tokens_per_s": sum(s.output_tokens or 0 for s in ok) / seconds,
            "ttft_p50_ms": _pct(ttft, 50), "ttft_p99_ms": _pct(ttft, 99),
            "e2e_p50_ms": _pct(e2e, 50), "e2e_p99_ms": _pct(e2e, 99),
            "step": self.step,
        }
        if self.server is not None:
            values.update(self.server.latest())
        return {k: float(v) for k, v in values.items() if v is not None}

    async def run(self, abort: Callable[[str], None]) -> None:
        unsubscribe = progress.subscribe(self.on_sample)
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                await asyncio.to_thread(self._push, self.snapshot())
        except asyncio.CancelledError:
            await asyncio.ensure_future(asyncio.to_thread(self._end))
            raise
        finally:
            unsubscribe()

    def _push(self, values: dict[str, float]) -> None:
        try:
            push.push_live(self.gateway, self.recipe, self.run_id, push.live_registry(values, self.step),
                           self.timeout_s)
            self.pushes += 1
        except Exception as exc:  # the Pushgateway is an observer: the run goes on without it
            self._failed(exc)

    def _end(self) -> None:
        """The live group goes once the load ends; what Prometheus scraped of it stays."""
        try:
            push.delete_live(self.gateway, self.recipe, self.run_id, self.timeout_s)
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failures.append(f"{time.time():.3f} {type(exc).__name__}: {exc}"[:300])
        if len(self.failures) == 1:
            log.warning("live push to %s failed: %s", self.gateway, self.failures[0])

    def observed(self) -> Observed:
        return Observed({"pushes.json": {"gateway": self.gateway, "pushes": self.pushes,
                                         "requests_seen": self.done, "failures": self.failures[-20:]}})
