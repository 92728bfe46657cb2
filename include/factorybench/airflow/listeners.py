"""Airflow listeners: when a factorybench DAG run ends, its note carries the run's verdict line.

They run where Airflow decides a run's state (the scheduler, or the process of `dag.test()`), which
has the metadata database; tasks in Airflow 3 do not, so a task cannot write the note itself. The
verdict is read through the results read API, never from the task's XCom.
"""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl
from sqlalchemy import inspect

log = logging.getLogger("factorybench.listeners")
PREFIX = "factorybench: "
_NOTE_MAX = 1000  # Airflow's dag_run_note.content


def note_for(dag_id: str, run_id: str) -> str | None:
    """`factorybench: <status>: <verdict line or message>` for an archived run, else None."""
    from factorybench.results.query import Results

    detail = Results().run_by_dag_run(dag_id, run_id)
    if detail is None:
        return None
    run = detail.run
    text = run.verdict_line if run.status == "success" and run.verdict_line else f"{run.status}: {run.message}"
    return f"{PREFIX}{text}"


def merged_note(existing: str | None, line: str) -> str:
    """The verdict line first, then whatever the trigger wrote (a re-run replaces its own line)."""
    kept = [ln for ln in (existing or "").splitlines() if not ln.startswith(PREFIX)]
    return "\n".join([line, *kept])[:_NOTE_MAX]


def _annotate(dag_run) -> None:
    if not dag_run.dag_id.startswith("factorybench_"):
        return
    try:
        line = note_for(dag_run.dag_id, dag_run.run_id)
        if line is None:
            return
        if inspect(dag_run).session is not None:  # the scheduler's own, still open: write through it
            dag_run.note = merged_note(dag_run.note, line)
            return
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:  # dag.test() hands over a detached run
            attached = session.query(DagRun).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).one()
            attached.note = merged_note(attached.note, line)
    except Exception:  # a listener must never break the scheduler
        log.exception("could not set the verdict note of %s %s", dag_run.dag_id, dag_run.run_id)


@hookimpl
def on_dag_run_success(dag_run, msg: str):
    _annotate(dag_run)


@hookimpl
def on_dag_run_failed(dag_run, msg: str):
    _annotate(dag_run)
