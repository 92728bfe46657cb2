"""The real Airflow stack on loopback (scheduler, dag-processor, triggerer, API server), with
Postgres as the metadata DB, driven the way CI drives it: the REST API v2. The deferrable
sensor runs in the real triggerer here, not in-line as under dag.test()."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(600)]
DB = "factorybench_airflow_test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_postgres_db() -> str:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {DB}")
    conn.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{DB}"


@pytest.fixture(scope="module")
def airflow_api(native_cluster, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-stack")
    port = free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "FB_AIRFLOW_PORT": str(port),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": fresh_postgres_db(), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
           "FB_RESULTS_URL": f"sqlite:///{home}/results.db", "FB_ARCHIVE_DIR": str(home / "archive")}
    log = open(home / "standalone.log", "w")
    proc = subprocess.Popen(["bash", str(REPO / "scripts" / "airflow.sh"), "start"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        passwords = home / "simple_auth_manager_passwords.json.generated"
        while time.time() < deadline:
            assert proc.poll() is None, (home / "standalone.log").read_text()[-3000:]
            try:
                if passwords.exists() and requests.get(f"{base}/api/v2/monitor/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        else:
            pytest.fail("Airflow API did not come up in 180 s:\n" + (home / "standalone.log").read_text()[-3000:])
        password = json.loads(passwords.read_text())["admin"]
        token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password},
                              timeout=10).json()["access_token"]
        yield base, {"Authorization": f"Bearer {token}"}, home
    finally:
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def call(method, url, headers, **kw):
    """Retry 5xx with backoff: the API can answer 500 on a transient DB lock."""
    for attempt in range(5):
        resp = requests.request(method, url, headers=headers, timeout=30, **kw)
        if resp.status_code < 500:
            return resp
        time.sleep(2 ** attempt)
    return resp


def test_trigger_smoke_dag_through_rest_api(airflow_api):
    base, headers, home = airflow_api
    dag_id = "factorybench_smoke"
    deadline = time.time() + 120
    while call("GET", f"{base}/api/v2/dags/{dag_id}", headers).status_code != 200:
        assert time.time() < deadline, "the DAG processor never registered the smoke DAG"
        time.sleep(2)
    assert call("PATCH", f"{base}/api/v2/dags/{dag_id}", headers, json={"is_paused": False}).ok

    bad = call("POST", f"{base}/api/v2/dags/{dag_id}/dagRuns", headers,
               json={"dag_run_id": "ci-bad", "logical_date": None, "conf": {"streams": 0}})
    assert bad.status_code == 400, bad.text  # the Param schema rejects it before anything runs

    run_id = f"ci-{int(time.time())}"
    resp = call("POST", f"{base}/api/v2/dags/{dag_id}/dagRuns", headers,
                json={"dag_run_id": run_id, "logical_date": None, "conf": {"max_requests": 16},
                      "note": "triggered by the test suite"})
    assert resp.status_code == 200, resp.text
    deadline = time.time() + 300
    state = None
    while time.time() < deadline:
        state = call("GET", f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers).json()["state"]
        if state in ("success", "failed"):
            break
        time.sleep(3)
    tis = call("GET", f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", headers).json()
    summary = {t["task_id"]: t["state"] for t in tis["task_instances"]}
    assert state == "success", summary

    logs = call("GET", f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/collect_service_logs/logs/1",
                {**headers, "Accept": "application/json"})
    assert "factorybench-sim listening" in logs.text  # the service job's stdout is in the task log
    xcom = call("GET", f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value",
                headers).json()
    assert xcom["value"]["status"] == "success" and xcom["value"]["summary"]["requests"] == 16 - 4
    squeue = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
    assert "fb-smoke-" not in squeue
