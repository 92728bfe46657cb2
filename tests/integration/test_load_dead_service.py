"""A service job that dies under load: the smoke DAG on the real dev cluster, scancel while the load runs.

The load must stop within seconds (not run on for its 60 s against a dead port), keep and archive
what it measured, fail with the job's SLURM state in the message, and leave no job behind.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def dagbag(native_cluster, airflow_db):
    from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def smoke_jobs(prefix: str = "fb-smoke-", state: str | None = None) -> list[tuple[str, str]]:
    argv = ["squeue", "-h", "-o", "%i %j"] + (["-t", state] if state else [])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [(i, name) for i, name in (line.split() for line in out.splitlines()) if name.startswith(prefix)]


def smoke_run_ids() -> set[str]:
    """Run ids in this test's own Airflow metadata DB: nobody else's runs are there."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id for r in session.query(DagRun).filter(DagRun.dag_id == "factorybench_smoke")}


def test_scancel_during_the_load_stops_it_within_seconds(dagbag, capfd, caplog):
    from factorybench.plan import run_tag
    from factorybench.results.query import Results

    before = smoke_run_ids()
    cancelled: list[tuple[str, datetime]] = []

    def cancel_while_loading() -> None:
        """scancel this run's service job (found by its run tag, never another run's) once it serves."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            new = smoke_run_ids() - before
            running = smoke_jobs(f"fb-smoke-svc-{run_tag(new.pop())}", "R") if new else []
            if running:
                time.sleep(8)  # ready within about a second, then the 60 s load is well under way
                cancelled.append((running[0][0], datetime.now(timezone.utc)))
                subprocess.run(["scancel", running[0][0]], check=True)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=cancel_while_loading)
    thread.start()
    try:
        run = dagbag.dags["factorybench_smoke"].test(
            run_conf={"transport": "ssh", "duration_s": 60, "max_requests": None})
    finally:
        thread.join()
    assert cancelled, "the service job never ran"
    job_id, at = cancelled[0]
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert str(run.state) == "failed"
    assert str(tis["run_load"].state) == "failed"
    assert (tis["run_load"].end_date - at).total_seconds() < 10, "the load ran on against a dead service"
    assert str(tis["stop_service"].state) == "success" and str(tis["archive"].state) == "success"

    out, err = capfd.readouterr()
    out += caplog.text  # structlog may hold a stream capfd does not see; records reach caplog
    assert "load stopped early: " in out + err
    assert f"job {job_id} is CANCELLED" in out + err  # SLURM's own words for the job's state

    row = Results().runs("smoke", limit=1)[0]
    assert row.dag_run_id == run.run_id and row.status == "failed" and "CANCELLED" in row.message
    archive = Path(row.archive_url)
    summary = json.loads((archive / "load" / "summary.json").read_text())["summary"]
    assert summary["aborted"] and summary["requests"] > 20  # what it measured before the scancel is kept
    assert summary["errors"] + summary["aborted_requests"] < 20  # few requests went to the dead service
    assert (archive / "load" / "samples.parquet").exists()
    tag = run_tag(run.run_id)
    assert not [name for _, name in smoke_jobs() if name.endswith(tag)], "the run left a job behind"
