"""The bodies of the DAG's Python tasks: each calls one core step and logs what it saw."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseOperator, get_current_context
from airflow.sdk.exceptions import AirflowException

from factorybench import pipeline
from factorybench.airflow.connections import with_transport
from factorybench.errors import FactorybenchError
from factorybench.pipeline import Plan
from factorybench.recipe import load_recipe
from factorybench.results import archive as archive_store
from factorybench.slurm.job import JobInfo

log = logging.getLogger("factorybench.tasks")


def plan(recipe_path: str) -> dict[str, Any]:
    from factorybench.airflow.dag_factory import overrides_from

    ctx = get_current_context()
    overrides = overrides_from(ctx["params"], load_recipe(recipe_path))
    if overrides:
        log.info("Run overrides: %s", overrides)
    try:
        return pipeline.plan_run(recipe_path, ctx["run_id"], overrides).to_dict()
    except FactorybenchError as exc:
        raise AirflowException(str(exc)) from exc


def discover_endpoint(plan_d: dict, job: dict, job_id: str) -> dict[str, Any]:
    p = Plan.from_dict(plan_d)
    return with_transport(p.cluster_model(), lambda t: pipeline.find_endpoint(p, JobInfo.from_dict(job), t))


class RunLoadOperator(BaseOperator):
    """Run the client benchmark against the endpoint; cancel the service if killed."""

    template_fields = ("plan", "endpoint", "job_id")
    ui_color = "#d9f7d6"

    def __init__(self, *, plan: Any, endpoint: Any, job_id: Any, **kwargs):
        super().__init__(**kwargs)
        self.plan = plan
        self.endpoint = endpoint
        self.job_id = job_id

    def execute(self, context) -> dict[str, Any]:
        p = Plan.from_dict(self.plan)
        out_dir = pipeline.archive_dir(p)
        if p.recipe_model().client.where == "slurm":
            return with_transport(p.cluster_model(), lambda t: pipeline.run_client_job(p, self.endpoint, t, out_dir))
        try:
            return pipeline.run_client(p, self.endpoint, out_dir)
        except FactorybenchError as exc:
            raise AirflowException(str(exc)) from exc

    def on_kill(self) -> None:
        if self.job_id and isinstance(self.plan, dict):
            p = Plan.from_dict(self.plan)
            self.log.warning("Killed: cancelling service job %s", self.job_id)
            with_transport(p.cluster_model(), lambda t: t.cancel(str(self.job_id)))


def collect_logs(plan_d: dict, job_id: str | None) -> dict[str, Any] | None:
    if not job_id:
        return None
    p = Plan.from_dict(plan_d)
    out = with_transport(p.cluster_model(), lambda t: t.output(job_id, p.spec_model()))
    print(f"===== service job {job_id} stdout ({out.stdout_path}) =====\n{out.stdout}")
    print(f"===== service job {job_id} stderr ({out.stderr_path}) =====\n{out.stderr}")
    archive_store.write_files(pipeline.archive_dir(p), {"service.out": out.stdout, "service.err": out.stderr})
    return {"stdout_path": out.stdout_path, "stderr_path": out.stderr_path,
            "stdout_bytes": len(out.stdout), "stderr_bytes": len(out.stderr)}


def archive(plan_d: dict, job_id: str | None, endpoint: dict | None, summary: dict | None,
            stopped: dict | None) -> dict[str, Any]:
    ctx = get_current_context()
    p = Plan.from_dict(plan_d)
    job = JobInfo.from_dict(stopped["after"]) if stopped else None
    before = JobInfo.from_dict(stopped["before"]) if stopped else None
    status, message = pipeline.judge(summary, before)
    result = pipeline.archive_run(p, ctx["dag"].dag_id, job_id, job, endpoint, summary, status, message)
    log.info("Archived run %s as %s in %s", result["db_id"], status, result["archive"])
    return result


def report(archived: dict[str, Any]) -> dict[str, Any]:
    print(pipeline.format_report(archived))
    if archived["status"] != "success":
        raise AirflowException(f"benchmark {archived['status']}: {archived['message']}")
    return archived
