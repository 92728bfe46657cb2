"""Airflow operators and the deferrable sensor: thin adapters over the core transports.

Each reads as a story: validate → submit → defer → execute_complete. Core errors are
translated to Airflow exceptions here and nowhere else.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowException

from factorybench.plan import Plan
from factorybench.slurm.job import JobInfo, JobState


def with_transport(cluster, step):
    """connections.with_transport, imported when a task runs: the SSH provider and the transports
    are not needed to parse DAGs."""
    from factorybench.airflow.connections import with_transport as run

    return run(cluster, step)


class SlurmSubmitOperator(BaseOperator):
    """Submit the plan's job spec; return the job id (pushed to XCom)."""

    template_fields = ("plan",)
    ui_color = "#d6e9ff"

    def __init__(self, *, plan: Any, **kwargs):
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context) -> str:
        plan = Plan.from_dict(self.plan)
        spec = plan.spec_model()
        self.log.info("Batch script for %s:\n%s", spec.name, spec.script)
        refs = plan.recipe_model().service.secrets
        values = None
        if refs:  # resolved now, never earlier: the plan and XCom carry only the references
            from factorybench.airflow.connections import resolve_secrets

            values = resolve_secrets(refs)
            self.log.info("Secrets passed in the job's environment (masked, not in the script): %s",
                          ", ".join(f"{name} from {ref.describe()}" for name, ref in refs.items()))
        job_id = with_transport(plan.cluster_model(), lambda t: t.submit(spec, secrets=values))
        self.log.info("Submitted %s as SLURM job %s via %s", spec.name, job_id, plan.cluster["transport"])
        return job_id


class SlurmJobSensor(BaseSensorOperator):
    """Wait for a job to reach RUNNING (or a terminal state) without holding a worker slot.

    Fails fast, with SLURM's own state and reason, when the job ends or is cancelled
    first, or when the pending policy gives up on it.
    """

    template_fields = ("plan", "job_id")
    ui_color = "#fff3c4"

    def __init__(self, *, plan: Any, job_id: Any, target: str = "running",
                 max_wait: timedelta = timedelta(hours=12), **kwargs):
        super().__init__(**kwargs)
        self.plan = plan
        self.job_id = job_id
        self.target = target
        self.max_wait = max_wait

    def execute(self, context) -> dict:
        from factorybench.airflow.triggers import SlurmJobTrigger

        plan = Plan.from_dict(self.plan)
        cluster = plan.cluster_model()
        self.defer(trigger=SlurmJobTrigger(cluster=plan.cluster, job_id=str(self.job_id), target=self.target,
                                           poll_interval=cluster.poll_interval_s),
                   method_name="execute_complete", timeout=self.max_wait)

    def poke(self, context) -> bool:  # required by the base class; execute() always defers
        raise NotImplementedError("SlurmJobSensor always defers")

    def execute_complete(self, context, event: dict[str, Any]) -> dict:
        status, message = event.get("status"), event.get("message", "")
        if status == "running" or (status == "ended" and self.target == "terminal"):
            info = JobInfo.from_dict(event["job"])
            if self.target == "terminal" and info.state is not JobState.COMPLETED:
                raise AirflowException(f"SLURM job failed: {message}")
            self.log.info("%s", message)
            return event["job"]
        if status == "ended":
            raise AirflowException(f"SLURM job ended before it started serving: {message}")
        if status == "blocked":
            raise AirflowException(f"SLURM job cancelled by the pending policy: {message}")
        raise AirflowException(f"waiting for SLURM job {self.job_id} failed: {message}")


class SlurmCancelOperator(BaseOperator):
    """Cancel the job on every path: the DAG's teardown."""

    template_fields = ("plan", "job_id")
    ui_color = "#ffd6d6"

    def __init__(self, *, plan: Any, job_id: Any, **kwargs):
        super().__init__(**kwargs)
        self.plan = plan
        self.job_id = job_id

    def execute(self, context) -> dict | None:
        if not self.job_id or self.job_id == "None":
            self.log.info("No job was submitted: nothing to cancel")
            return None
        from factorybench.slurm.transport import cancel_and_wait

        plan = Plan.from_dict(self.plan)
        job_id = str(self.job_id)
        poll = plan.cluster_model().poll_interval_s
        before, after = with_transport(plan.cluster_model(), lambda t: cancel_and_wait(t, job_id, poll))
        self.log.info("Before teardown: %s. After: %s", before.describe(), after.describe())
        return {"before": before.to_dict(), "after": after.to_dict()}
