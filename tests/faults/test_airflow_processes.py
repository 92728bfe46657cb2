"""Faults of Airflow's own processes, on the real stack (not dag.test()):

- the triggerer is killed while a sensor is deferred, and a new one resumes the trigger;
- `scripts/airflow.sh stop` (what `make down` runs) leaves no process of the group it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from devstack import free_port, fresh_postgres_db
from faultkit import REPO, blocker, recipe_copy, record, squeue

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(900)]
DB = "factorybench_faults_airflow"


def group_alive(pgid: int) -> list[str]:
    """The live (not zombie) processes of a process group, as `pid stat command` lines."""
    out = subprocess.run(["ps", "-e", "-o", "pgid=,pid=,stat=,args="], capture_output=True, text=True).stdout
    return [line.split(None, 1)[1] for line in out.splitlines()
            if line.split()[0] == str(pgid) and not line.split()[2].startswith("Z")]


def stop_group(pgid: int, grace_s: float = 20) -> None:
    """INT, TERM, then KILL a process group we started, waiting for it to go."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + grace_s
        while time.time() < deadline and group_alive(pgid):
            time.sleep(0.3)
        if not group_alive(pgid):
            return


class Stack:
    """Airflow's components as separate processes (each its own process group), on Postgres."""

    def __init__(self, home: Path, recipes: Path):
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": fresh_postgres_db(DB),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # loopback only, a throwaway stack
            "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(self.port), "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # How long a silent triggerer keeps its triggers before another may take them (default 30).
            "AIRFLOW__SCHEDULER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
            "FB_RECIPES_DIR": str(recipes), "FB_RESULTS_URL": f"sqlite:///{home}/results.db",
            "FB_ARCHIVE_URL": str(home / "archive"),
        }
        self.procs: dict[str, subprocess.Popen] = {}

    def airflow(self, *args: str, timeout: float = 300) -> None:
        proc = subprocess.run(["airflow", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    def start(self, component: str, tag: str | None = None) -> subprocess.Popen:
        log = open(self.home / f"{tag or component}.log", "w")
        proc = subprocess.Popen(["airflow", component], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[tag or component] = proc
        return proc

    def log(self, tag: str) -> str:
        return (self.home / f"{tag}.log").read_text(errors="replace")

    def get(self, path: str) -> requests.Response:
        for attempt in range(6):
            try:
                resp = requests.get(self.base + path, timeout=30)
                if resp.status_code < 500:
                    return resp
            except requests.RequestException:
                pass
            time.sleep(min(2 ** attempt, 10))
        return requests.get(self.base + path, timeout=30)

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(self.base + path, json=body, timeout=30)

    def wait(self, what: str, check, timeout_s: float) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            for name, proc in self.procs.items():
                assert proc.poll() is None or name.startswith("triggerer"), f"{name} died:\n{self.log(name)[-3000:]}"
            try:
                if check():
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}:\n"
                             + "\n".join(f"--- {n}\n{self.log(n)[-1500:]}" for n in self.procs))

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_group(proc.pid)


@pytest.fixture
def stack(native_cluster, tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    recipe_copy(recipes, "fault-triggerer", lambda data: None)
    s = Stack(tmp_path / "airflow", recipes)
    s.home.mkdir()
    s.airflow("db", "migrate")
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        s.start(component)
    try:
        s.wait("the API", lambda: s.get("/api/v2/monitor/health").ok, 180)
        yield s
    finally:
        s.stop()


def task_states(stack: Stack, dag_id: str, run_id: str) -> dict[str, dict]:
    body = stack.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
    return {t["task_id"]: t for t in body.get("task_instances", [])}


def trigger_logs(stack: Stack, run_id: str) -> dict[str, str]:
    """The sensor's trigger log files ({task log}.trigger.{triggerer job id}.log) and their text."""
    return {p.name: p.read_text(errors="replace")
            for p in stack.home.glob(f"logs/dag_id=*/run_id={run_id}/task_id=wait_service_running/*.trigger.*.log")}


def test_triggerer_killed_while_a_sensor_is_deferred_is_resumed(stack):
    dag_id = "factorybench_fault_triggerer"
    stack.wait("the DAG to be parsed", lambda: stack.get(f"/api/v2/dags/{dag_id}").status_code == 200, 180)
    run_id = f"fault-triggerer-{int(time.time())}"
    with blocker(minutes=10) as hold:
        resp = stack.post(f"/api/v2/dags/{dag_id}/dagRuns",
                          {"dag_run_id": run_id, "logical_date": None, "conf": {"max_requests": 12}})
        assert resp.status_code == 200, resp.text
        stack.wait("the sensor to defer", lambda: task_states(stack, dag_id, run_id)
                   .get("wait_service_running", {}).get("state") == "deferred", 240)
        stack.wait("the triggerer to poll the pending job", lambda: any(
            "is PENDING" in text for text in trigger_logs(stack, run_id).values()), 120)
        first = set(trigger_logs(stack, run_id))
        old = stack.procs["triggerer"]
        os.killpg(old.pid, signal.SIGKILL)
        killed_at = time.time()
        old.wait(30)
        time.sleep(3)
        stack.start("triggerer", "triggerer-2")
        restarted_at = time.time()
        time.sleep(5)  # the job still pends: the new triggerer must have taken the trigger over to see it start
        subprocess.run(["scancel", hold], check=True)
        released_at = time.time()
        stack.wait("the run to finish", lambda: stack.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
                   ["state"] in ("success", "failed"), 420)
    state = stack.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
    tis = task_states(stack, dag_id, run_id)
    assert state == "success", {k: v["state"] for k, v in tis.items()}
    # Each triggerer writes the trigger's log to a file named after its job id: the second one fired.
    logs = trigger_logs(stack, run_id)
    resumed = {name: text for name, text in logs.items() if name not in first}
    assert resumed and any("Trigger fired event" in text for text in resumed.values()), sorted(logs)
    assert not [j for j in squeue() if j[1].startswith("fb-fault-triggerer-") and j[2] in ("PENDING", "RUNNING")]
    from datetime import datetime

    sensor_end = datetime.fromisoformat(tis["wait_service_running"]["end_date"].replace("Z", "+00:00")).timestamp()
    record("triggerer_killed_while_deferred", outcome="success", triggerer_down_s=round(restarted_at - killed_at, 1),
           sensor_done_after_release_s=round(sensor_end - released_at, 1),
           health_check_threshold_s=15)


def test_airflow_sh_stop_leaves_no_process_of_its_group(native_cluster, tmp_path):
    """What `make down` runs: INT, then TERM, then KILL to the group `make airflow` started; the pid
    file goes only once the group is gone."""
    home = tmp_path / "ui"
    port = free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "FB_AIRFLOW_PORT": str(port),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
           "FB_RESULTS_URL": f"sqlite:///{tmp_path}/results.db", "FB_ARCHIVE_URL": str(tmp_path / "archive")}
    log = open(tmp_path / "start.log", "w")
    starter = subprocess.Popen(["bash", str(REPO / "scripts" / "airflow.sh"), "start"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    pidfile = home / "standalone.pid"
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            assert starter.poll() is None, (tmp_path / "start.log").read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        else:
            pytest.fail("Airflow did not come up:\n" + (tmp_path / "start.log").read_text()[-3000:])
        pgid = int(pidfile.read_text())
        members = group_alive(pgid)
        assert len(members) >= 4, members  # standalone and its components
        started = time.time()
        stop = subprocess.run(["bash", str(REPO / "scripts" / "airflow.sh"), "stop"], env=env, capture_output=True,
                              text=True, timeout=120)
        took = time.time() - started
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert group_alive(pgid) == [], f"left behind: {group_alive(pgid)}\n{stop.stdout}"
        assert not pidfile.exists()
        starter.wait(30)  # the foreground script ends with the group
        print(stop.stdout)
        record("make_down", outcome="stopped", processes=len(members), stop_s=round(took, 1),
               signals=" ".join(line.split()[1] for line in stop.stdout.splitlines() if line.startswith("Airflow: SIG")))
    finally:
        if pidfile.exists():
            stop_group(int(pidfile.read_text()))
        stop_group(starter.pid)
        log.close()


def test_stop_escalates_when_interrupt_is_ignored(tmp_path):
    """A group that ignores SIGINT and SIGTERM still goes (SIGKILL), and only then is the pid file removed."""
    home = tmp_path / "ui"
    home.mkdir()
    stubborn = subprocess.Popen(["bash", "-c", "trap '' INT TERM; sleep 300 & sleep 300 & wait"],
                                start_new_session=True)
    time.sleep(0.5)
    (home / "standalone.pid").write_text(f"{stubborn.pid}\n")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "FB_STOP_GRACE_S": "2"}
    started = time.time()
    stop = subprocess.run(["bash", str(REPO / "scripts" / "airflow.sh"), "stop"], env=env, capture_output=True,
                          text=True, timeout=120)
    stubborn.wait(5)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert [line.split()[1] for line in stop.stdout.splitlines() if line.startswith("Airflow: SIG")] == \
        ["SIGINT", "SIGTERM", "SIGKILL"], stop.stdout
    assert group_alive(stubborn.pid) == [] and not (home / "standalone.pid").exists()
    assert time.time() - started < 30
