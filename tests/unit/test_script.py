import subprocess
from pathlib import Path

import pytest

from factorybench.recipe import load_clusters, load_recipe
from factorybench.recipe.schema import Recipe
from factorybench.slurm.script import build_job_spec, sbatch_lines, service_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clusters():
    return load_clusters(REPO / "config" / "clusters.yaml", env={"FB_VENV": "/opt/venv"})


def spec_for(name, clusters, **service_overrides):
    recipe = load_recipe(REPO / "recipes" / name)
    if service_overrides:
        data = recipe.model_dump(mode="json")
        data["service"].update(service_overrides)
        recipe = Recipe.model_validate(data)
    return recipe, build_job_spec(recipe, clusters[recipe.cluster.profile], "abc123", "h")


def header(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_meluxina_vllm_header_golden(clusters):
    _, spec = spec_for("meluxina-vllm.yaml", clusters)
    assert header(spec.script) == [
        "--job-name=fb-meluxina-vllm-llama3-8b-svc-abc123", "--partition=gpu", "--account=p200981",
        "--qos=default", "--nodes=1", "--ntasks=1", "--cpus-per-task=32", "--gres=gpu:4",
        "--time=01:00:00", "--chdir=/project/home/p200981/factorybench", "--output=%x-%j.out",
        "--error=%x-%j.err"]
    assert spec.script.startswith("#!/bin/bash -l\n")
    assert "module load Apptainer/1.3.6-GCCcore-13.3.0\n" in spec.script
    assert ("exec apptainer exec --nv /project/home/p200981/images/vllm-openai.sif python3 -m "
            "vllm.entrypoints.openai.api_server --model meta-llama/Llama-3.1-8B-Instruct") in spec.script
    assert spec.gres == "gpu:4" and spec.time_limit_min == 60 and spec.account == "p200981"


def test_smoke_uses_auto_port_and_venv_path(clusters):
    recipe, spec = spec_for("smoke.yaml", clusters)
    assert "export FB_PORT=$(( 20000 + SLURM_JOB_ID % 10000 ))" in spec.script
    assert '--port "${FB_PORT}"' in spec.script
    assert spec.environment["PATH"].startswith("/opt/venv/bin:")
    assert service_port(recipe, "12345") == 20000 + 2345


@pytest.mark.parametrize("evil", ["x; touch {m}", "$(touch {m})", "`touch {m}`", "a\ntouch {m}",
                                  "'; touch {m}; '", "${{IFS}}touch${{IFS}}{m}"])
def test_recipe_strings_never_run_as_commands(clusters, tmp_path, evil):
    """Render with hostile strings in every free-text field, run the script, check nothing ran."""
    marker = tmp_path / "pwned"
    payload = evil.format(m=marker)
    _, spec = spec_for("smoke.yaml", clusters, command=["echo", payload], args=[payload],
                       env={"EVIL": payload}, model=payload)
    script = spec.script.replace("set -euo pipefail", "set -uo pipefail")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "1"}, timeout=10)
    assert not marker.exists(), spec.script
    assert payload in out.stdout  # it was printed as data


def test_header_lines_for_minimal_resources():
    from factorybench.recipe.schema import Resources
    assert sbatch_lines("n", Resources(), "/w", "o", "e") == [
        "--job-name=n", "--nodes=1", "--ntasks=1", "--time=00:30:00", "--chdir=/w", "--output=o", "--error=e"]


@pytest.mark.parametrize("field,value", [
    ("partition", "cpu\n"), ("account", "p1\n"), ("qos", "\ndefault"), ("name", "fb-x\n"), ("mem", "16G\n"),
    ("gres", "gpu:4\n"), ("workdir", "/tmp/w\n"), ("workdir", "/tmp/a b"), ("stdout", "%x-%j.out\n#SBATCH"),
    ("environment", {"A\n": "x"}),
])
def test_job_spec_safety_net_matches_whole_values(field, value):
    """JobSpec re-checks what reaches sbatch or a REST body, independently of the recipe schema."""
    from factorybench.slurm.spec import JobSpec

    good = dict(name="fb-x", script="#!/bin/bash\n", workdir="/tmp/w", time_limit_min=5)
    JobSpec(**good)
    with pytest.raises(ValueError):
        JobSpec(**{**good, field: value})


def test_secrets_never_reach_the_script(clusters, tmp_path):
    """A recipe names its secrets; the rendered script holds neither their values nor their names'
    values (they arrive in the job's environment at submit time)."""
    recipe = load_recipe(REPO / "recipes" / "smoke.yaml")
    data = recipe.model_dump(mode="json")
    data["service"]["secrets"] = {"HF_TOKEN": {"variable": "hf_token"}}
    recipe = Recipe.model_validate(data)
    spec = build_job_spec(recipe, clusters["dev"], "abc123", "h")
    assert "HF_TOKEN" not in spec.script and "hf_token" not in spec.script
    assert "HF_TOKEN" not in spec.environment
