"""Waiting for a job: the loop the deferrable trigger runs in the triggerer, and `factorybench run`
runs in the foreground. It ends with exactly one outcome:

- `running` when the job starts (target "running");
- `ended` when it reaches a terminal state first (or at all, for target "terminal");
- `blocked` when the pending policy cancelled it;
- `error` when the scheduler stayed unreachable too long, or refused the query.

Transient errors (controller restarting, SSH drop, 5xx) are retried with capped, jittered backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Awaitable, Callable

from factorybench.errors import SchedulerError, TransientSchedulerError
from factorybench.recipe.cluster import PendingPolicy
from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.policy import PendingWatch

log = logging.getLogger("factorybench.slurm.wait")


async def wait_for_job(job_id: str, status: Callable[[], Awaitable[JobInfo]], cancel: Callable[[], Awaitable[None]],
                       *, target: str = "running", poll_interval: float = 2.0, pending: PendingPolicy | None = None,
                       max_unreachable_s: float = 600.0) -> dict[str, Any]:
    watch = PendingWatch(pending or PendingPolicy())
    unreachable_since: float | None = None
    failures = 0
    while True:
        try:
            info = await status()
        except TransientSchedulerError as exc:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            failures += 1
            if now - unreachable_since > max_unreachable_s:
                return {"status": "error", "job_id": job_id,
                        "message": f"scheduler unreachable for {now - unreachable_since:.0f}s: {exc}"}
            log.warning("job %s: scheduler unreachable (%s), retrying", job_id, exc)
            await asyncio.sleep(min(30.0, poll_interval * 2 ** min(failures, 5)) * random.uniform(0.5, 1.0))
            continue
        except SchedulerError as exc:
            return {"status": "error", "job_id": job_id, "message": str(exc)}
        unreachable_since, failures = None, 0
        if target == "running" and info.state is JobState.RUNNING:
            return {"status": "running", "job": info.to_dict(), "message": info.describe()}
        if info.terminal:
            return {"status": "ended", "job": info.to_dict(), "message": info.describe()}
        verdict = watch.observe(info, time.monotonic())
        if verdict.cancel:
            await cancel()
            return {"status": "blocked", "job": info.to_dict(), "message": verdict.message}
        log.info("%s", info.describe())
        await asyncio.sleep(poll_interval)
