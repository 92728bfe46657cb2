"""The load client as a 2-task SLURM job on the native dev cluster: file barrier, shares, exact merge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from factorybench.load import LoadConfig, LoadResult, ProfileConfig
from factorybench.load.config import DatasetConfig, Lengths

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "devcluster" / "cluster.sh"

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    status = subprocess.run([str(CLUSTER_SH), "status", "native"], capture_output=True, text=True, timeout=30)
    if status.returncode != 0:
        pytest.skip(f"native devcluster is not up (run devcluster/cluster.sh up):\n{status.stdout}{status.stderr}")
    env = dict(os.environ)
    conf = REPO / ".devcluster" / "native" / "etc" / "slurm.conf"
    if conf.exists():
        env["SLURM_CONF"] = str(conf)
    return env


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "factorybench.sim", "--port", "0", "--ttft-ms", "30",
                             "--itl-ms", "5"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, line
    yield line.rsplit(" ", 1)[-1].strip()
    proc.terminate()
    proc.wait(10)


def two_task_job(config: LoadConfig, env: dict[str, str], tmp_path: Path) -> tuple[LoadResult, Path]:
    """Run `config` as `srun -n 2 ... slurm-task` on the dev cluster; the merged result and its directory."""
    shared = tmp_path / "shared"
    cfg = tmp_path / "load.json"
    cfg.write_text(config.model_dump_json())
    script = tmp_path / "load.sbatch"
    script.write_text("#!/bin/bash\n#SBATCH --ntasks=2\n#SBATCH --time=00:05:00\n"
                      f"#SBATCH --output={tmp_path}/job-%j.out\n"
                      f"srun {sys.executable} -m factorybench.load slurm-task --config {cfg} --dir {shared}\n")
    job = subprocess.run(["sbatch", "--parsable", str(script)], env=env, check=True, capture_output=True,
                         text=True, timeout=30).stdout.strip().split(";")[0]
    deadline = time.monotonic() + 240
    while subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True,
                         timeout=30).stdout.strip():
        assert time.monotonic() < deadline, f"job {job} did not finish"
        time.sleep(1)
    log = "".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    assert (shared / "summary.json").exists(), log
    return LoadResult.load(shared), shared


def test_two_task_job_merges_exactly(slurm_env: dict[str, str], sim_url: str, tmp_path: Path) -> None:
    config = LoadConfig(target=sim_url, model="sim-model", dataset=DatasetConfig(output_tokens=Lengths(mean=8)),
                        profile=ProfileConfig(kind="constant", rate=40, max_requests=60))
    merged, shared = two_task_job(config, slurm_env, tmp_path)

    per_task = {task.name: pq.read_table(task / "samples.parquet").num_rows for task in shared.glob("step-0/task-*")}
    assert set(per_task) == {"task-0", "task-1"} and all(per_task.values()), per_task
    summary = json.loads((shared / "summary.json").read_text())["summary"]
    assert summary["requests"] + summary["errors"] == sum(per_task.values()) == 60
    assert summary["client"]["processes"] == 2

    assert sorted(s.index for s in merged.samples) == list(range(60))
    assert {s.worker for s in merged.samples} == {0, 1}
