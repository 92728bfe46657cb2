"""One status query per cluster per poll interval, however many jobs are being waited for.

Every deferred sensor of a triggerer runs its own `wait_for_job` loop (slurm/wait.py) in the
triggerer's one event loop. Polling SLURM once per loop per interval costs N squeue calls (or N
REST requests) for N waiting jobs, and a site's slurmctld or slurmrestd rate limit sees all of
them. A `ClusterPoller` sits between those loops and the transport: a loop's `status(job_id)`
joins the next round, and a round asks for every job at once with `Transport.statuses`, so N
loops cost one query per round.

Rounds are at least `interval` apart, start to start, and begin `window` after the first request
that arrives once the previous round is over: loops that slept the same interval after the same
round arrive within microseconds of each other, and the window lets all of them join it.
A round's failure reaches each of its loops, which back off on their own (wait.py keeps the
backoff, the pending policy and the one outcome).

Pollers are per event loop (asyncio objects belong to one loop) and per cluster `key`; a poller
closes its transport and leaves the registry once no loop has waited on it for `idle_s`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Awaitable, Callable, Hashable

from factorybench.errors import SchedulerError
from factorybench.slurm.job import JobInfo
from factorybench.slurm.transport import Transport

log = logging.getLogger("factorybench.slurm.poller")

TransportFactory = Callable[[], Awaitable[Transport]]

_POLLERS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, ClusterPoller]]" = \
    weakref.WeakKeyDictionary()


class ClusterPoller:
    """Batches the status requests of every job waited for on one cluster (see the module doc)."""

    def __init__(self, key: Hashable, factory: TransportFactory, interval: float, *,
                 window: float | None = None, idle_s: float = 30.0):
        self.key = key
        self.factory = factory
        self.interval = interval
        self.window = min(0.25, interval / 4) if window is None else window
        self.idle_s = max(idle_s, 3 * interval)  # never idle between two polls of a live waiter
        self.rounds = 0  # batch queries sent, for benchmarks and tests
        self._transport: Transport | None = None
        self._transport_lock = asyncio.Lock()
        self._waiting: dict[str, list[asyncio.Future]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_start = float("-inf")

    async def transport(self) -> Transport:
        """The poller's one transport, built on first use (cancel goes through it too)."""
        async with self._transport_lock:
            if self._transport is None:
                self._transport = await self.factory()
            return self._transport

    async def status(self, job_id: str) -> JobInfo:
        """The job's state from the next round; that round's error when it failed."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(str(job_id), []).append(future)
        self._wake.set()
        if self._task is None or self._task.done():
            _POLLERS.setdefault(asyncio.get_running_loop(), {}).setdefault(self.key, self)
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"slurm-poller-{self.key}")
        return await future

    async def cancel(self, job_id: str) -> None:
        await (await self.transport()).cancel(job_id)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._live():
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.idle_s)
                    except asyncio.TimeoutError:
                        if not self._live():
                            return
                    continue
                start = max(loop.time() + self.window, self._last_start + self.interval)
                await asyncio.sleep(start - loop.time())
                batch, self._waiting = self._waiting, {}
                batch = {job: futs for job, futs in batch.items() if any(not f.done() for f in futs)}
                if not batch:
                    continue
                self._last_start = loop.time()
                await self._round(batch)
        finally:
            await self._close()

    def _live(self) -> bool:
        return any(not f.done() for futs in self._waiting.values() for f in futs)

    async def _round(self, batch: dict[str, list[asyncio.Future]]) -> None:
        self.rounds += 1
        try:
            infos = await (await self.transport()).statuses(list(batch))
        except Exception as exc:  # every waiter decides for itself: transient errors back off
            for futs in batch.values():
                _settle(futs, exception=exc)
            return
        for job_id, futs in batch.items():
            info = infos.get(job_id)
            if info is None:
                _settle(futs, exception=SchedulerError(f"the batch status query returned nothing for job {job_id}"))
            else:
                _settle(futs, result=info)

    async def _close(self) -> None:
        registry = _POLLERS.get(asyncio.get_running_loop(), {})
        if registry.get(self.key) is self and not self._live():
            del registry[self.key]
        if self._transport is not None and not self._live():
            transport, self._transport = self._transport, None
            await transport.close()


def _settle(futures: list[asyncio.Future], *, result: JobInfo | None = None,
            exception: BaseException | None = None) -> None:
    for f in futures:
        if f.done():
            continue  # its waiter was cancelled (trigger timeout, triggerer shutdown)
        if exception is not None:
            f.set_exception(exception)
        else:
            f.set_result(result)


def shared_poller(key: Hashable, factory: TransportFactory, interval: float) -> ClusterPoller:
    """This event loop's poller for `key` (one per cluster), made on first use."""
    registry = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    poller = registry.get(key)
    if poller is None:
        poller = registry[key] = ClusterPoller(key, factory, interval)
    return poller
