"""The job-script lines that start exporters beside the service and register them for Prometheus, run
under bash with stand-in exporters: a valid file_sd file while the job runs, whatever the recipe's
values, and nothing left once SLURM's SIGTERM arrives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from factorybench.monitoring.exporters import block
from factorybench.recipe.cluster import ClusterProfile, ExporterProfile, MonitoringProfile
from factorybench.recipe.schema import Recipe

HOSTILE = "/m$(touch${IFS}pwned)`id`;\"%s\\n'"


def recipe(exporters=("node",), kind="sim", metrics_path="/metrics") -> Recipe:
    return Recipe.model_validate({"name": "smoke", "service": {"kind": kind, "command": ["srv"]},
                                  "monitoring": {"exporters": list(exporters), "metrics_path": metrics_path}})


def profile(sd_dir: str | None, **exporters) -> ClusterProfile:
    return ClusterProfile(transport="local", workdir="/tmp",
                          monitoring=MonitoringProfile(file_sd_dir=sd_dir, **exporters))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_registered_while_running_and_gone_after_sigterm(tmp_path):
    sd = tmp_path / "file_sd"
    stand_in = ExporterProfile(command=["bash", "-c", f"echo $$ > {tmp_path}/exporter.pid; exec sleep 300",
                                        "--listen={node}:{port}"], port="auto")
    lines = block(recipe(metrics_path=HOSTILE), profile(str(sd), node_exporter=stand_in), "tag1")
    script = tmp_path / "job.sh"
    script.write_text(f"set -euo pipefail\nexport FB_PORT=4242\n{lines}\nsleep 300 &\nFB_CHILDREN+=(\"$!\")\n"
                      "wait \"$!\"\n")
    env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": "20077", "SLURMD_NODENAME": "node-a"}
    job = subprocess.Popen(["bash", str(script)], env=env, cwd=tmp_path)
    target = sd / "fb-20077.json"
    deadline = time.monotonic() + 10
    while not (target.exists() and (tmp_path / "exporter.pid").exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    groups = json.loads(target.read_text())
    assert [g["targets"] for g in groups] == [["node-a:10077"], ["node-a:4242"]]  # auto: 10000 + id % 10000
    assert groups[0]["labels"] == {"slurm_job_id": "20077", "node": "node-a", "exporter": "node", "recipe": "smoke",
                                   "run_tag": "tag1"}
    assert groups[1]["labels"]["exporter"] == "service" and groups[1]["labels"]["__metrics_path__"] == HOSTILE
    assert not (tmp_path / "pwned").exists()
    exporter = int((tmp_path / "exporter.pid").read_text())
    assert alive(exporter)
    job.send_signal(signal.SIGTERM)  # what scancel sends first
    assert job.wait(10) == 143
    assert not target.exists() and not list(sd.iterdir())
    deadline = time.monotonic() + 5
    while alive(exporter) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(exporter)


def test_an_exporter_in_an_apptainer_image_and_fixed_ports(tmp_path):
    dcgm = ExporterProfile(command=["dcgm-exporter", "--address", "{node}:{port}"], image="/images/dcgm.sif",
                           port=9400)
    lines = block(recipe(("node", "dcgm"), kind="ollama"), profile(str(tmp_path), dcgm_exporter=dcgm), "t")
    assert "FB_NODE_EXPORTER_PORT=9100\nprometheus-node-exporter --web.listen-address=\"${FB_NODE}\":" in lines
    assert 'apptainer exec --nv /images/dcgm.sif dcgm-exporter --address "${FB_NODE}":"${FB_DCGM_EXPORTER_PORT}"' \
        in lines
    assert '"exporter": "service"' not in lines  # Ollama has no /metrics to register
    assert subprocess.run(["bash", "-n"], input=lines, text=True).returncode == 0


def test_nothing_without_exporters_and_a_clear_error_without_a_file_sd_dir():
    assert block(recipe(()), profile(None), "t") is None
    with pytest.raises(ValueError, match=r"monitoring.exporters \['node'\] needs the cluster profile's "
                                         r"monitoring.file_sd_dir"):
        block(recipe(), profile(None), "t")
