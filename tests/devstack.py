"""The real Airflow stack on loopback, started by scripts/airflow.sh exactly as `make airflow` starts it:
shared by the end-to-end tests, the fault tests and the benchmarks that drive it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> int:
    """A base port with the next n-1 free too (the log servers of Celery workers and the triggerer)."""
    for _ in range(50):
        base = free_port()
        if base + n < 65536 and all(_bindable(base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no {n} consecutive free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def fresh_postgres_db(name: str) -> str:
    """An empty database `name` on the local PostgreSQL (dropped first if it exists), as a URL."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


@dataclass
class Stack:
    base: str
    headers: dict[str, str]
    home: Path
    env: dict[str, str]  # what every component (and a CLI beside them) sees
    user: str
    password: str

    def call(self, method: str, path: str, **kw) -> requests.Response:
        """Retry 5xx with backoff: the API can answer 500 on a transient DB lock."""
        headers = {**self.headers, **kw.pop("headers", {})}
        for attempt in range(5):
            resp = requests.request(method, self.base + path, headers=headers, timeout=30, **kw)
            if resp.status_code < 500:
                return resp
            time.sleep(2 ** attempt)
        return resp

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while self.call("GET", f"/api/v2/dags/{dag_id}").status_code != 200:
            assert time.time() < deadline, f"the DAG processor never registered {dag_id}"
            time.sleep(2)


@contextmanager
def airflow_sh(home: Path, settings: dict[str, str], timeout_s: float = 180) -> Iterator[Stack]:
    """scripts/airflow.sh start with `settings` on top of this environment, until the API answers and
    the admin's password exists; then its stop path (what `make down` runs) ends all of it."""
    port = free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "FB_AIRFLOW_PORT": str(port), **settings}
    log = open(home / "standalone.log", "w")
    proc = subprocess.Popen(["bash", str(REPO / "scripts" / "airflow.sh"), "start"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
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
            raise RuntimeError(f"Airflow API did not come up in {timeout_s:.0f} s:\n"
                               + (home / "standalone.log").read_text()[-3000:])
        password = json.loads(passwords.read_text())["admin"]
        token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password},
                              timeout=10).json()["access_token"]
        yield Stack(base, {"Authorization": f"Bearer {token}"}, home, env, "admin", password)
    finally:
        # Airflow leads a process group of its own: the stop path (what `make down` runs) ends all of it.
        subprocess.run(["bash", str(REPO / "scripts" / "airflow.sh"), "stop"], env=env, timeout=180)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@contextmanager
def celery_stack(home: Path, recipe: str, runs: int, workers: int, db: str) -> Iterator[Stack]:
    """`FB_EXECUTOR=celery scripts/airflow.sh` with `workers` Celery workers on fresh Postgres
    databases `db` and `db`_results, serving one recipe: a copy of the smoke recipe named `recipe`
    that allows `runs` active runs at once."""
    import yaml

    recipes = home / "recipes"
    recipes.mkdir()
    smoke = yaml.safe_load((REPO / "recipes" / "smoke.yaml").read_text())
    smoke.update(name=recipe, max_active_runs=runs)
    # Ten clients, ten simulators and Airflow on 2 cores: the client guard rightly calls such
    # measurements invalid (event-loop lag). This is about the orchestration, so the guard only
    # stops a client that is not running at all.
    smoke["client"]["guard"] = {"max_loop_lag_p99_ms": 5000, "max_lateness_p99_ms": 5000, "max_cpu_fraction": 1.0}
    (recipes / f"{recipe}.yaml").write_text(yaml.safe_dump(smoke))
    base = free_ports(workers + 2)
    settings = {"FB_EXECUTOR": "celery", "FB_CELERY_WORKERS": str(workers), "FB_LOG_PORT": str(base),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": fresh_postgres_db(db),
                "FB_RESULTS_URL": fresh_postgres_db(f"{db}_results"),
                "FB_ARCHIVE_URL": str(home / "archive"), "FB_RECIPES_DIR": str(recipes),
                # A queue of its own: another stack on the same broker never takes these tasks.
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"fb-{db}-{base}"}
    with airflow_sh(home, settings, timeout_s=240) as stack:
        yield stack
