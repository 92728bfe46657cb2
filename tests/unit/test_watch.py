"""Watchers run beside the load: they can stop it, and their own failures never fail the run."""

from __future__ import annotations

import asyncio

import pytest

from factorybench.results.metrics import value_of
from factorybench.watch import Aborted, Observed, measure


class Counter:
    name = "counter"

    def __init__(self, abort_after: int | None = None, crash: bool = False):
        self.ticks, self.abort_after, self.crash = 0, abort_after, crash

    async def run(self, abort):
        while True:
            self.ticks += 1
            if self.crash:
                raise RuntimeError("exporter unreachable")
            if self.abort_after is not None and self.ticks >= self.abort_after:
                abort(f"job died after {self.ticks} ticks")
            await asyncio.sleep(0.01)

    def observed(self) -> Observed:
        return Observed(files={"ticks.json": {"ticks": self.ticks}}, metrics=[value_of("ticks", self.ticks)])


async def load(seconds: float, result: str = "done") -> str:
    await asyncio.sleep(seconds)
    return result


async def test_the_load_result_and_what_the_watchers_saw():
    watcher = Counter()
    result, observed = await measure(load(0.1), [watcher])
    assert result == "done" and watcher.ticks >= 5
    assert observed["counter"].files == {"ticks.json": {"ticks": watcher.ticks}}
    assert observed["counter"].metrics[0].value == watcher.ticks


async def test_a_watcher_aborts_the_load():
    started = asyncio.get_running_loop().time()
    with pytest.raises(Aborted, match="job died after 3 ticks"):
        await measure(load(30), [Counter(abort_after=3)])
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_failing_watcher_does_not_fail_the_run():
    result, observed = await measure(load(0.05), [Counter(crash=True)])
    assert result == "done" and observed["counter"].files == {"ticks.json": {"ticks": 1}}


async def test_the_load_failing_is_the_loads_error():
    async def broken():
        raise ValueError("bad target")

    with pytest.raises(ValueError, match="bad target"):
        await measure(broken(), [Counter()])


class DropsOneCancel:
    """Loses its first cancellation, as Python 3.11's wait_for does when the cancel lands just as
    the awaited command finishes (asyncssh's polls): the loop goes on as if nothing happened."""

    name = "liveness"

    def __init__(self):
        self.polls, self.dropped = 0, 0

    async def run(self, abort):
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if self.dropped:
                    raise
                self.dropped += 1
            self.polls += 1
            if self.polls >= 1000:  # ~10 s: the job's time limit in the incident
                abort("the service job ended during the load: job 117 is TIMEOUT")
                return

    def observed(self) -> Observed:
        return Observed()


async def test_a_watcher_that_drops_a_cancel_does_not_hold_the_run():
    watcher = DropsOneCancel()
    result, _ = await asyncio.wait_for(measure(load(0.05), [watcher]), 5)
    assert result == "done" and watcher.dropped == 1
