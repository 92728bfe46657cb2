"""What the UI asks Airflow itself, in the API server's process: a DAG run's state, its tasks'
states and its plan (the `plan` task's XCom), and marking a run failed exactly as Airflow's own
`PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id} {"state": "failed"}` does (running tasks are
killed; listeners fire). The only module of the UI that touches Airflow's models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ACTIVE = ("queued", "running")


@dataclass
class DagRunState:
    dag_id: str
    run_id: str
    state: str  # queued | running | success | failed
    start_date: datetime | None
    end_date: datetime | None
    conf: dict[str, Any]
    tasks: dict[str, str | None] = field(default_factory=dict)  # task id -> state, as they started
    plan: dict[str, Any] | None = None  # the run's Plan (factorybench.plan) once the plan task ran
    service_job_id: str | None = None  # submit_service's return value

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def running_tasks(self) -> list[str]:
        return [t for t, s in self.tasks.items() if s in ("running", "deferred", "queued", "scheduled", "up_for_retry")]

    @property
    def failed_tasks(self) -> list[str]:
        return [t for t, s in self.tasks.items() if s in ("failed", "upstream_failed")]


def dag_run_state(dag_id: str, run_id: str) -> DagRunState | None:
    """The DAG run as Airflow's metadata database has it, or None if there is no such run."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session(scoped=False) as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            return None
        tis = session.execute(select(TaskInstance.task_id, TaskInstance.state, TaskInstance.start_date)
                              .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all()
        xcoms = {row.task_id: XComModel.deserialize_value(row) for row in session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id,
                                    XComModel.key == "return_value", XComModel.map_index == -1,
                                    XComModel.task_id.in_(("plan", "submit_service"))))}
        ordered = sorted(tis, key=lambda t: (t.start_date is None, t.start_date.timestamp() if t.start_date else 0))
        return DagRunState(dag_id=dag_id, run_id=run_id, state=str(run.state), start_date=run.start_date,
                           end_date=run.end_date, conf=dict(run.conf or {}),
                           tasks={t.task_id: (str(t.state) if t.state else None) for t in ordered},
                           plan=xcoms.get("plan") if isinstance(xcoms.get("plan"), dict) else None,
                           service_job_id=str(xcoms["submit_service"]) if xcoms.get("submit_service") else None)


def mark_failed(dag_id: str, run_id: str) -> str:
    """Set the run's state to failed through Airflow's own service (its running tasks are killed
    and their on_kill runs; the DAG run listeners fire). Returns the state the run had."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import DagRunMutableStates
    from airflow.api_fastapi.core_api.services.public.dag_run import patch_dag_run_state
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session(scoped=False) as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            raise LookupError(f"Airflow has no run {run_id!r} of DAG {dag_id!r}")
        before = str(run.state)
        dag = DBDagBag().get_dag_for_run(run, session=session)
        if dag is None:
            raise LookupError(f"Airflow has no serialized DAG {dag_id!r} for run {run_id!r}")
        patch_dag_run_state(dag=dag, dag_run=run, state=DagRunMutableStates.FAILED, session=session)
        return before


def running_runs(dag_ids: list[str]) -> list[tuple[str, str]]:
    """(dag_id, run_id) of the given DAGs' queued and running runs: to name the jobs in a queue."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if not dag_ids:
        return []
    with create_session(scoped=False) as session:
        return [(d, r) for d, r in session.execute(select(DagRun.dag_id, DagRun.run_id).where(
            DagRun.dag_id.in_(dag_ids), DagRun.state.in_(ACTIVE)))]
