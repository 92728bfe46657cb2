"""The asyncio runner: sends one share of one step's schedule and records a Sample per request.

Accuracy comes first: timestamps are taken with perf_counter() as each chunk
arrives (before parsing), open-loop sends sleep until start + t_i, the connection
pool is sized to the requested concurrency, and the event loop's own lag is
measured alongside so a saturated client shows up as an invalid run.

Real servers close kept-alive connections between requests (llama.cpp does so on about
half of them). A request that failed on a reused connection before any response byte
came back never reached the server, so it is resent once on a fresh connection and
counted as churn, not as an error. A run stops early, keeping its samples, when asked
to (`Stop`) or when the service is unreachable (consecutive connection failures).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter
from typing import TypeVar

import aiohttp

from factorybench.load.config import LoadConfig, Protocol
from factorybench.load.dataset import load_dataset
from factorybench.load.drivers import Driver, make_driver
from factorybench.load.guard import LoopMonitor, ProcessHealth
from factorybench.load.profiles import Step, arrival_times
from factorybench.load.progress import Progress
from factorybench.load.protocols import Adapter
from factorybench.load.samples import ErrorClass, Sample, error_for_status

T = TypeVar("T")
_UNREACHABLE = (ErrorClass.CONNECT, ErrorClass.DROPPED)
_UNCAPPED_CONNECTIONS = 32  # a driver's connections per process for an open loop without max_concurrency


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


class Stop:
    """A request to end the run early, with its reason (a watcher, a signal, the circuit breaker)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


@dataclass(frozen=True)
class Share:
    """This process sends global requests rank, rank + size, ... and rank's part of the streams."""

    rank: int = 0
    size: int = 1

    def part(self, n: int) -> int:
        return n // self.size + (1 if self.rank < n % self.size else 0)


# Set by the connector in the sending task: did this request get a connection that served one before?
_REUSED: ContextVar[bool] = ContextVar("fb_connection_reused", default=False)


class _Connector(aiohttp.TCPConnector):
    """Tells the sending task whether its connection is a reused one (the only case worth a resend)."""

    async def connect(self, req, traces, timeout):  # type: ignore[no-untyped-def]
        conn = await super().connect(req, traces, timeout)
        proto = conn.protocol
        _REUSED.set(getattr(proto, "_fb_served", False))
        if proto is not None:
            proto._fb_served = True  # type: ignore[attr-defined]
        return conn


def _stale(exc: BaseException) -> bool:
    """The server closed the connection before reading this request: a failed write, or EOF at once."""
    return isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                            aiohttp.ClientConnectionResetError)) and not isinstance(exc, aiohttp.ClientConnectorError)


class ShareRunner:
    """Runs shares of steps for one process; reusable across steps (dataset and bodies are cached)."""

    def __init__(self, config: LoadConfig, adapter: Adapter | None = None, driver: Driver | None = None):
        self.config = config
        self.driver = driver or (None if adapter else make_driver(config))
        self.adapter = None if self.driver else adapter or Adapter(config, load_dataset(config.dataset))
        self.urls = [t.rstrip("/") for t in config.targets]  # request i goes to urls[i % len(urls)]
        ok = config.http.ok_status if config.protocol == Protocol.HTTP_JSON else [200]
        self.ok_status = frozenset(ok)
        self.abort_reason: str | None = None

    async def run(self, step: Step, step_index: int, share: Share, start_at: float,
                  stop: Stop | None = None) -> tuple[list[Sample], ProcessHealth]:
        """Waits until `start_at` (a perf_counter instant shared by all shares), then runs the share.

        After a stop, no new request goes out, in-flight ones get `stop_grace_s` and are then cut.
        `abort_reason` says why the share stopped early (None: it ran to the end).
        """
        self._step, self._step_index, self._share, self._start = step, step_index, share, start_at
        self._samples: list[Sample] = []
        self._slot = 0
        self._fails, self._streak_t0 = 0, 0.0
        self._stop = stop = stop or Stop()
        self.abort_reason = None
        streams = share.part(step.streams) if step.mode == "closed" else step.max_concurrency and share.part(
            step.max_concurrency)
        monitor = LoopMonitor(self.config.guard.tick_ms)
        self._send = self._http if self.driver is None else self._call
        async with self._connections(streams or 0):
            # A driver builds payloads and exact answers here; if that overran the agreed start, the share
            # starts late instead of recording its own preparation as send lateness.
            self._start = start_at = max(start_at, perf_counter())
            self._progress = Progress(self.config.progress_s, step.label, share.rank, start_at)
            await sleep_until(start_at)
            monitor.start()
            reporter = self._progress.launch()
            work = asyncio.ensure_future(asyncio.gather(*(self._user() for _ in range(streams or 0)))
                                         if step.mode == "closed" else self._open(streams or None))
            halted = asyncio.ensure_future(stop.event.wait())
            try:
                await asyncio.wait({work, halted}, return_when=asyncio.FIRST_COMPLETED)
                if not work.done():  # stopped: let in-flight requests finish for a while, then cut them
                    await asyncio.wait({work}, timeout=self.config.stop_grace_s)
                    work.cancel()
                await asyncio.gather(work, return_exceptions=True)
            finally:
                halted.cancel()
                health = monitor.stop()
                if reporter:
                    reporter.cancel()
        self.abort_reason = stop.reason if stop.is_set() else None
        return self._samples, health

    @contextlib.asynccontextmanager
    async def _connections(self, streams: int) -> AsyncIterator[None]:
        """The driver's connections, or the HTTP sessions: one pooled, one for resends on fresh connections."""
        if self.driver is not None:
            await self.driver.open(streams or _UNCAPPED_CONNECTIONS, self._step.op)
            try:
                yield
            finally:
                await self.driver.close()
            return
        headers = {"Content-Type": "application/json", **self.config.headers}
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with aiohttp.ClientSession(connector=_Connector(limit=streams, limit_per_host=0), headers=headers,
                                         timeout=timeout) as self._session, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True), headers=headers,
                                      timeout=timeout) as self._fresh:
            yield

    async def _user(self) -> None:
        """One closed-loop user: sends the share's next request as soon as its last one returns."""
        step, share, stopped = self._step, self._share, self._stop.event.is_set
        deadline = self._start + step.duration_s if step.duration_s is not None else float("inf")
        limit = step.max_requests if step.max_requests is not None else float("inf")
        # Only shares that got a stream send: with fewer streams than shares (a sweep's synchronous step
        # on two tasks), the requests are split among those, so none of the step's budget is lost.
        active = min(share.size, step.streams)
        while not stopped():
            now = perf_counter()
            i = share.rank + active * self._slot
            self._slot += 1
            if i >= limit or now >= deadline:
                return
            await self._send(i, now - self._start, 0.0)

    async def _open(self, cap: int | None) -> None:
        """Sleeps until start + t_i for each precomputed arrival: no summed sleeps, so no drift."""
        share, stopped = self._share, self._stop.event.is_set
        times = arrival_times(self._step)[share.rank::share.size]
        sem = asyncio.Semaphore(cap) if cap else None
        tasks: set[asyncio.Task] = set()
        try:
            for j, planned in enumerate(times.tolist()):
                await sleep_until(self._start + planned)
                if stopped():
                    break
                task = asyncio.create_task(self._capped(share.rank + share.size * j, planned, sem))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*tasks)
        finally:  # cut: in-flight requests are cancelled with the schedule, and recorded as aborted
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _capped(self, i: int, planned: float, sem: asyncio.Semaphore | None) -> None:
        if sem is None:
            await self._send(i, planned, 0.0)
            return
        async with sem:
            await self._send(i, planned, perf_counter() - self._start - planned)

    def _failed(self, error: ErrorClass, detail: str | None, t0: float) -> None:
        """The circuit breaker: consecutive connection failures with no success mean the service is gone.

        Consecutive in sending order: a request already in flight when the failures began may still
        succeed (a server finishing its last responses while shutting down), and says nothing about now.
        """
        if error in _UNREACHABLE:
            if not self._fails:
                self._streak_t0 = t0
            self._fails += 1
            if self._fails >= self.config.unreachable_after:
                self._stop.set(f"service unreachable: {self._fails} consecutive connection failures "
                               f"with no success (last: {detail})")

    async def _http(self, i: int, planned: float, queued: float) -> None:
        adapter = self.adapter
        assert adapter is not None
        path, body = adapter.request(i)
        reader = adapter.reader()
        status: int | None = None
        error: ErrorClass | None = None
        detail: str | None = None
        retries = 0
        session = self._session
        _REUSED.set(False)  # until the connector says otherwise (a failed connect is a new connection)
        t0 = perf_counter()
        while True:
            try:
                async with session.request(adapter.method, self.urls[i % len(self.urls)] + path, data=body) as resp:
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
            except (aiohttp.ClientError, OSError) as e:
                if status is None and not retries and _stale(e) and _REUSED.get():
                    retries, session = 1, self._fresh  # never reached the server: resend on a new connection
                    t0 = perf_counter()
                    continue
                connect = status is None and not isinstance(e, aiohttp.ServerDisconnectedError)
                error, detail = (ErrorClass.CONNECT if connect else ErrorClass.DROPPED), repr(e)[:300]
            except asyncio.CancelledError:
                self._aborted(i, planned, queued, t0)
                raise
            break
        done = perf_counter()
        st = reader.state
        if error is None and (st.error or not st.times):
            error, detail = ErrorClass.PROTOCOL, st.error or "response carried no content"
        times = st.times
        ok = error is None
        if ok:
            if self._fails and t0 >= self._streak_t0:
                self._fails = 0
        else:
            self._failed(error, detail, t0)  # type: ignore[arg-type]
        prompt, psrc, out, osrc = adapter.token_counts(st, i) if ok else (None, None, None, None)
        step, start = self._step, self._start
        sample = Sample.model_construct(
            index=i, step=self._step_index, worker=self._share.rank, replica=i % len(self.urls),
            warmup=i < step.warmup_requests or planned < step.warmup_s,
            planned_s=planned, queue_s=queued, sent_s=t0 - start, done_s=done - start,
            ttft_ms=(times[0] - t0) * 1e3 if ok else None, e2e_ms=(times[-1] - t0) * 1e3 if ok else None,
            itl_ms=[(b - a) * 1e3 for a, b in zip(times, times[1:])] if ok else [], chunks=len(times),
            prompt_tokens=prompt, prompt_tokens_source=psrc, output_tokens=out, output_tokens_source=osrc,
            status=status, error=error, error_detail=detail, op=adapter.op, items=adapter.items,
            recall=None, intended_prompt_tokens=adapter.intended_prompt_tokens(i), max_tokens=adapter.max_tokens(i),
            model_echo=st.model, retries=retries, new_connection=retries > 0 or not _REUSED.get())
        self._samples.append(sample)
        self._progress.record(sample)

    async def _call(self, i: int, planned: float, queued: float) -> None:
        """A driver's request: the driver times its own wire I/O."""
        driver = self.driver
        assert driver is not None
        op = driver.op(i, self._step.op)
        error: ErrorClass | None = None
        detail: str | None = None
        status: int | None = None
        out = None
        t0 = perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout_s):
                out = await driver.call(i, op)
        except asyncio.CancelledError:
            self._aborted(i, planned, queued, t0, op)
            raise
        except Exception as e:  # noqa: BLE001 - every failure is classified and recorded
            error, detail, status = driver.classify(e)
        done = perf_counter()
        start, step = self._start, self._step
        if out is not None:
            if self._fails and t0 >= self._streak_t0:
                self._fails = 0
            t0, done, status = out.t0, out.t1, out.status
        else:
            self._failed(error, detail, t0)  # type: ignore[arg-type]
        latency = (done - t0) * 1e3 if out is not None else None
        sample = Sample.model_construct(
            index=i, step=self._step_index, worker=self._share.rank,
            warmup=i < step.warmup_requests or planned < step.warmup_s,
            planned_s=planned, queue_s=queued, sent_s=t0 - start, done_s=done - start,
            ttft_ms=latency, e2e_ms=latency, itl_ms=[], chunks=1 if out is not None else 0,
            prompt_tokens=None, prompt_tokens_source=None, output_tokens=None, output_tokens_source=None,
            status=status, error=error, error_detail=detail, op=op, items=out.items if out else 0,
            recall=out.recall if out else None, intended_prompt_tokens=None, max_tokens=None, model_echo=None,
            retries=0, new_connection=False)
        self._samples.append(sample)
        self._progress.record(sample)

    def _aborted(self, i: int, planned: float, queued: float, t0: float, op: str | None = None) -> None:
        """An in-flight request cut by a stop: kept, marked aborted, never counted as the server's error."""
        now = perf_counter() - self._start
        self._samples.append(Sample.model_construct(
            index=i, step=self._step_index, worker=self._share.rank, warmup=False, planned_s=planned,
            queue_s=queued, sent_s=t0 - self._start, done_s=now, ttft_ms=None, e2e_ms=None, itl_ms=[], chunks=0,
            prompt_tokens=None, prompt_tokens_source=None, output_tokens=None, output_tokens_source=None,
            status=None, error=ErrorClass.ABORTED, error_detail=f"cut by a stop: {self._stop.reason}",
            op=op or (self.adapter.op if self.adapter else None), items=0, recall=None, intended_prompt_tokens=None,
            max_tokens=None, model_echo=None, retries=0, new_connection=False))
