"""Property test: hostile strings in any string value of a recipe, a run's conf or a cluster
profile either are rejected (naming file, key path and reason) or render a batch script that,
run under bash with stub commands on PATH, runs nothing but the service command, with its argv
intact, under exactly the #SBATCH directives the values give.

The header is parsed as sbatch parses it: directives are read until the first line that is
neither blank nor a comment.
"""

from __future__ import annotations

import copy
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from factorybench.errors import RecipeError
from factorybench.recipe import apply_overrides, load_recipe
from factorybench.recipe.cluster import ClusterProfile
from factorybench.recipe.params import SPECS, overrides
from factorybench.slurm.script import AUTO_PORT_BASE, AUTO_PORT_SPAN, build_job_spec, sbatch_lines

REPO = Path(__file__).resolve().parents[2]
JOB_ID = "4242"
STUBS = ("module", "apptainer", "svc", "srun", "hostname")
# A stub records its name and argv as NUL-separated fields, prefixed by the count.
STUB = """#!/bin/bash
printf '%s\\0' "$#" "${0##*/}" "$@" >> "$FB_STUB_LOG"
[ "${0##*/}" = hostname ] && printf 'stubhost\\n'
exit 0
"""
# Any command that is not a stub (or a builtin) is recorded too, instead of just failing.
NOT_FOUND = "() { printf '%s\\0' \"$#\" NOT-FOUND \"$@\" >> \"$FB_STUB_LOG\"; return 127; }"

BASE = {
    "name": "hostile", "description": "property test", "schedule": None, "tags": ["t"],
    "cluster": {"profile": "dev"},
    "service": {
        "kind": "sim", "command": ["svc", "--port", "{port}", "--model", "{model}"], "model": "m-1",
        "image": "/images/svc.sif", "apptainer_args": ["--cleanenv"], "args": ["--flag"], "port": "auto",
        "env": {"PLAIN": "value"}, "modules": ["env/release/2024.1"],
        "secrets": {"TOKEN": {"variable": "tok"}},
        "resources": {"partition": "cpu", "account": "p1", "qos": "default", "nodes": 1, "ntasks": 1,
                      "cpus": 2, "gpus": 1, "mem": "4G", "time": "00:10:00"},
    },
    "readiness": {"path": "/health"},
    "monitoring": {"metrics_path": "/metrics"},
}

hostile_bits = st.sampled_from([
    ";", "&&", "|", "$(touch /tmp/x)", "`id`", "${IFS}", "\n", "\r", "'", '"', "\\", "#SBATCH --x=1", "%",
    "{port}", "{model}", "$FB_PORT", " ", "\t", "*", "~", "!", "--", "-", "\x00", "\u2028", "é",
])
hostile = st.lists(st.one_of(hostile_bits, st.text(max_size=6)), min_size=1, max_size=6).map("".join)


def string_leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every string value (and every mapping key, as ("key", path)) in a JSON tree."""
    out: list[tuple] = []
    if isinstance(node, str):
        out.append(path)
    elif isinstance(node, dict):
        for k, v in node.items():
            out.append(("key", *path, k))
            out += string_leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += string_leaves(v, (*path, i))
    return out


def clean_recipe_data() -> dict:
    """BASE as the schema fills it in: every string the recipe ends up holding, client included."""
    from factorybench.recipe.schema import Recipe

    return Recipe.model_validate(BASE).model_dump(mode="json", exclude_none=True)


LEAVES = string_leaves(clean_recipe_data())
# Free text the script carries (shell-quoted): where an escape would matter, so drawn half the time.
QUOTED = [p for p in LEAVES if p[:2] in (("service", "command"), ("service", "args"), ("service", "apptainer_args"),
                                         ("service", "env")) or p in (("service", "model"), ("service", "image"))]
PROFILE = {"transport": "ssh", "workdir": "/tmp/fb-hostile-jobs", "node_address": "{node}",
           "shebang": "#!/bin/bash", "env": {"PATH": "@STUBS@", "LANG": "C.UTF-8"}}
PROFILE_LEAVES = [("workdir",), ("node_address",), ("env", "LANG"), ("key", "env", "LANG")]


def mutate(data: dict, path: tuple, value: str) -> dict:
    data = copy.deepcopy(data)
    is_key = path[0] == "key"
    *parents, leaf = path[1:] if is_key else path
    node = data
    for p in parents:
        node = node[p]
    if is_key:
        node[value] = node.pop(leaf)
    else:
        node[leaf] = value
    return data


def sbatch_header(script: str) -> list[str]:
    """The directives sbatch reads: #SBATCH lines up to the first non-comment, non-blank line."""
    out = []
    for line in script.split("\n")[1:]:
        if line.startswith("#SBATCH"):
            out.append(line)
        elif line.strip() and not line.startswith("#"):
            break
    return out


def read_log(path: Path) -> list[list[str]]:
    fields = path.read_bytes().decode("utf-8", "surrogateescape").split("\0") if path.exists() else []
    calls, i = [], 0
    while i < len(fields) - 1:
        n = int(fields[i])
        calls.append(fields[i + 1:i + 2 + n])
        i += 2 + n
    return calls


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    d = tmp_path_factory.mktemp("stub-bin")
    for name in STUBS:
        (d / name).write_text(STUB)
        (d / name).chmod(0o755)
    return d


def expected_argv(recipe) -> list[str]:
    """What the service command's argv must be: placeholders replaced, nothing else changed."""
    svc = recipe.service
    port = str(AUTO_PORT_BASE + int(JOB_ID) % AUTO_PORT_SPAN) if svc.port == "auto" else str(svc.port)

    def fill(word: str) -> str:
        return re.sub(r"\{port\}|\{model\}",
                      lambda m: port if m.group() == "{port}" else (svc.model if svc.model is not None
                                                                   else m.group()), word)

    words = [*svc.command, *svc.args]
    if svc.image:
        words = ["apptainer", "exec", *(["--nv"] if svc.resources.gpus else []), *svc.apptainer_args, svc.image,
                 *words]
    return [fill(w) for w in words]


def run_script(script: str, stubs: Path) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    with tempfile.TemporaryDirectory(prefix="fb-hostile-") as tmp:
        log = Path(tmp) / "calls"
        env = {"PATH": str(stubs), "SLURM_JOB_ID": JOB_ID, "FB_STUB_LOG": str(log),
               "BASH_FUNC_command_not_found_handle%%": NOT_FOUND}
        script_path = Path(tmp) / "job.sh"
        script_path.write_bytes(script.encode("utf-8", "surrogateescape"))
        proc = subprocess.run(["/bin/bash", str(script_path)], env=env, capture_output=True, timeout=20, cwd=tmp)
        return proc, read_log(log)


def check_runs_only_the_service(recipe, profile: ClusterProfile, stubs: Path) -> None:
    spec = build_job_spec(recipe, profile, "t123", "h")
    res = recipe.service.resources
    clean = [f"#SBATCH {line}" for line in sbatch_lines(spec.name, res, profile.workdir, spec.stdout, spec.stderr)]
    header = sbatch_header(spec.script)
    assert header == clean, spec.script
    assert all(re.fullmatch(r"#SBATCH --[a-z-]+=\S+", line) for line in header), header
    proc, calls = run_script(spec.script, stubs)
    port = AUTO_PORT_BASE + int(JOB_ID) % AUTO_PORT_SPAN if recipe.service.port == "auto" else recipe.service.port
    assert proc.returncode == 0, (proc.stderr, spec.script)
    assert proc.stdout.decode() == f"factorybench: job {JOB_ID} on stubhost port {port}\n", spec.script
    modules = [["module", "load", m] for m in recipe.service.modules]
    service = expected_argv(recipe)
    assert calls == [*modules, ["hostname"], [service[0].rsplit("/", 1)[-1], *service[1:]]], spec.script


def profile_with(stubs: Path, path: tuple | None = None, value: str | None = None) -> ClusterProfile:
    data = copy.deepcopy(PROFILE)
    data["env"]["PATH"] = str(stubs)
    if path is not None:
        data = mutate(data, path, value)
    return ClusterProfile.model_validate(data)


def assert_rejection_names_file_key_and_reason(path: Path, mutated: tuple, info: RecipeError) -> None:
    assert info.path == str(path)
    target = ".".join(str(p) for p in (mutated[1:-1] if mutated[0] == "key" else mutated))
    assert info.problems
    for loc, why in info.problems:
        assert why.strip(), info
        assert target.startswith(loc) or loc.startswith(target.split(".")[0]), (loc, target)
        assert f"{path}: {loc or '<top level>'}: {why}" in str(info)


def test_every_string_leaf_is_covered():
    """A new string field in the schema is fuzzed automatically: the leaves come from the model."""
    names = {".".join(map(str, p)) for p in LEAVES}
    for expected in ("name", "service.command.0", "service.image", "service.resources.time",
                     "service.resources.partition", "service.modules.0", "key.service.env.PLAIN",
                     "service.env.PLAIN", "key.service.secrets.TOKEN", "service.secrets.TOKEN.variable",
                     "readiness.path", "client.protocol", "schedule" if BASE["schedule"] else "description"):
        assert expected in names, sorted(names)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.one_of(st.sampled_from(QUOTED), st.sampled_from(LEAVES)), value=hostile, with_image=st.booleans())
@example(path=("service", "resources", "time"), value="\n00:10:00", with_image=True)
@example(path=("service", "model"), value="x{port}y", with_image=True)
@example(path=("service", "args", 0), value="a\x00b", with_image=False)
def test_hostile_recipe_values(stubs, tmp_path, path, value, with_image):
    data = clean_recipe_data()
    if not with_image:
        assume(path[:2] != ("service", "command") or path[2:] != (0,))
        data["service"].pop("image")
    data = mutate(data, path, value)
    recipe_file = tmp_path / "hostile.yaml"
    recipe_file.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        recipe = load_recipe(recipe_file)
    except RecipeError as exc:
        event("rejected")
        assert_rejection_names_file_key_and_reason(recipe_file, path, exc)
        return
    event("rendered and run")
    check_runs_only_the_service(recipe, profile_with(stubs), stubs)


STRING_PARAMS = [s for s in SPECS if "string" in s.schema.get("type", []) or s.schema.get("type") == "array"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.sampled_from(STRING_PARAMS), value=hostile)
@example(spec=next(s for s in SPECS if s.name == "time_limit"), value="\n00:10:00")
@example(spec=next(s for s in SPECS if s.name == "partition"), value="cpu\n")
def test_hostile_conf_values(stubs, tmp_path, spec, value):
    """Conf goes through the Param's JSON schema (as Airflow checks it), then the recipe schema."""
    value = [value] if spec.schema.get("type") == "array" else value
    try:
        jsonschema.validate(value, spec.schema)
    except jsonschema.ValidationError:
        return  # the REST API answers 400 before anything runs
    recipe_file = tmp_path / "hostile.yaml"
    recipe_file.write_text(yaml.safe_dump(clean_recipe_data()))
    recipe = load_recipe(recipe_file)
    try:
        recipe = apply_overrides(recipe, overrides({spec.name: value}, recipe), f"{recipe_file} (with run overrides)")
    except RecipeError as exc:
        assert exc.path == f"{recipe_file} (with run overrides)"
        assert [loc for loc, _ in exc.problems] and all(loc.startswith(spec.path) for loc, _ in exc.problems), exc
        return
    if recipe.cluster.transport is None or spec.name != "transport":
        check_runs_only_the_service(recipe, profile_with(stubs), stubs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PROFILE_LEAVES), value=hostile)
def test_hostile_cluster_profile_values(stubs, path, value):
    from pydantic import ValidationError

    try:
        profile = profile_with(stubs, path, value)
    except ValidationError:
        return
    recipe = load_recipe_from(clean_recipe_data())
    check_runs_only_the_service(recipe, profile, stubs)


def load_recipe_from(data: dict):
    from factorybench.recipe.schema import Recipe

    return Recipe.model_validate(data)


def test_stub_harness_detects_an_injection(stubs):
    """The harness itself can fail: a script that runs one extra command is caught."""
    recipe = load_recipe_from(clean_recipe_data())
    spec = build_job_spec(recipe, profile_with(stubs), "t123", "h")
    proc, calls = run_script(spec.script.replace("exec ", "touch /tmp/x; exec ", 1), stubs)
    assert ["NOT-FOUND", "touch", "/tmp/x"] in calls
    broken = spec.script.replace("#SBATCH --time", "\n#SBATCH --time", 1).replace("#SBATCH --time", "x\n#SBATCH --time")
    assert [line.split("=")[0] for line in sbatch_header(broken)][-1] != "#SBATCH --time"
    assert len(sbatch_header(broken)) < len(sbatch_header(spec.script))
