"""The bodies of the DAG's Python tasks: each calls one core step and logs what it saw.

The core (`factorybench.pipeline`) is imported inside each task, when it runs: DAG parsing
imports this module only to name the callables.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseOperator, get_current_context
from airflow.sdk.exceptions import AirflowException

from factorybench.airflow.operators import with_transport
from factorybench.errors import FactorybenchError
from factorybench.plan import Plan

log = logging.getLogger("factorybench.tasks")


def plan(recipe_path: str) -> dict[str, Any]:
    from factorybench import pipeline
    from factorybench.provenance import trigger_kind

    ctx = get_current_context()
    dag_run = ctx["dag_run"]
    conf = dict(dag_run.conf or {})
    trigger = trigger_kind(getattr(dag_run, "run_type", None), ctx["run_id"], conf)
    try:
        return pipeline.plan_run(recipe_path, ctx["dag"].dag_id, ctx["run_id"], {**ctx["params"], **conf},
                                 trigger=trigger, triggered_by=getattr(dag_run, "triggering_user_name", None)
                                 ).to_dict()
    except FactorybenchError as exc:
        raise AirflowException(str(exc)) from exc


def discover_endpoint(plan_d: dict, job: dict, job_id: str) -> dict[str, Any]:
    from factorybench import pipeline
    from factorybench.slurm.job import JobInfo

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
        from factorybench import pipeline

        p = Plan.from_dict(self.plan)
        job_id = str(self.job_id)
        run = pipeline.run_client_job if p.recipe_model().client.where == "slurm" else pipeline.run_client
        try:
            return with_transport(p.cluster_model(), lambda t: run(p, self.endpoint, t, job_id))
        except Exception as exc:
            pipeline.record_failure(p, exc)
            raise

    def on_kill(self) -> None:
        if self.job_id and isinstance(self.plan, dict):
            p = Plan.from_dict(self.plan)
            self.log.warning("Killed: cancelling service job %s", self.job_id)
            with_transport(p.cluster_model(), lambda t: t.cancel(str(self.job_id)))


def collect_logs(plan_d: dict, job_id: str | None) -> dict[str, Any] | None:
    from factorybench import pipeline

    if not job_id:
        return None
    p = Plan.from_dict(plan_d)
    out = with_transport(p.cluster_model(), lambda t: pipeline.collect_logs(p, job_id, t))
    print(f"===== service job {job_id} stdout ({out.stdout_path}) =====\n{out.stdout}")
    print(f"===== service job {job_id} stderr ({out.stderr_path}) =====\n{out.stderr}")
    return {"stdout_path": out.stdout_path, "stderr_path": out.stderr_path,
            "stdout_bytes": len(out.stdout), "stderr_bytes": len(out.stderr)}


def judge(plan_d: dict, job_id: str | None, summary: dict | None, stopped: dict | None) -> dict[str, Any]:
    from factorybench import pipeline

    judged = pipeline.judge(Plan.from_dict(plan_d), summary, stopped, job_id)
    log.info("Run %s%s", judged["status"], f": {judged['message']}" if judged["message"] else "")
    if judged.get("verdict_line"):
        log.info("Verdict: %s", judged["verdict_line"])
    return judged


def archive(plan_d: dict, job_id: str | None, endpoint: dict | None, summary: dict | None,
            stopped: dict | None, judged: dict) -> dict[str, Any]:
    from factorybench import pipeline

    result = pipeline.archive_run(Plan.from_dict(plan_d), job_id, endpoint, summary, stopped, judged)
    log.info("Archived run %s as %s in %s", result["db_id"], result["status"], result["archive"])
    return result


def check(archived: dict[str, Any]) -> dict[str, Any]:
    """The DAG's verdict: fails on a failed or invalid run, and when the recipe's checks say so
    (a regression of a primary metric, by default). The message names each failing metric with
    its baseline, delta, p-value and the run where the change began."""
    from factorybench import pipeline

    print(pipeline.format_report(archived))
    if archived["status"] != "success":
        raise AirflowException(f"benchmark {archived['status']}: {archived['message']}")
    if archived.get("failed"):
        raise AirflowException(f"{archived['verdict_line']}\n" + "\n".join(archived.get("failing") or []))
    return archived
