"""The production executor, tested: scripts/airflow.sh's celery layout (Redis broker, Postgres for the
metadata and results DBs, api-server, scheduler, dag-processor, triggerer and two Celery workers as
separate processes) runs 10 smoke DAG runs at once; every run is archived through the one read API,
both workers ran tasks, and no job is left in squeue."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from devstack import Stack, celery_stack

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(900)]
RECIPE = "celery-smoke"
DAG = "factorybench_celery_smoke"
RUNS = 10


@pytest.fixture(scope="module")
def stack(native_cluster, tmp_path_factory) -> Stack:
    with celery_stack(tmp_path_factory.mktemp("celery-stack"), RECIPE, RUNS, 2, "factorybench_celery_test") as stack:
        yield stack


def squeue_names() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=True).stdout.split()


def test_ten_concurrent_smoke_runs_across_two_workers(stack):
    from factorybench.plan import run_tag
    from factorybench.results.query import Results

    stack.wait_for_dag(DAG, timeout=180)
    assert stack.call("PATCH", f"/api/v2/dags/{DAG}", json={"is_paused": False}).ok
    stamp = int(time.time())
    run_ids = [f"celery-{stamp}-{i}" for i in range(RUNS)]
    for run_id in run_ids:
        resp = stack.call("POST", f"/api/v2/dags/{DAG}/dagRuns",
                          json={"dag_run_id": run_id, "logical_date": None, "conf": {"max_requests": 8}})
        assert resp.status_code == 200, resp.text
    deadline = time.time() + 780
    states: dict[str, str] = {}
    while time.time() < deadline:
        states = {r: stack.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{r}").json()["state"] for r in run_ids}
        if all(s in ("success", "failed") for s in states.values()):
            break
        time.sleep(5)
    assert set(states.values()) == {"success"}, states
    rows = {row.dag_run_id: row for row in Results(stack.env["FB_RESULTS_URL"]).runs(RECIPE, limit=50)}
    assert set(run_ids) <= set(rows), sorted(rows)
    assert all(rows[r].status == "success" and rows[r].metrics["requests"] == 8 - 4 for r in run_ids)
    assert all(Path(rows[r].archive_url, "manifest.json").exists() for r in run_ids)
    tags = {run_tag(r) for r in run_ids}
    assert not [n for n in squeue_names() if n.startswith(f"fb-{RECIPE}-") and n.rsplit("-", 1)[-1] in tags]
    received = {w: (stack.home / f"{w}.log").read_text().count("execute_workload") for w in ("worker-1", "worker-2")}
    assert all(received.values()), received
    pools = stack.call("GET", "/api/v2/pools/factorybench_meluxina").json()
    assert pools["slots"] == 8 and pools["include_deferred"] is True
