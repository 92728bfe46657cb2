"""The smoke DAG end to end (dag.test(), real SLURM job, real simulator) with the monitoring stack on
127.0.0.1: a test cluster profile names a real Prometheus and Pushgateway (scripts/monitoring/stack.sh)
and their file_sd directory, and the recipe asks for node-exporter beside the service. The archive
and the database hold the client-side and server-side figures side by side, and the Pushgateway
holds the run's metrics after the run has ended."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "scripts" / "monitoring" / "stack.sh"
pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict[str, str]]:
    here = tmp_path_factory.mktemp("monitoring")
    out = subprocess.run([str(STACK), "up", str(here)], capture_output=True, text=True)
    assert out.returncode == 0, f"stack.sh up failed (run scripts/monitoring/ensure.sh): {out.stderr}"
    yield dict(line.split("=", 1) for line in (here / "stack.env").read_text().splitlines())
    subprocess.run([str(STACK), "down", str(here)], check=True)


@pytest.fixture(scope="module")
def dag(native_cluster, airflow_db, stack, tmp_path_factory):
    """The smoke recipe (node-exporter added) against the dev profile with a monitoring section."""
    from airflow.models.dagbag import DagBag

    here = tmp_path_factory.mktemp("monitored")
    clusters = yaml.safe_load((REPO / "config" / "clusters.yaml").read_text())
    clusters["dev"]["monitoring"] = {
        "prometheus_url": stack["PROMETHEUS_URL"], "pushgateway_url": stack["PUSHGATEWAY_URL"],
        "file_sd_dir": stack["FILE_SD_DIR"], "live_interval_s": 1,
        "node_exporter": {"command": ["prometheus-node-exporter", "--web.listen-address={node}:{port}"],
                          "port": "auto"}}
    (here / "clusters.yaml").write_text(yaml.safe_dump(clusters))
    recipe = yaml.safe_load((REPO / "recipes" / "smoke.yaml").read_text())
    recipe["monitoring"] = {"interval_s": 0.5, "exporters": ["node"]}
    # Like a model loading: Prometheus finds and scrapes the new exporter (file_sd updates reach the
    # scrape manager every 5 s) before the load starts, as it would on a real cluster.
    recipe["service"]["command"] += ["--startup-delay-s", "7"]
    (here / "recipes").mkdir()
    (here / "recipes" / "smoke.yaml").write_text(yaml.safe_dump(recipe))
    saved = {k: os.environ.get(k) for k in ("FB_CLUSTERS_FILE", "FB_RECIPES_DIR")}
    os.environ.update(FB_CLUSTERS_FILE=str(here / "clusters.yaml"), FB_RECIPES_DIR=str(here / "recipes"))
    try:
        yield DagBag(dag_folder=str(REPO / "dags")).dags["factorybench_smoke"]
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_smoke_run_with_the_monitoring_stack(dag, stack):
    from factorybench.monitoring.server import read_series
    from factorybench.results.query import Results

    run = dag.test(run_conf={"transport": "ssh", "max_requests": 24})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    row = Results().runs("smoke", limit=1)[0]
    assert row.dag_run_id == run.run_id and row.status == "success", row.message
    detail = Results().run(row.id)
    by_name = {m.name: m for m in detail.metrics if m.step_index is None}

    # Side by side: the client's figures and the server's own, each with its source.
    assert by_name["output_tokens_per_s"].source == "client" and by_name["ttft_p50_ms"].value >= 50
    assert by_name["server_generation_tokens"].source == "server"
    assert by_name["server_ttft_p50_ms"].source == "server" and by_name["server_ttft_p50_ms"].value >= 50
    assert by_name["server_output_tokens_per_s"].value > 0 and by_name["server_running_peak"].value <= 4
    # The validity cross-check: all 24 requests (4 of them warm-up) as the client and the server count them.
    assert by_name["server_generation_tokens"].value == by_name["client_output_tokens_all"].value > 0
    assert by_name["server_client_token_agreement"].value == 1.0
    assert by_name["server_client_token_agreement"].source == "derived"
    assert by_name["server_requests"].value == 24
    # Node figures from Prometheus over the run window, from the node-exporter the job started.
    assert by_name["node_memory_used_peak_bytes"].value > 0 and by_name["node_memory_used_peak_bytes"].source == "server"

    archive = Path(row.archive_url)
    rows = read_series((archive / "server_metrics" / "series.parquet").read_bytes())
    assert {r["run_id"] for r in rows} == {run.run_id} and {r["step"] for r in rows} >= {0}
    check = json.loads((archive / "monitoring" / "token_check.json").read_text())
    assert check["conclusive"] and check["agree"] and check["client"] == check["server"]
    window = json.loads((archive / "window" / "window.json").read_text())
    assert window["job_id"] == row.job_ids[0] and window["start"] < window["end"]
    cluster = json.loads((archive / "monitoring" / "cluster.json").read_text())
    assert cluster["selector"] == f'slurm_job_id="{row.job_ids[0]}"' and cluster["series"]["node_cpu"] > 0
    assert json.loads((archive / "live" / "pushes.json").read_text())["pushes"] >= 1
    assert not list(Path(stack["FILE_SD_DIR"]).glob(f"fb-{row.job_ids[0]}.json*"))  # the job removed its targets

    # The Pushgateway holds the run's metrics after the run has ended (pushed by the archive task).
    pushed = subprocess.run(["curl", "-sf", stack["PUSHGATEWAY_URL"] + "/metrics"], capture_output=True, text=True,
                            check=True).stdout
    from prometheus_client.parser import text_string_to_metric_families

    held = {(s.name, s.labels.get("job"), s.labels.get("run_id"), s.labels.get("step")): s.value
            for f in text_string_to_metric_families(pushed) for s in f.samples if s.labels.get("recipe") == "smoke"}
    run_group = ("factorybench_run", run.run_id, "all")
    assert held[("fb_output_tokens_per_s", *run_group)] == by_name["output_tokens_per_s"].value
    assert held[("fb_server_generation_tokens", *run_group)] == by_name["server_generation_tokens"].value
    assert held[("fb_run_valid", "factorybench_run", run.run_id, None)] == 1.0
    assert held[("fb_output_tokens_per_s", "factorybench_latest", run.run_id, "all")] == \
        by_name["output_tokens_per_s"].value
    assert not any(job == "factorybench_live" for _, job, _, _ in held)  # live progress ends with the load
