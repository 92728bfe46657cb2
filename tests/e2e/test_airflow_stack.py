"""The real Airflow stack on loopback (scheduler, dag-processor, triggerer, API server), with
Postgres as the metadata DB, driven the way CI drives it: the REST API v2. The deferrable
sensor runs in the real triggerer here, not in-line as under dag.test()."""

from __future__ import annotations

import subprocess
import time

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(600)]


def test_trigger_smoke_dag_through_rest_api(airflow_stack):
    call = airflow_stack.call
    dag_id = "factorybench_smoke"
    airflow_stack.wait_for_dag(dag_id)
    assert call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}).ok

    bad = call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
               json={"dag_run_id": "ci-bad", "logical_date": None, "conf": {"streams": 0}})
    assert bad.status_code == 400, bad.text  # the Param schema rejects it before anything runs

    run_id = f"ci-{int(time.time())}"
    resp = call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                json={"dag_run_id": run_id, "logical_date": None, "conf": {"max_requests": 16},
                      "note": "triggered by the test suite"})
    assert resp.status_code == 200, resp.text
    deadline = time.time() + 300
    state = None
    while time.time() < deadline:
        state = call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        if state in ("success", "failed"):
            break
        time.sleep(3)
    tis = call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
    summary = {t["task_id"]: t["state"] for t in tis["task_instances"]}
    assert state == "success", summary

    logs = call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/collect_service_logs/logs/1",
                headers={"Accept": "application/json"})
    assert "factorybench-sim listening" in logs.text  # the service job's stdout is in the task log
    xcom = call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/archive/xcomEntries/return_value"
                ).json()
    assert xcom["value"]["status"] == "success" and xcom["value"]["summary"]["requests"] == 16 - 4
    # The scheduler's listener put the verdict first in the run's note and kept the trigger's note.
    note = call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["note"]
    assert note.startswith("factorybench: ") and "insufficient_data" in note and note.endswith("triggered by the test suite"), note
    from factorybench.plan import run_tag

    squeue = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
    assert run_tag(run_id) not in squeue
