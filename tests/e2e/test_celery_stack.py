"""The production executor, tested: scripts/airflow.sh's celery layout (Redis broker, Postgres for the
metadata and results DBs, api-server, scheduler, dag-processor, triggerer and two Celery workers as
separate processes) runs 10 smoke DAG runs at once; every run is archived through the one read API,
both workers ran tasks, and no job is left in squeue."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml
from devstack import REPO, Stack, airflow_sh, free_ports, fresh_postgres_db

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(900)]
RECIPE = "celery-smoke"
DAG = "factorybench_celery_smoke"
RUNS = 10


@pytest.fixture(scope="module")
def celery_stack(native_cluster, tmp_path_factory) -> Stack:
    home = tmp_path_factory.mktemp("celery-stack")
    recipes = home / "recipes"
    recipes.mkdir()
    smoke = yaml.safe_load((REPO / "recipes" / "smoke.yaml").read_text())
    smoke.update(name=RECIPE, max_active_runs=RUNS)
    # Ten clients, ten simulators and Airflow on 2 cores: the client guard rightly calls such
    # measurements invalid (event-loop lag). This measures the orchestration, so the guard only
    # stops a client that is not running at all.
    smoke["client"]["guard"] = {"max_loop_lag_p99_ms": 5000, "max_lateness_p99_ms": 5000, "max_cpu_fraction": 1.0}
    (recipes / f"{RECIPE}.yaml").write_text(yaml.safe_dump(smoke))
    port_base = free_ports(4)
    settings = {"FB_EXECUTOR": "celery", "FB_CELERY_WORKERS": "2", "FB_LOG_PORT": str(port_base),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": fresh_postgres_db("factorybench_celery_test"),
                "FB_RESULTS_URL": fresh_postgres_db("factorybench_celery_results"),
                "FB_ARCHIVE_URL": str(home / "archive"), "FB_RECIPES_DIR": str(recipes),
                # A queue of its own: another stack on the same broker never takes these tasks.
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"fb-test-{port_base}"}
    with airflow_sh(home, settings, timeout_s=240) as stack:
        yield stack


def squeue_names() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=True).stdout.split()


def test_ten_concurrent_smoke_runs_across_two_workers(celery_stack):
    from factorybench.plan import run_tag
    from factorybench.results.query import Results

    stack = celery_stack
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
