"""The simulated inference engine: admission, then tokens released on precomputed deadlines.

Protocol handlers (OpenAI, Ollama) only format what `Generation.chunks()` yields. Every
deadline is absolute (arrival + TTFT, then + ITL per token), so a handler that is late
writing one chunk does not delay the following ones.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from factorybench.sim.clock import PreciseTimer
from factorybench.sim.config import SimConfig
from factorybench.sim.metrics import SimMetrics
from factorybench.sim.model import (FaultDraw, FaultPlan, LatencyModel, Scheduler, TextSource,
                                    chunk_sizes)


class InjectedError(Exception):
    """error_rate fired: answer HTTP 500."""


class Dropped(Exception):
    """drop_rate fired: the handler must close the connection without finishing."""


class Generation:
    """One admitted request. Iterate `chunks()` once; timing fields are monotonic seconds."""

    __slots__ = ("engine", "prompt_tokens", "max_tokens", "plan", "arrival", "start",
                 "first_token_at", "end", "words", "completed", "generated")

    def __init__(self, engine: Engine, prompt_tokens: int, max_tokens: int, plan: FaultPlan,
                 arrival: float, start: float):
        self.engine = engine
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.plan = plan
        self.arrival = arrival
        self.start = start
        self.first_token_at = start
        self.end = start
        self.words = engine.text.take(max_tokens)
        self.completed = False
        self.generated = 0

    @property
    def text(self) -> str:
        """The whole output (what a non-streaming response returns)."""
        return b"".join(self.words).decode()

    async def chunks(self) -> AsyncIterator[tuple[list[bytes], bool]]:
        """Yield (words of the chunk, is_last) at each chunk's deadline.

        Raises Dropped where the fault plan says so.
        """
        engine = self.engine
        latency, sched, metrics = engine.latency, engine.scheduler, engine.metrics
        sleep_until = engine.timer.sleep_until
        plan = self.plan
        sizes = chunk_sizes(self.max_tokens, engine.config.tokens_per_chunk)
        last = len(sizes) - 1
        deadline = self.start + latency.ttft_s(self.prompt_tokens)
        prev = 0.0
        pos = 0
        for i, n in enumerate(sizes):
            if i:
                deadline += latency.itl_s(sched.running, n)
            if i == plan.stall_at:
                deadline += engine.config.stall_ms / 1000.0
            if i == plan.drop_at:
                raise Dropped
            await sleep_until(deadline)
            now = time.monotonic()
            if i:
                metrics.itl.observe((now - prev) / n, n)
            else:
                self.first_token_at = now
                metrics.ttft.observe(now - self.arrival)
                metrics.prompt_tokens += self.prompt_tokens
            metrics.generation_tokens += n
            self.generated += n
            prev = self.end = now
            yield self.words[pos:pos + n], i == last
            pos += n
        self.completed = True  # only once the caller has written the last chunk

    async def run(self) -> None:
        """Consume all chunks on schedule (non-streaming responses)."""
        async for _ in self.chunks():
            pass


class Engine:
    """Shared state of one app: config, scheduler, seeded sources, metrics, timer."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.scheduler = Scheduler(config.max_num_seqs, config.max_queue, config.kv_cache_tokens)
        self.latency = LatencyModel(config)
        self.text = TextSource(config.seed)
        self.faults = FaultDraw(config)
        self.metrics = SimMetrics(config.model, self.scheduler)
        self.ids = itertools.count(1)
        self.created = int(time.time())
        self.ready_at = float("inf")
        self._timer: PreciseTimer | None = None

    @property
    def timer(self) -> PreciseTimer:
        if self._timer is None:
            raise RuntimeError("Engine.start() was not called (the app has not started)")
        return self._timer

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the running loop; readiness begins after startup_delay_s."""
        self._timer = PreciseTimer(loop)
        self.ready_at = time.monotonic() + self.config.startup_delay_s

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    @property
    def ready(self) -> bool:
        return time.monotonic() >= self.ready_at

    def next_id(self) -> str:
        return f"{next(self.ids):012x}"

    @asynccontextmanager
    async def generation(self, arrival: float, prompt_tokens: int,
                         max_tokens: int) -> AsyncIterator[Generation]:
        """Admit a request (may wait in the queue) and account for it when it ends.

        Raises QueueFull or InjectedError before anything is sent.
        """
        plan = self.faults.draw(len(chunk_sizes(max_tokens, self.config.tokens_per_chunk)))
        if plan.error:
            raise InjectedError
        reserve = prompt_tokens + max_tokens
        waited = await self.scheduler.acquire(reserve)
        # Not queued: the clock started when the request arrived, so TTFT is exact.
        start = time.monotonic() if waited else arrival
        self.metrics.queue.observe(start - arrival)
        gen = Generation(self, prompt_tokens, max_tokens, plan, arrival, start)
        try:
            yield gen
        finally:
            self.scheduler.release(reserve)
            if gen.completed:
                self.metrics.finished["length"] += 1
                self.metrics.e2e.observe(gen.end - arrival)
            else:
                self.metrics.finished["abort"] += 1

    async def embed_delay(self, arrival: float, tokens: int) -> None:
        """Hold a running slot for the embedding latency (raises QueueFull)."""
        cfg = self.config
        waited = await self.scheduler.acquire(tokens)
        start = time.monotonic() if waited else arrival
        try:
            await self.timer.sleep_until(
                start + (cfg.embed_overhead_ms + cfg.embed_ms_per_token * tokens) / 1000.0)
            self.metrics.prompt_tokens += tokens
        finally:
            self.scheduler.release(tokens)
