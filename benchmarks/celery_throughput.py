"""Smoke DAG runs completed per minute on the Celery layout, with 1 worker and with 2, in one run.

    .venv/bin/python benchmarks/celery_throughput.py [--workers 1 2] [--runs 10] [--max-requests 8]

Needs the native dev cluster (devcluster/cluster.sh up), Redis on 6379 and PostgreSQL on 5432.
For each worker count it starts `FB_EXECUTOR=celery scripts/airflow.sh` (the layout
tests/e2e/test_celery_stack.py tests and docker-compose.yaml mirrors) on fresh Postgres databases,
with a copy of recipes/smoke.yaml that allows `--runs` active runs, waits until the DAG is
registered, then POSTs `--runs` DAG runs through the REST API v2 at once and times them from the
first POST until the last run is terminal. Every run is a real SLURM job of the simulator, a real
load run, archive and verdict. The rate is runs x 60 / that wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import table  # noqa: E402
from devstack import celery_stack  # noqa: E402

RECIPE = "celery-bench"
DAG = f"factorybench_{RECIPE.replace('-', '_')}"


def measure(workers: int, runs: int, max_requests: int) -> tuple:
    home = Path(tempfile.mkdtemp(prefix=f"fb-celery-bench-{workers}-"))
    with celery_stack(home, RECIPE, runs, workers, "factorybench_celery_bench") as stack:
        stack.wait_for_dag(DAG, timeout=180)
        stack.call("PATCH", f"/api/v2/dags/{DAG}", json={"is_paused": False}).raise_for_status()
        ids = [f"bench-{workers}-{i}" for i in range(runs)]
        start = time.monotonic()
        for run_id in ids:
            stack.call("POST", f"/api/v2/dags/{DAG}/dagRuns", json={
                "dag_run_id": run_id, "logical_date": None, "conf": {"max_requests": max_requests}}).raise_for_status()
        states: dict[str, str] = {}
        while time.monotonic() - start < 1800:
            states = {r: stack.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{r}").json()["state"] for r in ids}
            if all(s in ("success", "failed") for s in states.values()):
                break
            time.sleep(2)
        wall = time.monotonic() - start
    ok = sum(s == "success" for s in states.values())
    return workers, runs, ok, round(wall, 1), round(runs * 60 / wall, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--max-requests", type=int, default=8)
    args = ap.parse_args()
    rows = [measure(w, args.runs, args.max_requests) for w in args.workers]
    print(f"{args.runs} smoke DAG runs posted at once, max_requests={args.max_requests}, 2-core machine")
    print(table(["Celery workers", "runs", "succeeded", "wall s", "runs/min"], rows))


if __name__ == "__main__":
    main()
