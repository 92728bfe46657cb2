"""Smoke tests of the native dev cluster (devcluster/cluster.sh up)."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "devcluster" / "cluster.sh"

pytestmark = pytest.mark.cluster


def _cluster_env() -> dict[str, str]:
    """The variables `cluster.sh env` exports, read through a shell so quoting is exact."""
    out = subprocess.run(
        ["bash", "-c", f'eval "$({shlex.quote(str(CLUSTER_SH))} env native)" && env -0'],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout
    pairs = (item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {k: v for k, v in pairs if k.startswith(("FB_", "AIRFLOW_CONN_"))}


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    status = subprocess.run([str(CLUSTER_SH), "status", "native"], capture_output=True, text=True, timeout=30)
    if status.returncode != 0:
        pytest.skip(f"native devcluster is not up (run devcluster/cluster.sh up):\n{status.stdout}{status.stderr}")
    return _cluster_env()


def _ssh(env: dict[str, str], command: str) -> str:
    argv = [
        "ssh", "-i", env["FB_SSH_KEY"], "-p", env["FB_SSH_PORT"],
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", f"{env['FB_SSH_USER']}@{env['FB_SSH_HOST']}", command,
    ]
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


def test_env_is_complete(cluster: dict[str, str]) -> None:
    for name in (
        "FB_CLUSTER", "FB_SLURM_REST_URL", "FB_SLURM_REST_USER", "FB_SLURM_TOKEN_CMD", "FB_SLURM_WORKDIR",
        "FB_SLURM_CONF", "FB_SSH_HOST", "FB_SSH_PORT", "FB_SSH_USER", "FB_SSH_KEY",
        "AIRFLOW_CONN_SLURM_SSH", "AIRFLOW_CONN_SLURM_REST",
    ):
        assert cluster.get(name), f"{name} missing from cluster.sh env"
    assert cluster["FB_CLUSTER"] == "native"


def test_sinfo_shows_cpu_and_gpu_partitions(cluster: dict[str, str]) -> None:
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%P %a"], check=True, capture_output=True, text=True, timeout=30,
        env={**os.environ, "SLURM_CONF": cluster["FB_SLURM_CONF"]},
    ).stdout
    partitions = dict(line.split() for line in out.splitlines())
    assert partitions.get("cpu*") == "up", out  # '*' marks the default partition
    assert partitions.get("gpu") == "up", out


def test_sbatch_over_ssh_login_node_completes(cluster: dict[str, str]) -> None:
    marker = uuid.uuid4().hex
    output = Path(cluster["FB_SLURM_WORKDIR"]) / f"devcluster-test-{marker}.out"
    job_id = _ssh(
        cluster,
        f"sbatch --parsable -p cpu -t 1 -o {shlex.quote(str(output))} --wrap {shlex.quote(f'echo {marker}')}",
    ).strip().split(";")[0]
    assert job_id.isdigit(), job_id

    deadline = time.monotonic() + 20
    state = ""
    while time.monotonic() < deadline:
        state = _ssh(cluster, f"scontrol show job {job_id} | grep -o 'JobState=[A-Z_]*'").strip()
        if state in ("JobState=COMPLETED", "JobState=FAILED", "JobState=CANCELLED", "JobState=TIMEOUT"):
            break
        time.sleep(0.5)
    assert state == "JobState=COMPLETED", f"job {job_id}: {state}"
    assert output.read_text().strip() == marker
    output.unlink()


def test_slurmrestd_answers_with_jwt(cluster: dict[str, str]) -> None:
    printed = subprocess.run(
        shlex.split(cluster["FB_SLURM_TOKEN_CMD"]), check=True, capture_output=True, text=True, timeout=30,
        env={**os.environ, "SLURM_CONF": cluster["FB_SLURM_CONF"]},
    ).stdout.strip()
    token = printed.removeprefix("SLURM_JWT=")
    headers = {"X-SLURM-USER-NAME": cluster["FB_SLURM_REST_USER"], "X-SLURM-USER-TOKEN": token}
    base = cluster["FB_SLURM_REST_URL"]

    for version in ("v0.0.37", "v0.0.38"):
        resp = requests.get(f"{base}/slurm/{version}/ping", headers=headers, timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.json()["pings"][0]["ping"] == "UP"

    unauthenticated = requests.get(f"{base}/slurm/v0.0.38/ping", timeout=10)
    assert unauthenticated.status_code != 200
