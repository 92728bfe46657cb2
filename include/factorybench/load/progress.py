"""Progress lines on stderr for long runs: rate, completed, errors and p50 TTFT of the last interval."""

from __future__ import annotations

import asyncio
import statistics
import sys
from time import perf_counter

from factorybench.load.samples import Sample


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
