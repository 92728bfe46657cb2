"""What the UI does to clusters: reads their state (cached, so page views do not hammer
slurmctld) and cancels a running benchmark.

Cancelling is two things, because neither alone is enough: Airflow marks the DAG run failed (its
running tasks are killed, and RunLoadOperator.on_kill cancels the service job), and the run's
SLURM jobs, found by name (fb-<recipe>-<role>-<run_tag>), are cancelled through the transport:
the deferred sensor has no on_kill, and a submit in flight may queue a job after the kill, so
`settle` sweeps again until the run has been quiet for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable

from factorybench import settings
from factorybench.errors import SchedulerError
from factorybench.recipe import ClusterProfile, load_clusters
from factorybench.slurm.cluster_state import ClusterState
from factorybench.slurm.transport import Transport, cancel_and_wait

log = logging.getLogger("factorybench.ui")
Opener = Callable[[ClusterProfile], Awaitable[Transport]]  # builds a profile's transport

CACHE_S = 15.0  # a cluster's state is read at most this often
ERROR_CACHE_S = 5.0  # and a failed read is retried no sooner than this
SETTLE_S = 45.0  # how long a cancel keeps sweeping


async def open_transport(profile: ClusterProfile) -> Transport:
    """The transport the DAGs use for this profile, built from Airflow's connections."""
    from factorybench.airflow.connections import atransport_for

    return await atransport_for(profile)


def profiles() -> dict[str, ClusterProfile]:
    return load_clusters(settings.clusters_file())


@dataclass(frozen=True)
class ClusterRead:
    profile: str
    transport: str
    state: ClusterState | None
    error: str | None
    read_at: float  # epoch seconds
    cached: bool = False


class ClusterStates:
    """Each (profile, transport)'s state, read at most every `ttl_s`; failures are kept shorter."""

    def __init__(self, ttl_s: float = CACHE_S, opener: Opener = open_transport):
        self.ttl_s, self.opener = ttl_s, opener
        self._cache: dict[tuple[str, str], tuple[float, ClusterRead]] = {}
        self.reads = 0  # how many times a cluster was actually asked (tests check the cache with it)

    async def read(self, name: str, profile: ClusterProfile, fresh: bool = False) -> ClusterRead:
        key = (name, profile.transport)
        hit = self._cache.get(key)
        if hit and not fresh and time.monotonic() - hit[0] < (self.ttl_s if hit[1].state else ERROR_CACHE_S):
            return replace(hit[1], cached=True)
        self.reads += 1
        state, error = None, None
        try:
            transport = await self.opener(profile)
            try:
                state = await transport.cluster_state()
            finally:
                await transport.close()
        except Exception as exc:  # shown on the page as it is: the cluster view must not fail with it
            error = f"{type(exc).__name__}: {exc}"
            log.warning("cluster %s (%s): %s", name, profile.transport, error)
        result = ClusterRead(name, profile.transport, state, error, time.time())
        self._cache[key] = (time.monotonic(), result)
        return result

    def forget(self, name: str) -> None:
        for key in [k for k in self._cache if k[0] == name]:
            del self._cache[key]


@dataclass
class CancelOutcome:
    state_before: str | None  # the DAG run's state when the cancel began (None: Airflow has no such run)
    marked_failed: bool
    cancelled: list[str] = field(default_factory=list)  # SLURM job ids cancelled
    left: list[str] = field(default_factory=list)  # jobs that had not ended when the wait gave up
    plan: dict[str, Any] | None = None  # the run's plan: where its jobs are, for `settle`
    error: str | None = None


async def cancel_run(dag_id: str, run_id: str,
                     opener: Opener = open_transport) -> CancelOutcome:
    """Mark the DAG run failed through Airflow, then cancel the run's SLURM jobs and wait until they
    have ended. `settle` then sweeps again for a while, for a job queued by a task being killed."""
    from factorybench.ui import airflow_state

    state = await asyncio.to_thread(airflow_state.dag_run_state, dag_id, run_id)
    if state is None:
        return CancelOutcome(None, False, error=f"Airflow has no run {run_id!r} of {dag_id!r}")
    outcome = CancelOutcome(state.state, False, plan=state.plan)
    if state.active:
        await asyncio.to_thread(airflow_state.mark_failed, dag_id, run_id)
        outcome.marked_failed = True
        log.warning("UI cancel: DAG run %s %s marked failed (was %s)", dag_id, run_id, state.state)
    if state.plan is None:
        return outcome  # the plan task had not finished: no job can have been submitted
    try:
        cancelled, left = await _with_transport(state.plan, opener, lambda t: _sweep(
            t, state.plan, [state.service_job_id] if state.service_job_id else [], SETTLE_S))
        outcome.cancelled, outcome.left = cancelled, left
    except Exception as exc:
        outcome.error = f"cancelling the SLURM jobs failed: {type(exc).__name__}: {exc}"
        log.exception("UI cancel of %s %s", dag_id, run_id)
    return outcome


async def settle(dag_id: str, run_id: str, plan: dict[str, Any],
                 opener: Opener = open_transport,
                 quiet_s: float = 12.0, settle_s: float = SETTLE_S) -> list[str]:
    """Sweep the run's jobs until Airflow has had none of its tasks running and the queue none of
    its jobs for `quiet_s` (a killed task's sbatch may still land), or `settle_s` passed.
    Returns the jobs it cancelled."""
    from factorybench.ui import airflow_state

    poll = max(min(float(plan["cluster"].get("poll_interval_s") or 1.0), 2.0), 0.5)
    deadline, quiet_since, cancelled = time.monotonic() + settle_s, time.monotonic(), []
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_s:
        more, _ = await _with_transport(plan, opener, lambda t: _sweep(t, plan, [], deadline - time.monotonic()))
        run = await asyncio.to_thread(airflow_state.dag_run_state, dag_id, run_id)
        if more or (run is not None and run.running_tasks):
            quiet_since = time.monotonic()
        cancelled += more
        await asyncio.sleep(poll)
    if cancelled:
        log.warning("UI cancel of %s %s: later also cancelled SLURM jobs %s", dag_id, run_id, ", ".join(cancelled))
    return cancelled


async def _with_transport(plan: dict[str, Any], opener: Opener, step):
    transport = await opener(ClusterProfile.model_validate(plan["cluster"]))
    try:
        return await step(transport)
    finally:
        await transport.close()


async def _sweep(transport: Transport, plan: dict[str, Any], extra: list[str],
                 wait_s: float) -> tuple[list[str], list[str]]:
    """Cancel every job of the run the queue shows (and `extra`), each until it has ended."""
    poll = max(min(float(plan["cluster"].get("poll_interval_s") or 1.0), 2.0), 0.5)
    found = [j.job_id for j in (await transport.cluster_state()).jobs_of_run(plan["recipe"]["name"], plan["run_tag"])]
    cancelled, left = [], []
    for job_id in dict.fromkeys(found + extra):
        try:
            before, after = await cancel_and_wait(transport, job_id, poll, timeout_s=max(wait_s, 5.0))
        except SchedulerError as exc:  # still there after scancel and the wait: say so
            log.warning("job %s of run %s: %s", job_id, plan["run_id"], exc)
            left.append(job_id)
            continue
        if not before.terminal:
            cancelled.append(job_id)
        if not after.terminal:
            left.append(job_id)
    return cancelled, left
