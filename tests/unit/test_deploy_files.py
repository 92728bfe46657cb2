"""The deployment files against the tested layout. No Docker or Kubernetes here, so the files are
parsed and compared with what `FB_EXECUTOR=celery scripts/airflow.sh plan` says the celery stack runs
(tests/e2e/test_celery_stack.py runs exactly that): the same components and worker count, the same
environment names and settings, the same image, and every path the environment names reachable in
the containers (bind mount, volume, or baked into the image by the Dockerfile)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# Settings the dev stack sets differently on purpose, and why.
DEV_ONLY = {"AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "a dev machine picks up a new recipe in 10 s"}
# Names the Helm chart sets itself, and the value that makes it do so.
CHART_SETS = {"AIRFLOW__CORE__EXECUTOR": ("executor",), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("data", "metadataSecretName"),
              "AIRFLOW__CELERY__BROKER_URL": ("redis", "enabled"),
              "AIRFLOW__CELERY__RESULT_BACKEND": ("data", "metadataSecretName"),  # defaults to the metadata DB
              "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": ("apiServer",)}


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FB_"))}
    env.update(FB_EXECUTOR="celery", AIRFLOW_HOME=str(tmp_path_factory.mktemp("plan")))
    out = subprocess.run(["bash", str(REPO / "scripts" / "airflow.sh"), "plan"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def helm() -> dict:
    return yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())


def airflow_services(compose: dict) -> dict[str, dict]:
    image = compose["x-airflow"]["image"]
    return {name: s for name, s in compose["services"].items() if s.get("image") == image}


def kind(value: str) -> str:
    if "://" in value:
        return "url"
    return "path" if value.startswith("/") else "setting"


def in_repo(value: str) -> str | None:
    """A plan path under the repo, as the repo-relative path the deployments must provide."""
    return os.path.relpath(value, REPO) if kind(value) == "path" and Path(value).is_relative_to(REPO) else None


def dockerfile_copies() -> dict[str, str]:
    """COPY SRC DEST lines of the Dockerfile: repo path -> path in the image."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^COPY (?:--\S+ )*(\S+) (\S+)$",
                                                        (REPO / "Dockerfile").read_text(), re.M)}


def provided(rel: str, target: str, mounts: dict[str, str]) -> bool:
    """Is repo path `rel` at `target` through one of `mounts` (repo path -> container path)? The repo
    itself (FB_HOME) is where its parts keep their relative paths."""
    if rel == ".":
        return any(dst == f"{target}/{src}" for src, dst in mounts.items())
    return any(rel == src and target == dst or rel.startswith(src + "/") and target == dst + rel[len(src):]
               for src, dst in mounts.items())


def test_compose_runs_the_same_components_with_the_same_worker_count(plan, compose):
    services = airflow_services(compose)
    running = Counter()
    for name, s in services.items():
        if name != "airflow-init":
            running[" ".join(s["command"])] += (s.get("deploy") or {}).get("replicas", 1)
    assert running == Counter(plan["components"])
    init = " ".join(services["airflow-init"]["command"])
    assert plan["init"] == ["db migrate", "pools"]
    assert "airflow db migrate" in init and "scripts/pools.sh" in init
    assert {"postgres", "redis"} <= set(compose["services"])


def test_compose_sets_every_name_the_stack_sets_alike(plan, compose):
    for name, service in airflow_services(compose).items():
        env = service["environment"]
        assert set(plan["env"]) <= set(env), (name, set(plan["env"]) - set(env))
        for key, value in plan["env"].items():
            theirs = str(env[key])
            if kind(value) == "setting" and key not in DEV_ONLY and "JWT" not in key:
                assert theirs == value, (key, theirs, value)
            elif kind(value) == "url":
                assert theirs.split("://")[0] == value.split("://")[0], (key, theirs, value)
    assert plan["env"]["FB_RESULTS_URL"].startswith("postgresql") and plan["env"]["AIRFLOW__CORE__EXECUTOR"] == \
        "CeleryExecutor"


def test_compose_mounts_every_repo_path_the_environment_names(plan, compose):
    x = compose["x-airflow"]
    binds = {v.split(":")[0].removeprefix("./"): v.split(":")[1] for v in x["volumes"] if v.startswith("./")}
    for key, value in plan["env"].items():
        if rel := in_repo(value):
            assert provided(rel, x["environment"][key], binds), (key, rel, x["environment"][key], binds)
    assert {s.get("build", x["build"]) for s in airflow_services(compose).values()} == {"."}


def test_helm_values_match_the_stack(plan, compose, helm):
    assert helm["executor"] == plan["env"]["AIRFLOW__CORE__EXECUTOR"]
    assert helm["workers"]["replicas"] == plan["workers"] == Counter(plan["components"])["celery worker"]
    assert helm["triggerer"]["enabled"] and helm["dagProcessor"]["enabled"]
    image = helm["images"]["airflow"]
    assert f"{image['repository']}:{image['tag']}" == compose["x-airflow"]["image"]
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert helm["airflowVersion"] == pinned and f"apache/airflow:{pinned}-" in (REPO / "Dockerfile").read_text()
    env = {e["name"]: str(e["value"]) for e in helm["env"]}
    secret = {s["envName"] for s in helm["secret"]}
    for key, value in plan["env"].items():
        if key in CHART_SETS:
            node = helm
            for part in CHART_SETS[key]:
                node = node[part]
            assert node, key
            continue
        assert key in env or key in secret, key
        if key in env and kind(value) == "setting" and key not in DEV_ONLY:
            assert env[key] == value, (key, env[key], value)


def test_helm_containers_reach_every_repo_path_the_environment_names(plan, helm):
    """Helm has no bind mounts: a path is baked into the image, or on a volume (the archive)."""
    env = {e["name"]: str(e["value"]) for e in helm["env"]}
    mounts = {m["name"]: m["mountPath"] for m in helm["volumeMounts"]}
    copies = dockerfile_copies()
    for key, value in plan["env"].items():
        rel = in_repo(value)
        if rel is None:
            continue
        target = env[key]
        on_volume = any(target.startswith(path + "/") for path in mounts.values())
        assert on_volume or provided(rel, target, copies), (key, rel, target)
    assert "pools.sh" in " ".join(helm["migrateDatabaseJob"]["args"])
