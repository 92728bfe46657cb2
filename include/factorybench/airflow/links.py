"""Operator extra links: from a run's `check` task to its benchmark report in the factorybench UI."""

from __future__ import annotations

from urllib.parse import quote

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseOperatorLink

UI_PREFIX = "/factorybench"


def report_path(dag_id: str, run_id: str) -> str:
    """Where the factorybench UI serves a DAG run's HTML report (relative to Airflow's base URL)."""
    return f"{UI_PREFIX}/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/report"


class ReportLink(BaseOperatorLink):
    name = "Benchmark report"

    def get_link(self, operator, *, ti_key) -> str:
        return report_path(ti_key.dag_id, ti_key.run_id)


class CheckOperator(PythonOperator):
    """The DAG's last task (it judges the run); its extra link opens the run's report."""

    operator_extra_links = (ReportLink(),)
