"""The deferrable SLURM trigger: polls a job from the triggerer, holding no worker slot.

It yields exactly one event: `running` when the job starts (target="running"),
`ended` when it reaches a terminal state first, `blocked` when the pending policy
cancelled it, or `error` when the scheduler stayed unreachable too long. Transient
errors (controller restarting, SSH drop, 5xx) are retried with capped, jittered backoff.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent

from factorybench.errors import SchedulerError, TransientSchedulerError
from factorybench.recipe.cluster import ClusterProfile
from factorybench.slurm.job import JobState
from factorybench.slurm.policy import PendingWatch

_STARTED = frozenset({JobState.RUNNING})


class SlurmJobTrigger(BaseTrigger):
    def __init__(self, cluster: dict[str, Any], job_id: str, target: str = "running",
                 poll_interval: float = 2.0, max_unreachable_s: float = 600.0):
        super().__init__()
        self.cluster = cluster
        self.job_id = job_id
        self.target = target  # "running" or "terminal"
        self.poll_interval = poll_interval
        self.max_unreachable_s = max_unreachable_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("factorybench.airflow.triggers.SlurmJobTrigger", {
            "cluster": self.cluster, "job_id": self.job_id, "target": self.target,
            "poll_interval": self.poll_interval, "max_unreachable_s": self.max_unreachable_s})

    async def _transport(self):
        from factorybench.airflow.connections import atransport_for
        return await atransport_for(ClusterProfile.model_validate(self.cluster))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        profile = ClusterProfile.model_validate(self.cluster)
        watch = PendingWatch(profile.pending)
        transport = await self._transport()
        unreachable_since: float | None = None
        failures = 0
        try:
            while True:
                try:
                    info = await transport.status(self.job_id)
                except TransientSchedulerError as exc:
                    now = time.monotonic()
                    unreachable_since = unreachable_since or now
                    failures += 1
                    if now - unreachable_since > self.max_unreachable_s:
                        yield TriggerEvent({"status": "error", "job_id": self.job_id,
                                            "message": f"scheduler unreachable for {now - unreachable_since:.0f}s: {exc}"})
                        return
                    self.log.warning("job %s: scheduler unreachable (%s), retrying", self.job_id, exc)
                    await asyncio.sleep(min(30.0, self.poll_interval * 2 ** min(failures, 5)) * random.uniform(0.5, 1.0))
                    continue
                except SchedulerError as exc:
                    yield TriggerEvent({"status": "error", "job_id": self.job_id, "message": str(exc)})
                    return
                unreachable_since, failures = None, 0
                if self.target == "running" and info.state in _STARTED:
                    yield TriggerEvent({"status": "running", "job": info.to_dict(), "message": info.describe()})
                    return
                if info.terminal:
                    yield TriggerEvent({"status": "ended", "job": info.to_dict(), "message": info.describe()})
                    return
                verdict = watch.observe(info, time.monotonic())
                if verdict.cancel:
                    await transport.cancel(self.job_id)
                    yield TriggerEvent({"status": "blocked", "job": info.to_dict(), "message": verdict.message})
                    return
                self.log.info("%s", info.describe())
                await asyncio.sleep(self.poll_interval)
        finally:
            await transport.close()
