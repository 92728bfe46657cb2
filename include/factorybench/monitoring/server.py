"""The service's own /metrics, scraped beside the load (a Watcher), and the server-side figures.

Scraping runs in the load's event loop, so it only fetches and keeps the lines it needs; the
(slow, pure-Python) parsing happens once the load has ended. The first scrape starts before the
load's first request (the watcher's task is created first, and the load waits 50 ms before its
first send); after the load the watcher keeps scraping until nothing is in flight and the token
counter has stopped (at most `settle_s`), so counter increases cover the whole run.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from typing import Any, Callable

from factorybench.load import progress
from factorybench.load.samples import Sample
from factorybench.monitoring import series
from factorybench.monitoring.names import ServerNames, watched
from factorybench.results import metrics as catalog
from factorybench.watch import Observed

log = logging.getLogger("factorybench.monitoring")

QUANTILES = (50, 90, 99)


class StepClock:
    """Wall-clock start of each load step, learned from the load's samples as they finish (a
    sample's done_s counts from its step's start). In-process loads only: the progress hook sees
    no other process, and then steps are unknown (None)."""

    def __init__(self) -> None:
        self.starts: dict[int, float] = {}

    def on_sample(self, _progress: Any, sample: Sample) -> None:
        self.starts.setdefault(sample.step, time.time() - sample.done_s)

    def step_at(self, t: float) -> int | None:
        began = [(start, step) for step, start in self.starts.items() if start <= t]
        return max(began)[1] if began else None


def derive(scrapes: list[series.Scrape], names: ServerNames) -> dict[str, float]:
    """Server-side figures of a run of scrapes: counter increases, the generation rate while tokens
    were being generated, gauge peaks and means over that stretch, histogram percentiles."""
    out: dict[str, float | None] = {
        "server_generation_tokens": series.increase(scrapes, names.generation_tokens),
        "server_prompt_tokens": series.increase(scrapes, names.prompt_tokens),
        "server_output_tokens_per_s": series.rate(scrapes, names.generation_tokens),
    }
    for metric, counter in (("server_requests", names.requests), ("server_preemptions", names.preemptions)):
        if counter:
            out[metric] = series.increase(scrapes, counter)
    span = series.active(scrapes, names.generation_tokens)
    busy = scrapes[span[0]:span[1] + 1] if span else scrapes
    for metric, gauge_names in (("running", (names.running,)), ("waiting", (names.waiting,)),
                                ("kv_cache_usage", names.kv_usage)):
        stats = series.gauge(busy, gauge_names)
        if stats:
            out[f"server_{metric}_peak"], out[f"server_{metric}_mean"] = stats
    present = {k[0] for s in scrapes for k in s.samples}
    itl = next((h for h in names.itl if f"{h}_bucket" in present), None)
    for short, hist in (("ttft", names.ttft), ("e2e", names.e2e), ("itl", itl)):
        if hist:
            cumulative = series.buckets(scrapes, hist)
            for q in QUANTILES:
                value = series.quantile(q / 100, cumulative)
                out[f"server_{short}_p{q}_ms"] = None if value is None else value * 1e3
    return {k: v for k, v in out.items() if v is not None}


class ServerMetricsWatcher:
    """Scrapes `url` every `interval_s` from before the load until just after it."""

    name = "server_metrics"

    def __init__(self, url: str, names: ServerNames, interval_s: float, run_id: str,
                 clock: StepClock | None = None, timeout_s: float = 5.0, settle_s: float = 5.0):
        self.url, self.names, self.interval_s, self.run_id = url, names, interval_s, run_id
        self.clock, self.timeout_s, self.settle_s = clock, timeout_s, settle_s
        self._wanted = watched(names)
        self._live = (names.generation_tokens, names.running, names.waiting, *names.kv_usage)
        self.raw: list[tuple[float, str]] = []  # (t, kept lines) of every successful scrape
        self.first_text = self.last_text = ""
        self.errors: list[str] = []

    async def run(self, abort: Callable[[str], None]) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        unsubscribe = progress.subscribe(self.clock.on_sample) if self.clock else None
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                while True:
                    await self._scrape(session)
                    await asyncio.sleep(self.interval_s)
            except asyncio.CancelledError:
                # Its own task: timeouts inside must not be mistaken for this task's cancellation.
                await asyncio.ensure_future(self._settle(session))
                raise
            finally:
                if unsubscribe:
                    unsubscribe()

    async def _scrape(self, session) -> str | None:
        import aiohttp

        t0 = time.time()
        try:
            async with session.get(self.url) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}: {text[:120]!r}")
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            self.errors.append(f"{t0:.3f} {type(exc).__name__}: {exc}"[:300])
            if len(self.errors) == 1:
                log.warning("scraping %s failed: %s", self.url, self.errors[0])
            return None
        kept = series.keep_lines(text, self._wanted)
        self.raw.append(((t0 + time.time()) / 2, kept))
        self.first_text = self.first_text or text
        self.last_text = text
        return kept

    async def _settle(self, session) -> None:
        """Scrape until nothing runs and the token counter stopped moving, at most settle_s."""
        deadline = time.monotonic() + self.settle_s
        previous = None
        while time.monotonic() < deadline:
            kept = await self._scrape(session)
            now = self._quick(kept) if kept is not None else None
            if now is not None and previous is not None and not now.get(self.names.running) \
                    and now.get(self.names.generation_tokens) == previous.get(self.names.generation_tokens):
                return
            previous = now
            await asyncio.sleep(0.2)

    def _quick(self, kept: str) -> dict[str, float | None]:
        """A few totals from one scrape, parsed from a handful of lines (cheap enough for live use)."""
        scrape = series.parse(series.keep_lines(kept, self._live), 0.0)
        return {name: scrape.total(name) for name in self._live}

    def latest(self) -> dict[str, float]:
        """Live figures for the Pushgateway: running, waiting, KV cache, generation rate since the
        previous scrape."""
        if not self.raw:
            return {}
        t1, last = self.raw[-1]
        now = self._quick(last)
        out = {"server_running": now[self.names.running], "server_waiting": now[self.names.waiting],
               "server_kv_cache_usage": next((now[n] for n in self.names.kv_usage if now[n] is not None), None)}
        if len(self.raw) > 1:
            t0, before = self.raw[-2]
            prev = self._quick(before)[self.names.generation_tokens]
            gen = now[self.names.generation_tokens]
            if gen is not None and prev is not None and t1 > t0 and gen >= prev:
                out["server_output_tokens_per_s"] = (gen - prev) / (t1 - t0)
        return {k: v for k, v in out.items() if v is not None}

    def observed(self) -> Observed:
        scrapes = [series.parse(text, t) for t, text in self.raw]
        figures = derive(scrapes, self.names) if len(scrapes) >= 2 else {}
        step_at = self.clock.step_at if self.clock else (lambda t: None)
        files: dict[str, Any] = {
            "summary.json": {"url": self.url, "interval_s": self.interval_s, "scrapes": len(scrapes),
                             "errors": self.errors[-20:], "error_count": len(self.errors),
                             "window": [scrapes[0].t, scrapes[-1].t] if scrapes else None,
                             "steps": {str(k): v for k, v in (self.clock.starts if self.clock else {}).items()},
                             "figures": figures},
        }
        if scrapes:
            files["series.parquet"] = _parquet(series.rows(scrapes, self.run_id, step_at))
            files["first.prom"], files["last.prom"] = self.first_text, self.last_text
        return Observed(files, [catalog.value_of(k, v) for k, v in figures.items()])


def _parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("t", pa.float64()), ("run_id", pa.string()), ("step", pa.int32()),
                        ("metric", pa.string()), ("labels", pa.string()), ("value", pa.float64())])
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    return buf.getvalue()


def read_series(data: bytes) -> list[dict]:
    """The archived series back as rows (for tests, reports and the CLI)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(data)).to_pylist()
    for r in rows:
        r["labels"] = json.loads(r["labels"])
    return rows
