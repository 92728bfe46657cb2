"""The asyncio runner: sends one share of one step's schedule and records a Sample per request.

Accuracy comes first: timestamps are taken with perf_counter() as each chunk
arrives (before parsing), open-loop sends sleep until start + t_i, the connection
pool is sized to the requested concurrency, and the event loop's own lag is
measured alongside so a saturated client shows up as an invalid run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from time import perf_counter
from typing import TypeVar

import aiohttp

from factorybench.load.config import LoadConfig, Protocol
from factorybench.load.dataset import load_dataset
from factorybench.load.guard import LoopMonitor, ProcessHealth
from factorybench.load.profiles import Step, arrival_times
from factorybench.load.progress import Progress
from factorybench.load.protocols import Adapter
from factorybench.load.samples import ErrorClass, Sample, error_for_status

T = TypeVar("T")


def run_coroutine(coro: Coroutine[object, object, T]) -> T:
    """Runs on uvloop when installed: its faster I/O callbacks mean less client-side delay."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def sleep_until(instant: float) -> None:
    """uvloop's millisecond timers may wake early: sleep again until the instant has really passed."""
    while (delay := instant - perf_counter()) > 0:
        await asyncio.sleep(delay)


@dataclass(frozen=True)
class Share:
    """This process sends global requests rank, rank + size, ... and rank's part of the streams."""

    rank: int = 0
    size: int = 1

    def part(self, n: int) -> int:
        return n // self.size + (1 if self.rank < n % self.size else 0)


class ShareRunner:
    """Runs shares of steps for one process; reusable across steps (dataset and bodies are cached)."""

    def __init__(self, config: LoadConfig, adapter: Adapter | None = None):
        self.config = config
        self.adapter = adapter or Adapter(config, load_dataset(config.dataset))
        self.url = config.target.rstrip("/")
        ok = config.http.ok_status if config.protocol == Protocol.HTTP_JSON else [200]
        self.ok_status = frozenset(ok)

    async def run(self, step: Step, step_index: int, share: Share, start_at: float) -> tuple[
            list[Sample], ProcessHealth]:
        """Waits until `start_at` (a perf_counter instant shared by all shares), then runs the share."""
        self._step, self._step_index, self._share, self._start = step, step_index, share, start_at
        self._samples: list[Sample] = []
        self._slot = 0
        streams = share.part(step.streams) if step.mode == "closed" else step.max_concurrency and share.part(
            step.max_concurrency)
        connector = aiohttp.TCPConnector(limit=streams or 0, limit_per_host=0, force_close=False)
        headers = {"Content-Type": "application/json", **self.config.headers}
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        monitor = LoopMonitor(self.config.guard.tick_ms)
        self._progress = Progress(self.config.progress_s, step.label, share.rank, start_at)
        async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:
            self._session = session
            await sleep_until(start_at)
            monitor.start()
            reporter = self._progress.launch()
            try:
                if step.mode == "closed":
                    await asyncio.gather(*(self._user() for _ in range(streams or 0)))
                else:
                    await self._open(streams or None)
            finally:
                health = monitor.stop()
                if reporter:
                    reporter.cancel()
        return self._samples, health

    async def _user(self) -> None:
        """One closed-loop user: sends the share's next request as soon as its last one returns."""
        step, share = self._step, self._share
        deadline = self._start + step.duration_s if step.duration_s is not None else float("inf")
        limit = step.max_requests if step.max_requests is not None else float("inf")
        while True:
            now = perf_counter()
            i = share.rank + share.size * self._slot
            self._slot += 1
            if i >= limit or now >= deadline:
                return
            await self._send(i, now - self._start, 0.0)

    async def _open(self, cap: int | None) -> None:
        """Sleeps until start + t_i for each precomputed arrival: no summed sleeps, so no drift."""
        share = self._share
        times = arrival_times(self._step)[share.rank::share.size]
        sem = asyncio.Semaphore(cap) if cap else None
        tasks = set()
        for j, planned in enumerate(times.tolist()):
            await sleep_until(self._start + planned)
            task = asyncio.create_task(self._capped(share.rank + share.size * j, planned, sem))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*tasks)

    async def _capped(self, i: int, planned: float, sem: asyncio.Semaphore | None) -> None:
        if sem is None:
            await self._send(i, planned, 0.0)
            return
        async with sem:
            await self._send(i, planned, perf_counter() - self._start - planned)

    async def _send(self, i: int, planned: float, queued: float) -> None:
        adapter = self.adapter
        path, body = adapter.request(i)
        reader = adapter.reader()
        status: int | None = None
        error: ErrorClass | None = None
        detail: str | None = None
        t0 = perf_counter()
        try:
            async with self._session.request(adapter.method, self.url + path, data=body) as resp:
                status = resp.status
                if status in self.ok_status:
                    feed = reader.feed
                    async for data in resp.content.iter_any():
                        feed(data, perf_counter())
                    reader.close(perf_counter())
                else:
                    error = error_for_status(status)
                    detail = (await resp.content.read(300)).decode(errors="replace")
        except asyncio.TimeoutError:
            error, detail = ErrorClass.TIMEOUT, f"no complete response within {self.config.timeout_s:g} s"
        except (aiohttp.ClientConnectorError, aiohttp.ClientError, OSError) as e:
            connect = status is None and not isinstance(e, aiohttp.ServerDisconnectedError)
            error, detail = (ErrorClass.CONNECT if connect else ErrorClass.DROPPED), repr(e)[:300]
        done = perf_counter()
        st = reader.state
        if error is None and (st.error or not st.times):
            error, detail = ErrorClass.PROTOCOL, st.error or "response carried no content"
        times = st.times
        ok = error is None
        prompt, psrc, out, osrc = adapter.token_counts(st, i) if ok else (None, None, None, None)
        step, start = self._step, self._start
        sample = Sample.model_construct(
            index=i, step=self._step_index, worker=self._share.rank,
            warmup=i < step.warmup_requests or planned < step.warmup_s,
            planned_s=planned, queue_s=queued, sent_s=t0 - start, done_s=done - start,
            ttft_ms=(times[0] - t0) * 1e3 if ok else None, e2e_ms=(times[-1] - t0) * 1e3 if ok else None,
            itl_ms=[(b - a) * 1e3 for a, b in zip(times, times[1:])] if ok else [], chunks=len(times),
            prompt_tokens=prompt, prompt_tokens_source=psrc, output_tokens=out, output_tokens_source=osrc,
            status=status, error=error, error_detail=detail)
        self._samples.append(sample)
        self._progress.record(sample)
