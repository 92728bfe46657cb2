"""The liveness watcher beside a load: a service job that ends stops the load, which keeps its samples."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from factorybench.liveness import JobLiveness
from factorybench.load import LoadConfig, ProfileConfig
from factorybench.load.engine import Stop, run_coroutine
from factorybench.load.runner import arun_load
from factorybench.slurm.local import LocalTransport
from factorybench.slurm.spec import JobSpec
from factorybench.watch import Aborted, measure


def _config(url: str) -> LoadConfig:
    return LoadConfig(target=url, model="m", profile=ProfileConfig(kind="concurrent", streams=2, duration_s=60),
                      stop_grace_s=1)


@pytest.mark.timeout(60)
def test_a_cancelled_service_job_stops_the_load_gracefully(server_url: str, tmp_path: Path) -> None:
    """The job is cancelled while the (still answering) server is loaded: only the watcher can stop it."""
    transport = LocalTransport(str(tmp_path))
    spec = JobSpec(name="fb-svc", script="#!/bin/bash\nsleep 120\n", workdir=str(tmp_path), time_limit_min=5)

    async def main():
        job_id = await transport.submit(spec)
        liveness = JobLiveness(transport, job_id, interval_s=0.2)
        stop = Stop()
        loop = asyncio.get_running_loop()
        cancel = loop.call_later(1.0, lambda: asyncio.ensure_future(transport.cancel(job_id)))
        t0 = time.monotonic()
        try:
            await measure(arun_load(_config(server_url), stop), [liveness], stop=stop.set)
        except Aborted as exc:
            return exc, time.monotonic() - t0, liveness
        finally:
            cancel.cancel()
            await transport.cancel(job_id)
        raise AssertionError("the load was not stopped")

    exc, took, liveness = run_coroutine(main())
    assert took < 5
    assert str(exc).startswith("the service job ended during the load: job ") and "CANCELLED" in str(exc)
    s = exc.result.summary  # the graceful stop kept what was measured
    assert s.aborted and s.abort_reason == str(exc) and s.requests > 2 and s.errors == 0
    seen = exc.observed["liveness"].files["liveness.json"]
    assert seen["last"]["state"] == "CANCELLED" and seen["polls"] >= 3 and seen["ended_after_s"] < 3


def test_without_a_graceful_stop_the_load_is_cancelled(server_url: str, tmp_path: Path) -> None:
    class Ended:
        name = "ended"

        async def run(self, abort) -> None:
            await asyncio.sleep(0.3)
            abort("job 7 is FAILED")

        def observed(self):
            from factorybench.watch import Observed
            return Observed(files={"x": 1})

    async def main():
        with pytest.raises(Aborted, match="job 7 is FAILED") as info:
            await measure(arun_load(_config(server_url)), [Ended()])
        return info.value

    exc = run_coroutine(main())
    assert exc.result is None and exc.observed["ended"].files == {"x": 1}


def test_a_poll_failure_is_not_the_jobs_death() -> None:
    class Flaky:
        calls = 0

        async def status(self, job_id: str):
            Flaky.calls += 1
            raise OSError("scheduler unreachable")

    async def main():
        liveness = JobLiveness(Flaky(), "1", interval_s=0.05)  # type: ignore[arg-type]
        aborted: list[str] = []
        task = asyncio.ensure_future(liveness.run(aborted.append))
        await asyncio.sleep(0.3)
        task.cancel()
        return liveness, aborted

    liveness, aborted = run_coroutine(main())
    assert not aborted and liveness.failed_polls >= 3 and liveness.polls == 0
