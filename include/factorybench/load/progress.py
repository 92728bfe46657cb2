"""Progress lines on stderr for long runs: rate, completed, errors and p50 TTFT of the last interval.

Listeners (`subscribe`) see every finished request of every load in this process as it happens:
the monitoring layer pushes live progress from them (factorybench.monitoring.live).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
from time import perf_counter
from typing import Callable

from factorybench.load.samples import Sample

Listener = Callable[["Progress", Sample], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call `listener(progress, sample)` after each request finishes; returns the unsubscribe.
    A listener must be quick (it runs in the load's event loop) and its errors are only logged."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


class Progress:
    """Counts samples as they finish; a background task prints every `interval_s` (None: silent)."""

    def __init__(self, interval_s: float | None, label: str, rank: int, start: float):
        self.interval_s, self.label, self.rank, self.t0 = interval_s, label, rank, start
        self.completed = self.errors = 0
        self._window: list[float] = []

    def record(self, sample: Sample) -> None:
        if sample.error is None:
            self.completed += 1
            if self.interval_s and sample.ttft_ms is not None:
                self._window.append(sample.ttft_ms)
        else:
            self.errors += 1
        for listener in _listeners:
            try:
                listener(self, sample)
            except Exception:
                logging.getLogger("factorybench.load").exception("progress listener failed")

    def launch(self) -> asyncio.Task | None:
        return asyncio.create_task(self._report()) if self.interval_s else None

    async def _report(self) -> None:
        last_t, last_n = perf_counter(), 0
        while True:
            await asyncio.sleep(self.interval_s or 0)
            now = perf_counter()
            rate = (self.completed - last_n) / (now - last_t)
            ttft = f"{statistics.median(self._window):.1f} ms" if self._window else "-"
            print(f"[load {self.label} #{self.rank}] {now - self.t0:6.1f} s  rate {rate:8.1f}/s  "
                  f"completed {self.completed}  errors {self.errors}  ttft p50 {ttft}",
                  file=sys.stderr, flush=True)
            last_t, last_n, self._window = now, self.completed, []
