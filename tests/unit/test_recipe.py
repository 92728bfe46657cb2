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
