"""Watchers: what runs beside the load, from just before it starts until just after it ends.

A watcher observes something the client cannot (the service's job, the server's /metrics, the
node's exporters) and may abort the load when the measurement has become meaningless (the job
died). What it saw comes back as files for the run's archive and as metrics for the results
database, so adding a watcher never touches the archive or the database code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from factorybench.results.metrics import MetricValue

log = logging.getLogger("factorybench.watch")


@dataclass
class Observed:
    """A watcher's findings: archive files (relative names) and long-form metrics."""

    files: dict[str, Any] = field(default_factory=dict)
    metrics: list[MetricValue] = field(default_factory=list)


class Watcher(Protocol):
    name: str

    async def run(self, abort: Callable[[str], None]) -> None:
        """Watch until cancelled; call `abort(reason)` to stop the load early."""

    def observed(self) -> Observed:
        """What was seen, asked once after the load and the watch have ended."""


class Aborted(Exception):
    """A watcher stopped the load; the message says why. `result` is what the load returned after a
    graceful stop (None when it had to be cancelled), `observed` what the watchers saw."""

    def __init__(self, reason: str, result: Any = None, observed: dict[str, Observed] | None = None):
        super().__init__(reason)
        self.result, self.observed = result, observed or {}


async def measure(load: Awaitable[Any], watchers: list[Watcher], stop: Callable[[str], None] | None = None,
                  grace_s: float = 15.0) -> tuple[Any, dict[str, Observed]]:
    """Run `load` with every watcher beside it. A watcher's own failure is logged and never
    fails the run. An abort calls `stop(reason)`, so a load that can stop gracefully ends and
    returns what it measured (waited for up to `grace_s`, then cancelled); without `stop` the
    load is cancelled. Either way Aborted is raised with the watcher's reason."""
    aborted = asyncio.Event()
    reasons: list[str] = []

    def abort(reason: str) -> None:
        reasons.append(reason)
        aborted.set()
        if stop is not None:
            stop(reason)

    tasks = {w.name: asyncio.create_task(_guarded(w, abort), name=f"watcher {w.name}") for w in watchers}
    work = asyncio.ensure_future(load)
    halted = asyncio.create_task(aborted.wait())
    try:
        await asyncio.wait({work, halted}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done() and stop is not None:
            await asyncio.wait({work}, timeout=grace_s)
    finally:
        await cancel_all({*tasks.values(), halted})
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
    observed = {w.name: _observed(w) for w in watchers}
    if reasons or work.cancelled():
        result = work.result() if work.done() and not work.cancelled() and work.exception() is None else None
        raise Aborted("; ".join(reasons) or "load aborted", result, observed)
    return work.result(), observed


async def cancel_all(tasks: set[asyncio.Task], give_up_s: float = 30.0) -> None:
    """Cancel `tasks` and wait until they have ended, cancelling again any that is still running.

    One cancel is not always enough: on Python 3.11, `asyncio.wait_for` (which asyncssh's commands
    use) drops a cancellation that lands just as its inner await finishes, and the watcher's loop
    then goes on, holding the run until the service job ends. Seen with 10 runs at once on 2 cores.
    """
    pending = {t for t in tasks if not t.done()}
    deadline = asyncio.get_running_loop().time() + give_up_s
    while pending and asyncio.get_running_loop().time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    if pending:
        log.error("left behind, still running after %gs of cancels: %s", give_up_s,
                  ", ".join(t.get_name() for t in pending))


async def _guarded(watcher: Watcher, abort: Callable[[str], None]) -> None:
    try:
        await watcher.run(abort)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("watcher %s failed; the run goes on without it", watcher.name)


def _observed(watcher: Watcher) -> Observed:
    try:
        return watcher.observed()
    except Exception:
        log.exception("watcher %s could not report what it saw", watcher.name)
        return Observed()
