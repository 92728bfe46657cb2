"""The service job's liveness during the load: a load against a dead service measures nothing.

`JobLiveness` polls the job every cluster poll interval while the load runs. When the job
is no longer RUNNING (cancelled, failed, timed out, node failure, or requeued off a node set
DOWN) it aborts the load with SLURM's own
words for the job's state, the load stops within one poll and keeps what it measured, and the
run fails with that reason. A poll that fails (the scheduler is briefly unreachable) is
logged and retried at the next interval: only the job's state decides.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.transport import Transport
from factorybench.watch import Observed

log = logging.getLogger("factorybench.liveness")


class JobLiveness:
    """A watcher (factorybench.watch) of the service job's state."""

    name = "liveness"

    def __init__(self, transport: Transport, job_id: str, interval_s: float):
        self.transport, self.job_id, self.interval_s = transport, job_id, interval_s
        self.polls = 0
        self.failed_polls = 0
        self.last: JobInfo | None = None
        self.ended_after_s: float | None = None

    async def run(self, abort: Callable[[str], None]) -> None:
        started = time.monotonic()
        while True:
            try:
                info = await self.transport.status(self.job_id)
            except Exception as exc:  # noqa: BLE001 - a poll failure is not the job's death
                self.failed_polls += 1
                log.warning("could not poll service job %s (%s); retrying in %gs", self.job_id, exc, self.interval_s)
            else:
                self.polls += 1
                self.last = info
                if info.state is not JobState.RUNNING:  # ended, or requeued off its node: nothing serves
                    self.ended_after_s = time.monotonic() - started
                    what = "ended" if info.terminal else "left its node (requeued or suspended)"
                    abort(f"the service job {what} during the load: {info.describe()}")
                    return
            await asyncio.sleep(self.interval_s)

    def observed(self) -> Observed:
        seen: dict[str, Any] = {"job_id": self.job_id, "interval_s": self.interval_s, "polls": self.polls,
                                "failed_polls": self.failed_polls, "ended_after_s": self.ended_after_s,
                                "last": self.last.to_dict() if self.last else None}
        return Observed(files={"liveness.json": seen})
