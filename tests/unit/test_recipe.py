from pathlib import Path

import pytest
import yaml

from factorybench.cli import main as cli
from factorybench.errors import RecipeError
from factorybench.recipe import apply_overrides, load_clusters, load_recipe
from factorybench.recipe.schema import time_to_minutes

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "recipes" / "smoke.yaml"


def write(tmp_path, data, name="r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def base() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def problems(path) -> dict[str, str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.path == str(path)
    return dict(info.value.problems)


@pytest.mark.parametrize("recipe", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_are_valid(recipe):
    assert load_recipe(recipe).name


def test_typo_key_is_named_with_its_path(tmp_path):
    data = base()
    data["service"]["resources"]["partiton"] = data["service"]["resources"].pop("partition")
    found = problems(write(tmp_path, data))
    assert found == {"service.resources.partiton": "unknown key (check its spelling)"}


def test_typo_in_load_engine_section_is_named(tmp_path):
    data = base()
    data["client"]["profile"]["stremas"] = 3
    assert "client.profile.stremas" in problems(write(tmp_path, data))


def test_wrong_type_and_missing_field(tmp_path):
    data = base()
    data["service"]["resources"]["gpus"] = "four"
    del data["service"]["command"]
    found = problems(write(tmp_path, data))
    assert "integer" in found["service.resources.gpus"]
    assert found["service.command"] == "required key is missing"


def test_all_problems_reported_at_once_and_message_names_file(tmp_path):
    data = base()
    data["nmae"] = "x"
    data["readiness"]["deadline_s"] = -1
    p = write(tmp_path, data)
    with pytest.raises(RecipeError) as info:
        load_recipe(p)
    text = str(info.value)
    assert f"{p}: nmae: unknown key" in text and f"{p}: readiness.deadline_s:" in text


@pytest.mark.parametrize("field,value", [
    ("service.resources.partition", "cpu; rm -rf /"),
    ("service.resources.account", "$(touch /tmp/pwned)"),
    ("service.modules", ["Apptainer`id`"]),
    ("service.env", {"A;B": "x"}),
    ("service.command", "python -m x; id"),
])
def test_injection_in_validated_fields_is_rejected(tmp_path, field, value):
    data = base()
    node = data
    *parents, leaf = field.split(".")
    for k in parents:
        node = node[k]
    node[leaf] = value
    assert any(k.startswith(field) for k in problems(write(tmp_path, data)))


def test_invalid_yaml_names_line(tmp_path):
    found = problems(write(tmp_path, "name: x\nservice: [unclosed\n"))
    assert any(k.startswith("line ") for k in found)


def test_schedule_forms(tmp_path):
    for ok in (None, "@daily", "0 2 * * *"):
        data = base()
        data["schedule"] = ok
        load_recipe(write(tmp_path, data))
    data = base()
    data["schedule"] = "every night"
    assert "schedule" in problems(write(tmp_path, data))


def test_time_formats():
    assert time_to_minutes("30") == 30
    assert time_to_minutes("01:00:00") == 60
    assert time_to_minutes("1-00:00:00") == 1440
    assert time_to_minutes("2-12") == 2 * 1440 + 720
    assert time_to_minutes("00:00:30") == 1
    with pytest.raises(ValueError):
        time_to_minutes("soon")


def test_overrides_are_revalidated():
    recipe = load_recipe(SMOKE)
    assert apply_overrides(recipe, {"client.profile.streams": 8}, "x").client.profile.streams == 8
    with pytest.raises(RecipeError) as info:
        apply_overrides(recipe, {"client.profile.streams": 0}, "smoke (overrides)")
    assert "client.profile.streams" in dict(info.value.problems)


def test_cluster_profiles_expand_env_and_require_vars(tmp_path):
    p = write(tmp_path, {"c": {"transport": "ssh", "workdir": "${WD:-/tmp/x}", "env": {"PATH": "${P}"}}})
    with pytest.raises(RecipeError) as info:
        load_clusters(p, env={})
    assert "P is not set" in str(info.value)
    assert load_clusters(p, env={"P": "/bin"})["c"].workdir == "/tmp/x"


def test_validate_cli_exit_codes(tmp_path, capsys):
    assert cli(["validate", str(REPO / "recipes")]) == 0
    data = base()
    data["client"]["protocl"] = "openai-chat"
    bad = write(tmp_path, data, "bad.yaml")
    assert cli(["validate", str(SMOKE), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: client.protocl: unknown key" in err


def set_key(data: dict, dotted: str, value) -> dict:
    node = data
    *parents, leaf = dotted.split(".")
    for k in parents:
        node = node[k]
    node[leaf] = value
    return data


@pytest.mark.parametrize("field,value", [
    ("service.resources.time", "\n00:10:00"),
    ("service.resources.time", "00:10:00\n"),
    ("service.resources.partition", "cpu\n"),
    ("service.resources.mem", "16G\n"),
    ("service.modules", ["Apptainer/1.3\n"]),
    ("service.env", {"A\n": "x"}),
    ("name", "smoke\n"),
    ("readiness.path", "/health\n"),
])
def test_a_trailing_or_leading_newline_is_rejected_with_file_key_and_reason(tmp_path, field, value):
    """Python's `$` matches before a final newline: every pattern must match the whole value."""
    p = write(tmp_path, set_key(base(), field, value))
    with pytest.raises(RecipeError) as info:
        load_recipe(p)
    (loc, why), = info.value.problems
    assert loc.startswith(field) and ("is not" in why or "lowercase" in why), (loc, why)
    assert f"{p}: {loc}: " in str(info.value)


def test_the_stored_value_is_the_validated_value(tmp_path):
    recipe = load_recipe(write(tmp_path, set_key(base(), "service.resources.time", 45)))
    assert recipe.service.resources.time == "45" and recipe.service.resources.time_minutes == 45


@pytest.mark.parametrize("schedule", ["99 99 * * *", "0 2 * *", "0 2 * * * *", "0 2 * * mon\n", "@fortnightly"])
def test_bad_crons_are_rejected(tmp_path, schedule):
    found = problems(write(tmp_path, set_key(base(), "schedule", schedule)))
    assert "not a valid 5-field cron expression" in found["schedule"]


@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/15 1-5 * * mon-fri", "@daily", "@quarterly", "@once", None])
def test_good_crons_and_airflow_presets_pass(tmp_path, schedule):
    assert load_recipe(write(tmp_path, set_key(base(), "schedule", schedule))).schedule == schedule


def test_overrides_with_a_newline_are_rejected_by_pydantic_too():
    with pytest.raises(RecipeError) as info:
        apply_overrides(load_recipe(SMOKE), {"service.resources.time": "\n00:10:00"}, "smoke (overrides)")
    assert "service.resources.time" in dict(info.value.problems)


@pytest.mark.parametrize("name,good,bad", [
    ("partition", "cpu", "cpu\n"), ("time_limit", "00:10:00", "\n00:10:00"), ("time_limit", "1-00", "00:10:00\n"),
    ("port", "auto", "auto\n"),
])
def test_param_patterns_reject_a_newline_in_python_and_ecma(name, good, bad):
    """The same JSON schema is checked by Airflow (jsonschema: Python re.search) and by the
    trigger form (ECMA RegExp): `$(?!\\n)` makes both reject a trailing newline."""
    import jsonschema

    from factorybench.recipe.params import SPECS

    schema = next(s for s in SPECS if s.name == name).schema
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    pattern = schema["pattern"]
    assert pattern.startswith("^") and pattern.endswith("$(?!\\n)")


def test_params_reject_a_newline_through_airflow():
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    from factorybench.recipe.params import SPECS

    spec = next(s for s in SPECS if s.name == "time_limit")
    assert Param("00:10:00", **spec.schema).resolve("01:00:00") == "01:00:00"
    with pytest.raises(ParamValidationError):
        Param("00:10:00", **spec.schema).resolve("\n00:10:00")


def test_profile_variables_expand_in_values_not_json_text(tmp_path):
    """A value with a quote or a backslash stays one string value: it neither injects keys nor
    crashes the loader."""
    p = write(tmp_path, {"c": {"transport": "${T:-ssh}", "description": "${D}", "workdir": "${WD:-/tmp/x}",
                               "env": {"PATH": "/bin"}}})
    weird = 'say "hi" \\ and \\n ${NOT_EXPANDED_AGAIN}'
    got = load_clusters(p, env={"D": weird})["c"]
    assert got.description == weird and got.transport == "ssh"
    with pytest.raises(RecipeError) as info:
        load_clusters(p, env={"D": "x", "T": 'local", "workdir": "/evil'})
    found = dict(info.value.problems)
    assert list(found) == ["c.transport"], found  # one bad value, not an injected workdir
    with pytest.raises(RecipeError) as info:
        load_clusters(p, env={})
    assert dict(info.value.problems) == {"c.description": "environment variable D is not set and has no default"}


@pytest.mark.parametrize("field,value,reason", [
    ("workdir", "/tmp/a b", "absolute path"),
    ("workdir", "/tmp/x\n#SBATCH --x", "absolute path"),
    ("workdir", "relative/dir", "absolute path"),
    ("env", {"PATH": "/bin", "A;B": "x"}, "environment variable name"),
    ("node_address", "{node}\nx", "host name"),
    ("rest", {"user": "root\n"}, "plain SLURM name"),
])
def test_cluster_profile_values_that_reach_the_script_are_checked(tmp_path, field, value, reason):
    body = {"transport": "ssh", "workdir": "/tmp/x", "env": {"PATH": "/bin"}, field: value}
    with pytest.raises(RecipeError) as info:
        load_clusters(write(tmp_path, {"c": body}), env={})
    (loc, why), = info.value.problems
    assert loc.startswith(f"c.{field}") and reason in why, (loc, why)


def test_secret_references(tmp_path):
    data = set_key(base(), "service.secrets", {
        "HF_TOKEN": {"connection": "hf", "field": "extra.token"}, "DB_PASSWORD": {"variable": "db_pw"},
        "API_KEY": {"file": "/run/secrets/api"}, "OTHER": {"env": "MY_TOKEN"}})
    secrets = load_recipe(write(tmp_path, data)).service.secrets
    assert secrets["HF_TOKEN"].describe() == "connection 'hf' (extra.token)"
    assert secrets["OTHER"].describe() == "env 'MY_TOKEN'"


@pytest.mark.parametrize("secrets,where,reason", [
    ({"T": {"connection": "a", "variable": "b"}}, "service.secrets.T", "exactly one of"),
    ({"T": {}}, "service.secrets.T", "exactly one of"),
    ({"T": {"variable": "b", "field": "login"}}, "service.secrets.T", "only to a connection"),
    ({"T": {"connection": "a", "field": "secret"}}, "service.secrets.T.field", "password, login or extra"),
    ({"T": {"token": "hunter2"}}, "service.secrets.T.token", "unknown key"),
    ({"T": "hunter2"}, "service.secrets.T", "valid dictionary"),
    ({"A B": {"env": "X"}}, "service.secrets.A B", "environment variable name"),
    ({"FB_PORT": {"env": "X"}}, "service", "reserved"),
    ({"EVIL": {"env": "X"}}, "service", "also set in service.env"),
])
def test_bad_secret_references_name_key_path_and_reason(tmp_path, secrets, where, reason):
    data = set_key(base(), "service.secrets", secrets)
    data["service"]["env"] = {"EVIL": "plain"}
    found = problems(write(tmp_path, data))
    assert any(loc.startswith(where) and reason in why for loc, why in found.items()), found
