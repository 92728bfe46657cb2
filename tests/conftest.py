"""Test setup. Airflow's environment must be set before anything imports airflow."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="fb-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ.setdefault("FB_VENV", str(REPO / ".venv"))
os.environ["FB_RESULTS_URL"] = f"sqlite:///{_AIRFLOW_HOME}/results.db"
os.environ["FB_ARCHIVE_URL"] = f"{_AIRFLOW_HOME}/archive"


def cluster_env(flavour: str = "native") -> dict[str, str] | None:
    """The dev cluster's settings (devcluster/cluster.sh env), or None when it is not up."""
    script = REPO / "devcluster" / "cluster.sh"
    if subprocess.run([script, "status", flavour], capture_output=True).returncode != 0:
        return None
    out = subprocess.run(["bash", "-c", f'eval "$({script} env {flavour})" && env -0'],
                         capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.fixture(scope="session")
def native_cluster() -> dict[str, str]:
    env = cluster_env("native")
    if env is None:
        pytest.skip("the native dev cluster is not up (devcluster/cluster.sh up)")
    for key in ("SLURM_CONF", "AIRFLOW_CONN_SLURM_SSH", "AIRFLOW_CONN_SLURM_REST", "FB_SLURM_WORKDIR",
                "FB_SLURM_TOKEN_CMD"):
        if key in env:
            os.environ[key] = env[key]
    return env


@pytest.fixture(scope="session")
def forky_cluster() -> dict[str, str]:
    """The Slurm 26.05 chroot cluster, as the `forky` profile in config/clusters.yaml reads it."""
    env = cluster_env("forky")
    if env is None:
        pytest.skip("the forky dev cluster is not up (devcluster/cluster.sh up forky)")
    os.environ["AIRFLOW_CONN_SLURM_REST_FORKY"] = env["AIRFLOW_CONN_SLURM_REST_FORKY"]
    os.environ["FB_FORKY_TOKEN_CMD"] = env["FB_SLURM_TOKEN_CMD"]
    os.environ["FB_FORKY_WORKDIR"] = env["FB_SLURM_WORKDIR"]
    return env


@pytest.fixture(scope="session")
def airflow_db():
    """An initialised Airflow metadata DB (SQLite in the temp AIRFLOW_HOME)."""
    from airflow.utils import db

    db.initdb()
    return _AIRFLOW_HOME


@pytest.fixture(autouse=True, scope="session")
def _quiet_ssh_logs():
    import logging
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under `make test` (FB_REQUIRE_CLUSTERS=1) a skipped test is a failed test: CI must never
    pass because a cluster was missing."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("FB_REQUIRE_CLUSTERS") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but make test requires every cluster: {report.longrepr}"
