"""The deferrable SLURM trigger: polls a job from the triggerer, holding no worker slot.

The loop itself is the core's (factorybench.slurm.wait); this adapter turns the loop's one outcome
into one TriggerEvent. Its status queries go through the triggerer's shared poller for the job's
cluster (factorybench.slurm.poller): the triggers of N waiting jobs on one cluster cost one squeue
(or one REST `jobs` call) per poll interval, not N.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent

from factorybench.recipe.cluster import ClusterProfile
from factorybench.slurm.poller import shared_poller
from factorybench.slurm.wait import wait_for_job


def cluster_key(profile: ClusterProfile, poll_interval: float) -> str:
    """What makes two triggers poll the same cluster the same way: the transport and where it
    connects (connection ids, REST settings, local workdir), and the interval."""
    return json.dumps({"transport": profile.transport, "ssh": profile.ssh_conn_id,
                       "rest": profile.rest.model_dump(mode="json") if profile.transport == "rest" else None,
                       "workdir": profile.workdir if profile.transport == "local" else None,
                       "interval": poll_interval}, sort_keys=True)


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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from factorybench.airflow.connections import atransport_for

        profile = ClusterProfile.model_validate(self.cluster)
        poller = shared_poller(cluster_key(profile, self.poll_interval), lambda: atransport_for(profile),
                               self.poll_interval)
        yield TriggerEvent(await wait_for_job(
            self.job_id, lambda: poller.status(self.job_id), lambda: poller.cancel(self.job_id),
            target=self.target, poll_interval=self.poll_interval, pending=profile.pending,
            max_unreachable_s=self.max_unreachable_s))
