"""Concurrency limits: a pool per cluster profile (max_concurrent_jobs) and max_active_runs per recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from factorybench.errors import RecipeError
from factorybench.recipe import load_clusters, load_recipe, recipe_hash
from factorybench.recipe.cluster import pool_name, pools

REPO = Path(__file__).resolve().parents[2]
HOLDERS = ("submit_service", "wait_service_running", "discover_endpoint", "run_load")


def smoke(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((REPO / "recipes" / "smoke.yaml").read_text())
    data.update(changes)
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def clusters_with(tmp_path: Path, **limits) -> dict:
    data = yaml.safe_load((REPO / "config" / "clusters.yaml").read_text())
    for name, n in limits.items():
        data[name]["max_concurrent_jobs"] = n
    path = tmp_path / "clusters.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_clusters(path)


def test_the_shipped_meluxina_profile_has_a_pool_of_eight():
    found = pools(load_clusters(REPO / "config" / "clusters.yaml"))
    assert found == {"factorybench_meluxina": {"slots": 8, "include_deferred": True,
                                               "description": found["factorybench_meluxina"]["description"]}}


def test_a_bad_limit_names_the_profile_and_key(tmp_path):
    with pytest.raises(RecipeError, match=r"dev\.max_concurrent_jobs: Input should be greater than or equal to 1"):
        clusters_with(tmp_path, dev=0)


def test_max_active_runs_defaults_to_one_is_checked_and_is_in_no_hash(tmp_path):
    assert load_recipe(smoke(tmp_path)).max_active_runs == 1
    four = load_recipe(smoke(tmp_path, max_active_runs=4))
    assert four.max_active_runs == 4
    assert recipe_hash(four) == recipe_hash(load_recipe(REPO / "recipes" / "smoke.yaml"))
    with pytest.raises(RecipeError, match="max_active_runs: Input should be less than or equal to 64"):
        load_recipe(smoke(tmp_path, max_active_runs=65))


@pytest.mark.airflow
def test_the_dag_factory_assigns_the_cluster_pool_and_max_active_runs(tmp_path):
    from factorybench.airflow.dag_factory import build_dag

    path = smoke(tmp_path, max_active_runs=3)
    dag = build_dag(path, clusters_with(tmp_path, dev=2))
    assert dag.max_active_runs == 3
    assert {t.task_id: t.pool for t in dag.tasks if t.pool != "default_pool"} == \
        dict.fromkeys(HOLDERS, pool_name("dev"))
    # A run's later tasks outrank other runs' submits when a slot frees up.
    assert {t.weight_rule for t in dag.tasks} == {"upstream"}
    unlimited = build_dag(path, clusters_with(tmp_path))
    assert {t.pool for t in unlimited.tasks} == {"default_pool"}
