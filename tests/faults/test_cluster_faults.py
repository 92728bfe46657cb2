"""Faults on the real dev cluster while the smoke DAG runs (dag.test(): the trigger runs in-line).

For each fault the DAG either rides it out and succeeds, or ends in a clear state whose message
says what happened; teardown runs; and afterwards squeue holds no job of the run. Each test
records what it measured (faultkit.record) for docs/FAULTS.md.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from faultkit import (REPO, Fault, blocker, cluster_sh, dag_of, jobs_of_run, latest_row, recipe_copy, record,
                      states, task_times)

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(600)]
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")
NODE = socket.gethostname()


def smoke(tmp_path: Path, name: str, edit=lambda data: None):
    """The smoke recipe under a name of its own: its jobs (fb-NAME-...) are told apart from any
    other run's on the shared cluster."""
    import os

    os.environ["FB_RECIPES_DIR"] = str(tmp_path)  # restored by the autouse fixture below
    return dag_of(recipe_copy(tmp_path, name, edit))


@pytest.fixture(autouse=True)
def _recipes_dir(monkeypatch, native_cluster, airflow_db):
    monkeypatch.setenv("FB_RECIPES_DIR", "unset")


def run_with_fault(dag, conf: dict, fault: Fault):
    fault.start()
    try:
        return dag.test(run_conf=conf)
    finally:
        fault.join_and_check()


def assert_clean(run) -> None:
    got = states(run)
    assert got["stop_service"] == "success", got  # teardown ran and confirmed the job gone
    assert not jobs_of_run(run), jobs_of_run(run)


@pytest.mark.parametrize("daemon,transport", [("slurmctld", "ssh"), ("sshd", "ssh")])
def test_a_daemon_restarted_while_the_sensor_waits_is_ridden_out(tmp_path, capfd, caplog, daemon, transport):
    """slurmctld (the scheduler) or sshd (the login node) is down for 5 s and comes back while
    the trigger polls a pending job: polls fail as transient, are retried, and the run succeeds."""
    caplog.set_level(logging.INFO, logger="factorybench")
    name = f"fault-{daemon}"
    dag = smoke(tmp_path, name)
    with blocker() as hold:
        def restart_then_release(_job_id: str) -> None:
            cluster_sh("restart", daemon, down_s=5)
            fault.mark("back")
            time.sleep(2)  # the poller sees the daemon back while the job still pends
            subprocess.run(["scancel", hold], check=True)
            fault.mark("released")

        fault = Fault(f"fb-{name}-", "PENDING", restart_then_release)
        run = run_with_fault(dag, {"transport": transport, "max_requests": 12}, fault)
    got = states(run)
    assert str(run.state) == "success", (got, latest_row(name).message)
    assert_clean(run)
    out, err = capfd.readouterr()
    out += caplog.text  # structlog may hold a stream capfd does not see; records reach caplog
    retried = len(re.findall(r"scheduler unreachable \(", out + err))
    # Over SSH a poll fails while sshd is away; SLURM's own clients wait for slurmctld instead.
    assert retried or daemon == "slurmctld", "no poll failed while sshd was down: the fault was not seen"
    sensor_end = task_times(run)["wait_service_running"][1]
    record(f"{daemon}_restart_while_waiting", transport=transport,
           daemon_down_s=round(fault.marks["back"] - fault.marks["fault"], 1), polls_retried=retried,
           sensor_done_after_release_s=round(sensor_end - fault.marks["released"], 1), outcome="success")


def test_jwt_expiry_mid_run_over_rest(tmp_path, monkeypatch, capfd, caplog):
    """Tokens live 10 s and are used until they expire (no early refresh), while the sensor waits
    25 s and the load runs: each expired token is replaced and the run succeeds; no token is in
    any log line."""
    caplog.set_level(logging.INFO, logger="factorybench")
    clusters = yaml.safe_load((REPO / "config" / "clusters.yaml").read_text())
    rest = clusters["dev"].setdefault("rest", {})
    rest["token_command"] = "scontrol token lifespan=10"
    rest["token_refresh_margin_s"] = 0
    (tmp_path / "clusters.yaml").write_text(yaml.safe_dump(clusters))
    monkeypatch.setenv("FB_CLUSTERS_FILE", str(tmp_path / "clusters.yaml"))
    dag = smoke(tmp_path, "fault-jwt")
    with blocker() as hold:
        def release_later(_job_id: str) -> None:
            time.sleep(25)
            subprocess.run(["scancel", hold], check=True)

        fault = Fault("fb-fault-jwt-", "PENDING", release_later)
        run = run_with_fault(dag, {"transport": "rest", "max_requests": 60}, fault)
    got = states(run)
    assert str(run.state) == "success", (got, latest_row("fault-jwt").message)
    assert_clean(run)
    out, err = capfd.readouterr()
    out += caplog.text  # structlog may hold a stream capfd does not see; records reach caplog
    fetched = len(re.findall(r"fetched a new SLURM token .* \(valid for \d+s\)", out + err))
    waited = task_times(run)["wait_service_running"]
    assert fetched >= 2 + (waited[1] - waited[0]) // 10, (fetched, waited)  # renewed while waiting
    assert not JWT.search(out + err), "a JWT reached a log line"
    archive = Path(latest_row("fault-jwt").archive_url)
    assert not any(JWT.search(f.read_text(errors="replace")) for f in archive.rglob("*") if f.is_file()
                   and f.suffix != ".parquet")
    record("jwt_expiry_over_rest", token_lifespan_s=10, tokens_fetched=fetched,
           sensor_wait_s=round(waited[1] - waited[0], 1), outcome="success")


def service_pid(job_id: str) -> int:
    """The simulator's pid: the job's process listening on its port (20000 + id % 10000)."""
    port = 20000 + int(job_id) % 10000
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"pid=(\d+)", out).group(1))


def test_node_set_down_mid_load_is_reported(tmp_path):
    """The service's node is set DOWN while the load runs (then resumed): SLURM kills the job with
    NODE_FAIL, the load stops, and the run fails saying so."""
    seen: dict[str, str] = {}

    def node_down(job_id: str) -> None:
        subprocess.run(["scontrol", "update", f"nodename={NODE}", "state=down", "reason=fbfault"], check=True)
        fault.mark("down")
        time.sleep(3)
        seen["job"] = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                                     text=True).stdout
        # ReturnToService=2 may already have brought the node back when slurmd re-registered.
        subprocess.run(["scontrol", "update", f"nodename={NODE}", "state=resume"], capture_output=True)
        fault.mark("resumed")

    fault = Fault("fb-fault-node-", "RUNNING", node_down, settle_s=5)
    try:
        run = run_with_fault(smoke(tmp_path, "fault-node"), {"transport": "ssh", "max_requests": 2000}, fault)
    finally:
        subprocess.run(["scontrol", "update", f"nodename={NODE}", "state=resume"], capture_output=True)
    got = states(run)
    row = latest_row("fault-node")
    load_end = task_times(run)["run_load"][1]
    restarts = re.search(r"Restarts=(\d+)", seen.get("job", ""))
    record("node_down_mid_load", outcome=f"failed: {row.message}", run_load_state=got["run_load"],
           job_after_3s=" ".join(re.findall(r"(?:JobState|Reason|Restarts)=\S+", seen.get("job", ""))),
           requeued=bool(restarts and int(restarts.group(1)) > 0),
           load_stopped_after_s=round(load_end - fault.marks["down"], 1))
    assert str(run.state) == "failed" and row.status == "failed", (got, row.message)
    assert_clean(run)
    # A requeued job pends again (reason BeginTime): the run must say the job failed or was requeued.
    assert re.search(r"NODE_FAIL|requeue", row.message, re.IGNORECASE), row.message


def test_service_killed_mid_load_stops_the_load(tmp_path):
    """The service process is killed while the load runs: the liveness watcher sees the job end,
    the load stops within seconds, and the run fails with the job's state."""
    def kill_service(job_id: str) -> None:
        subprocess.run(["kill", "-KILL", str(service_pid(job_id))], check=True)

    fault = Fault("fb-fault-kill-", "RUNNING", kill_service, settle_s=5)
    run = run_with_fault(smoke(tmp_path, "fault-kill"), {"transport": "ssh", "max_requests": 2000}, fault)
    got = states(run)
    row = latest_row("fault-kill")
    assert str(run.state) == "failed" and got["run_load"] == "failed", (got, row.message)
    assert "the service job ended during the load" in row.message or "FAILED" in row.message, row.message
    assert_clean(run)
    stopped_after = task_times(run)["run_load"][1] - fault.marks["fault"]
    assert stopped_after < 15, stopped_after
    record("service_killed_mid_load", outcome=f"failed: {row.message}", load_stopped_after_s=round(stopped_after, 1))


def test_bursts_of_429_and_503_are_counted_and_marked(tmp_path):
    """The server answers 503 while it starts and 429 when its queue is full: the load goes on to
    its end, counts each status, and the stored result marks the failed requests."""
    from factorybench.results.query import Results

    def edit(data: dict) -> None:
        data["readiness"]["path"] = "/v1/models"  # answers before the model is "loaded"

    dag = smoke(tmp_path, "fault-bursts", edit)
    # Readiness and the other probes take a few seconds: the first seconds of load still see 503.
    conf = {"transport": "ssh", "profile": "constant", "rate": 40, "duration_s": 8, "max_requests": None,
            "service_args": ["--startup-delay-s", "7", "--max-num-seqs", "2", "--max-queue", "0"]}
    run = dag.test(run_conf=conf)
    got = states(run)
    row = latest_row("fault-bursts")
    assert got["run_load"] == "success", got  # the load ran to its end
    by_class = json.loads((Path(row.archive_url) / "load" / "summary.json").read_text())["summary"]["errors_by_class"]
    assert by_class.get("http_429", 0) > 0 and by_class.get("http_5xx", 0) > 0, by_class
    statuses = Results().samples(row.id).column("status").to_pylist()
    counts = {s: statuses.count(s) for s in set(statuses)}
    assert counts.get(429) and counts.get(503) and counts.get(200), counts
    assert row.status == "failed" and re.search(r"\d+ of \d+ requests failed", row.message), row.message
    assert row.metrics["errors"] == by_class["http_429"] + by_class["http_5xx"]
    assert_clean(run)
    record("http_429_503_bursts", outcome=f"{row.status}: {row.message}",
           per_status={str(k): v for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))})


def test_a_saturated_client_makes_the_run_invalid(tmp_path):
    """Offered load the client cannot send on time: the run is invalid, not a slow server."""
    conf = {"transport": "ssh", "profile": "constant", "rate": 1500, "duration_s": 2, "max_requests": None}
    run = smoke(tmp_path, "fault-saturated").test(run_conf=conf)
    got = states(run)
    row = latest_row("fault-saturated")
    assert str(run.state) == "failed" and got["check"] == "failed", got
    assert row.status == "invalid" and re.search(r"send lateness|event-loop lag", row.message), row.message
    assert_clean(run)
    record("client_saturated", outcome=f"{row.status}: {row.message}")
