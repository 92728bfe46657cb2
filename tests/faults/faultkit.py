"""Helpers of the fault suite: DAG runs on the real dev cluster, with a fault injected while
they run, and the figures (time to detect, time to recover) each fault test measures.

Every test here runs a real DAG (dag.test(), or the real Airflow stack), so they share the
native dev cluster's node: faults that take the node or a daemon away run one at a time.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "devcluster" / "cluster.sh"
SMOKE = REPO / "recipes" / "smoke.yaml"
FIGURES = REPO / ".cache" / "faults" / "figures.json"


def record(fault: str, **figures: Any) -> None:
    """Keep a fault's measured figures (docs/FAULTS.md is written from these) and print them."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[fault] = {**figures, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"FAULT {fault}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def recipe_copy(directory: Path, name: str, edit: Callable[[dict], None]) -> Path:
    """The smoke recipe under another name, changed by `edit`, as a file of its own."""
    data = yaml.safe_load(SMOKE.read_text())
    data["name"] = name
    edit(data)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def dag_of(path: Path):
    """The recipe's DAG as Airflow parses it from dags/, with FB_RECIPES_DIR set to the recipe's
    directory (dag.test() serializes the DAG by parsing the DAG folder again)."""
    import os

    from airflow.models.dagbag import DagBag

    os.environ["FB_RECIPES_DIR"] = str(path.parent)
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return next(dag for dag in bag.dags.values() if dag.fileloc and path.stem.replace("-", "_") in dag.dag_id)


def states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def task_times(run) -> dict[str, tuple[float, float]]:
    """(start, end) epoch seconds of each task instance that ran."""
    return {ti.task_id: (ti.start_date.timestamp(), ti.end_date.timestamp())
            for ti in run.get_task_instances() if ti.start_date and ti.end_date}


def squeue(states_: str = "all") -> list[tuple[str, str, str]]:
    out = subprocess.run(["squeue", "-h", "-t", states_, "-o", "%i|%j|%T"], capture_output=True, text=True,
                         check=True).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line.count("|") == 2]


def jobs_of_run(run) -> list[tuple[str, str, str]]:
    from factorybench.plan import run_tag

    tag = run_tag(run.run_id)
    return [j for j in squeue() if j[1].endswith(tag) and j[2] not in ("COMPLETED", "CANCELLED", "FAILED",
                                                                       "TIMEOUT", "NODE_FAIL")]


def latest_row(recipe: str):
    from factorybench.results.query import Results

    return Results().runs(recipe, limit=1)[0]


@contextlib.contextmanager
def blocker(minutes: int = 5) -> Iterator[str]:
    """Hold the node with an exclusive job, so the service job pends until it is cancelled."""
    out = subprocess.run(["sbatch", "--parsable", "--exclusive", "-J", "fbfault-blocker", "-t", str(minutes),
                          "-o", "/dev/null", "--wrap", "sleep 600"], capture_output=True, text=True, check=True)
    job_id = out.stdout.strip().split(";")[0]
    try:
        yield job_id
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)


class Fault(threading.Thread):
    """Runs `action(job_id)` once the run's service job is in `state` (PENDING, RUNNING), in the
    background while the DAG runs, and keeps what happened when (monotonic seconds)."""

    def __init__(self, name_prefix: str, state: str, action: Callable[[str], None], settle_s: float = 1.5,
                 timeout_s: float = 180.0):
        super().__init__(daemon=True)
        self.name_prefix, self.state, self.action = name_prefix, state, action
        self.settle_s, self.timeout_s = settle_s, timeout_s
        self.marks: dict[str, float] = {}
        self.error: BaseException | None = None

    def mark(self, what: str) -> None:
        self.marks[what] = time.time()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline:
                for job_id, name, state in squeue():
                    if name.startswith(self.name_prefix) and state == self.state:
                        time.sleep(self.settle_s)  # let the poller see that state first
                        self.mark("fault")
                        self.action(job_id)
                        self.mark("fault_done")
                        return
                time.sleep(0.2)
            raise TimeoutError(f"no job {self.name_prefix}* reached {self.state} within {self.timeout_s:.0f}s")
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def join_and_check(self) -> None:
        self.join(300)
        if self.error is not None:
            raise self.error
        assert "fault" in self.marks, "the fault was never injected"


def cluster_sh(*args: str, timeout: float = 180, down_s: float = 0) -> str:
    import os

    proc = subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "FB_RESTART_DOWN_S": str(down_s)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
