"""A service on two nodes: the pair dev cluster (devcluster/cluster.sh up pair) runs one replica of the
simulator on this host and one on fbnode2, a slurmd in a network namespace of its own. The second
replica listens on 10.251.2.2, an address that exists only inside that namespace, so its answers
prove the job really ran there. `factorybench run` spreads the load over both and archives each
replica's share, the endpoint's replicas and the node list."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from factorybench.results.query import Results

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "devcluster" / "cluster.sh"
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]


def _up() -> bool:
    return subprocess.run([str(CLUSTER_SH), "status", "pair"], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def pair_cluster() -> dict[str, str]:
    """The pair cluster's settings; brought up here when it is not (and taken down again after)."""
    started = not _up()
    if started:
        up = subprocess.run([str(CLUSTER_SH), "up", "pair"], capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
    out = subprocess.run(["bash", "-c", f'eval "$({CLUSTER_SH} env pair)" && env -0'], capture_output=True,
                         check=True).stdout.decode()
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    try:
        yield env
    finally:
        if started:
            subprocess.run([str(CLUSTER_SH), "down", "pair"], capture_output=True, timeout=120)


def test_a_replica_on_each_node_shares_the_load(pair_cluster, tmp_path):
    env = {**os.environ, "AIRFLOW_CONN_SLURM_SSH_PAIR": pair_cluster["AIRFLOW_CONN_SLURM_SSH_PAIR"],
           "FB_PAIR_WORKDIR": pair_cluster["FB_SLURM_WORKDIR"], "FB_RESULTS_URL": f"sqlite:///{tmp_path}/results.db",
           "FB_ARCHIVE_URL": str(tmp_path / "archive")}
    run = subprocess.run([str(REPO / ".venv" / "bin" / "factorybench"), "run", "pair-replicas", "--json"], env=env,
                         capture_output=True, text=True, timeout=480)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    done = json.loads(run.stdout)
    assert done["status"] == "success", done
    archive = Path(done["archive"])

    job = json.loads((archive / "job.json").read_text())
    assert sorted(job["nodes"]) == ["fbnode2", "vm"], job
    endpoint = json.loads((archive / "endpoint.json").read_text())
    assert {(r["node"], r["host"]) for r in endpoint["replicas"]} == {("fbnode2", "10.251.2.2"), ("vm", "127.0.0.1")}
    result = json.loads((archive / "load" / "summary.json").read_text())
    urls = [result["config"]["target"], *result["config"]["replicas"]]
    assert sorted(urls) == sorted(r["url"] for r in endpoint["replicas"])
    shares = result["summary"]["replicas"]
    assert [s["replica"] for s in shares] == [0, 1]
    assert all(s["requests"] > 0 and s["errors"] == 0 for s in shares), shares
    assert sum(s["requests"] for s in shares) == result["summary"]["requests"] == 40 - 4
    assert abs(shares[0]["share"] - 0.5) <= 0.1, shares  # round robin over the two replicas
    # The simulator said where it listened: once in the namespace, once here.
    out = (archive / "service.out").read_text() + (archive / "service.err").read_text()
    assert "10.251.2.2" in out and "127.0.0.1" in out, out[-2000:]

    row = Results(env["FB_RESULTS_URL"]).runs("pair-replicas", limit=1)[0]
    assert row.status == "success" and sorted(row.nodes) == ["fbnode2", "vm"]
    assert subprocess.run(["squeue", "-h", "-o", "%j"], env={**os.environ, "SLURM_CONF": pair_cluster["FB_SLURM_CONF"]},
                          capture_output=True, text=True, check=True).stdout.split() == []
