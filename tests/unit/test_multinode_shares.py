"""Multi-node services without a cluster: the batch script's replica launch, endpoint discovery of
every node, the load spread over replicas and the per-replica summary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from factorybench.endpoint import discover
from factorybench.errors import RecipeError
from factorybench.load import LoadConfig
from factorybench.load.samples import Sample
from factorybench.load.stats import summarize
from factorybench.load.config import SLOConfig
from factorybench.recipe import load_clusters, load_recipe
from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.script import build_job_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clusters():
    return load_clusters(REPO / "config" / "clusters.yaml", env={**os.environ, "FB_VENV": "/opt/venv"})


def recipe_with(tmp_path: Path, name: str, **service) -> Path:
    data = yaml.safe_load((REPO / "recipes" / name).read_text())
    data["service"].update(service)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_replica_per_node_is_started_by_srun_bound_to_its_node(clusters):
    recipe = load_recipe(REPO / "recipes" / "pair-replicas.yaml")
    script = build_job_spec(recipe, clusters["pair"], "t1", "h").script
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks=2" in script
    assert "exec srun --nodes=2 --ntasks=2 --ntasks-per-node=1 bash --norc -c fb_serve" in script
    assert 'fb_serve() { FB_HOST=$(fb_host) && export FB_HOST && exec python -m factorybench.sim --host "${FB_HOST}"' \
        in script


def test_single_node_scripts_are_unchanged_by_it(clusters):
    script = build_job_spec(load_recipe(REPO / "recipes" / "smoke.yaml"), clusters["dev"], "t1", "h").script
    assert "fb_host" not in script and "srun" not in script and "\nexec python -m factorybench.sim" in script


def test_first_node_services_run_the_command_once(clusters):
    recipe = load_recipe(REPO / "recipes" / "meluxina-vllm-multinode.yaml")
    script = build_job_spec(recipe, clusters["meluxina"], "t1", "h").script
    assert "#SBATCH --nodes=2" in script and "fb_serve" not in script
    assert "\nexec bash -c " in script and "ray start --head" in script


def test_replicas_need_a_task_per_node_and_no_single_server_metrics(tmp_path):
    with pytest.raises(RecipeError, match="ntasks >= nodes"):
        load_recipe(recipe_with(tmp_path, "pair-replicas.yaml", resources={"partition": "cpu", "nodes": 2}))
    data = yaml.safe_load((REPO / "recipes" / "pair-replicas.yaml").read_text())
    data.pop("monitoring")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match="monitoring.prometheus: the server-metrics watcher scrapes one server"):
        load_recipe(tmp_path / "m.yaml")


def test_discovery_returns_every_serving_node(tmp_path, clusters):
    recipe = load_recipe(REPO / "recipes" / "pair-replicas.yaml")
    info = JobInfo("1234", JobState.RUNNING, nodes=("localhost", "127.0.0.1"))
    endpoint = discover(info, recipe, clusters["pair"])
    assert [(r.node, r.host, r.port) for r in endpoint.serving] == [("localhost", "127.0.0.1", 21234),
                                                                      ("127.0.0.1", "127.0.0.1", 21234)]
    assert endpoint.to_dict()["replicas"][1]["url"] == "http://127.0.0.1:21234"
    head = load_recipe(recipe_with(tmp_path, "pair-replicas.yaml", serve_on="first-node"))
    assert [r.node for r in discover(info, head, clusters["pair"]).serving] == ["localhost"]


def test_the_summary_reports_each_replicas_share():
    samples = [Sample(index=i, replica=i % 2, planned_s=i * 0.1, sent_s=i * 0.1, done_s=i * 0.1 + 0.05,
                      ttft_ms=10.0 + (i % 2) * 5, e2e_ms=50.0, output_tokens=4,
                      error=None if i != 3 else "http_5xx") for i in range(10)]
    summary = summarize(samples, SLOConfig())
    assert [(r.replica, r.requests, r.errors) for r in summary.replicas] == [(0, 5, 0), (1, 4, 1)]
    assert [r.share for r in summary.replicas] == [5 / 9, 4 / 9]
    assert summary.replicas[1].ttft_p50_ms == 15.0
    assert sum(r.request_rate for r in summary.replicas) == pytest.approx(summary.request_rate)
    assert summarize([s.model_copy(update={"replica": 0}) for s in samples], SLOConfig()).replicas == []


def test_only_driverless_http_protocols_take_replicas():
    assert LoadConfig(target="http://a:1", replicas=["http://b:1"]).targets == ["http://a:1", "http://b:1"]
    with pytest.raises(ValidationError, match="replicas: protocol kv-redis talks to one server"):
        LoadConfig(target="redis://a:1", protocol="kv-redis", replicas=["redis://b:1"])
