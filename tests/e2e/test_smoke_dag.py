"""The smoke DAG end to end with dag.test(): real SLURM job, real simulator, real load, real DB."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def dagbag(native_cluster, airflow_db):
    from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def squeue_names() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=True).stdout.split()


def left_behind(run) -> list[str]:
    """The run's own jobs still in squeue (job names end with the run's tag)."""
    from factorybench.plan import run_tag

    return [n for n in squeue_names() if n.startswith("fb-smoke-") and n.endswith(run_tag(run.run_id))]


def states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_dagbag_loads_every_recipe(dagbag):
    assert dagbag.import_errors == {}
    recipes = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
    assert len(dagbag.dags) == len(recipes)
    smoke = dagbag.dags["factorybench_smoke"]
    assert {"plan", "submit_service", "wait_service_running", "discover_endpoint", "run_load",
            "stop_service", "collect_service_logs", "judge", "archive", "check"} == set(smoke.task_ids)
    for teardown in ("stop_service", "collect_service_logs", "judge", "archive"):
        assert smoke.get_task(teardown).trigger_rule == "all_done"
    assert [t.task_id for t in smoke.leaves] == ["check"]
    assert smoke.get_task("wait_service_running").__class__.__name__ == "SlurmJobSensor"


def test_broken_recipe_does_not_hide_the_others(tmp_path, monkeypatch, airflow_db):
    from factorybench.airflow.dag_factory import build_dags

    for p in (REPO / "recipes").glob("*.yaml"):
        (tmp_path / p.name).write_text(p.read_text())
    (tmp_path / "zz-broken.yaml").write_text((REPO / "recipes" / "smoke.yaml").read_text()
                                             .replace("name: smoke", "name: broken").replace("readiness:", "readyness:"))
    dags = build_dags(tmp_path)
    assert "factorybench_smoke" in dags and "factorybench_meluxina_vllm_llama3_8b" in dags
    broken = dags["factorybench_broken_zz_broken"]
    assert "broken-recipe" in broken.tags and "readyness: unknown key" in broken.doc_md


JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")


@pytest.mark.parametrize("transport", ["ssh", "rest"])
def test_smoke_dag_end_to_end(dagbag, transport, capfd, caplog):
    from factorybench.results.query import Results

    dag = dagbag.dags["factorybench_smoke"]
    run = dag.test(run_conf={"transport": transport, "max_requests": 24})
    got = states(run)
    assert str(run.state) == "success", got
    assert all(s == "success" for s in got.values()), got
    row = Results().runs("smoke", limit=1)[0]
    assert row.status == "success" and row.dag_run_id == run.run_id
    assert row.metrics["requests"] == 24 - 4 and row.metrics["errors"] == 0  # 4 warm-up requests excluded
    assert row.metrics["ttft_p50_ms"] >= 50 and row.job_ids and row.nodes == [socket.gethostname()]
    detail = Results().run(row.id)
    assert detail.provenance["service_version"].startswith("factorybench-sim")
    assert detail.provenance["recipe_text"] == (REPO / "recipes" / "smoke.yaml").read_text()
    archive = Path(row.archive_url)
    assert "factorybench-sim listening" in (archive / "service.out").read_text()
    assert (archive / "load" / "summary.json").exists() and (archive / "job.sh").exists()
    assert len(Results().sample_values(row.id, "ttft_ms")) == 24 - 4
    report = Results().artifact(row.id, "report.html").decode()  # drawn by the archive task, with the run
    assert "<svg" in report and row.dag_run_id in report
    # The verdict line is the DAG run's note (set by the factorybench listener), and the check task
    # links to the report.
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    with create_session() as session:
        note = session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=run.run_id).one().note
    assert note.startswith("factorybench: not judged: insufficient_data (min_runs)") and row.verdict_line in note, note
    assert dag.get_task("check").operator_extra_links[0].get_link(
        dag.get_task("check"), ti_key=run.get_task_instance("check").key).endswith("/report")
    assert not left_behind(run), "the run left a job behind"
    # The REST run fetched JWTs from the login node: none may reach the logs or the archive.
    out, err = capfd.readouterr()
    out += caplog.text  # structlog may hold a stream capfd does not see; records reach caplog
    assert not JWT.search(out + err)
    assert not any(JWT.search(f.read_text(errors="replace")) for f in archive.rglob("*") if f.is_file()
                   and f.suffix != ".parquet")


def test_scancel_while_waiting_fails_the_dag_with_slurm_state(dagbag, capfd, caplog):
    """Hold the node so the service pends, scancel it from outside: the sensor must fail at once."""
    dag = dagbag.dags["factorybench_smoke"]
    blocker = subprocess.run(["sbatch", "--parsable", "--exclusive", "-J", "fbtest-blocker", "-t", "5",
                              "-o", "/dev/null", "--wrap", "sleep 300"], capture_output=True, text=True, check=True)
    blocker_id = blocker.stdout.strip()
    cancelled_at: list[float] = []

    def cancel_when_pending():
        deadline = time.time() + 120
        while time.time() < deadline:
            out = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%i %j"], capture_output=True, text=True).stdout
            for line in out.splitlines():
                job_id, name = line.split()
                if name.startswith("fb-smoke-"):
                    time.sleep(1.5)  # let the trigger observe it pending first
                    subprocess.run(["scancel", job_id], check=True)
                    cancelled_at.append(time.monotonic())
                    return
            time.sleep(0.2)

    thread = threading.Thread(target=cancel_when_pending)
    thread.start()
    try:
        run = dag.test(run_conf={"transport": "ssh"})
    finally:
        thread.join()
        subprocess.run(["scancel", blocker_id])
    finished = time.monotonic()
    got = states(run)
    assert cancelled_at, "the service job never pended"
    assert str(run.state) == "failed"
    assert got["wait_service_running"] == "failed" and got["run_load"] == "upstream_failed", got
    assert got["stop_service"] == "success" and got["archive"] == "success", got
    assert got["check"] == "upstream_failed", got
    from factorybench.results.query import Results
    row = Results().runs("smoke", limit=1)[0]
    assert row.status == "failed" and row.dag_run_id == run.run_id and "CANCELLED" in row.message
    assert not left_behind(run)
    assert finished - cancelled_at[0] < 30
    out, err = capfd.readouterr()
    out += caplog.text  # structlog may hold a stream capfd does not see; records reach caplog
    assert "SLURM job ended before it started serving: job" in out + err
    assert "is CANCELLED" in out + err  # within one poll (1 s) plus the teardown and archive tasks


def test_smoke_dag_with_client_as_two_task_slurm_job(dagbag):
    """client.where=slurm: the load engine runs as `srun -n 2` on the cluster and merges exactly."""
    from factorybench.results.query import Results

    run = dagbag.dags["factorybench_smoke"].test(
        run_conf={"transport": "ssh", "client_where": "slurm", "client_tasks": 2, "max_requests": 24})
    got = states(run)
    assert str(run.state) == "success", got
    row = Results().runs("smoke", limit=1)[0]
    archive = Path(row.archive_url)
    assert "srun python -m factorybench.load slurm-task" in (archive / "client-job.sh").read_text()
    assert row.metrics["requests"] == 24 - 4 and row.metrics["errors"] == 0  # both tasks' samples, merged
    assert len(row.job_ids) == 2  # the service job and the client job
    # The client job's raw samples came back from the cluster through the transport.
    samples = Results().samples(row.id)
    assert samples.num_rows == 24 and set(samples["worker"].to_pylist()) == {0, 1}
    assert not left_behind(run)


def test_a_run_whose_teardown_failed_is_never_a_pass(dagbag, monkeypatch):
    """stop_service cancels the job but then fails: the load was fine, yet the run is recorded as failed."""
    from factorybench.airflow import operators
    from factorybench.results.query import Results

    real = operators.SlurmCancelOperator.execute

    def cancel_then_fail(self, context):
        real(self, context)  # the job really goes away; only the task's result is lost
        raise RuntimeError("lost the login node while confirming the cancel")

    monkeypatch.setattr(operators.SlurmCancelOperator, "execute", cancel_then_fail)
    run = dagbag.dags["factorybench_smoke"].test(run_conf={"transport": "ssh", "max_requests": 12})
    got = states(run)
    assert got["run_load"] == "success" and got["stop_service"] == "failed", got
    assert got["archive"] == "success" and str(run.state) == "failed", got
    row = Results().runs("smoke", limit=1)[0]
    assert row.dag_run_id == run.run_id and row.status == "failed" and "teardown failed" in row.message
    assert not left_behind(run)
