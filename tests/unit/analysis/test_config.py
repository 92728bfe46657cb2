"""The `checks:` schema: defaults, ReFrame tuples, errors that name their key, no heavy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from pydantic import ValidationError

from factorybench.analysis.config import ChecksConfig, ReferenceBand

RECIPE = """
checks:
  comparable_by: hash
  window: 10
  min_runs: 5
  primary: [request_rate, output_tokens_per_s, ttft_p50_ms, ttft_p99_ms, itl_p50_ms, e2e_p50_ms]
  fail_on: [regression]
  methods: [reference, zscore, mannwhitney, changepoint]
  z_threshold: 4.0
  alpha: 0.01
  min_effect: 0.05
  changepoint: {window: 50, max_pvalue: 0.001, min_magnitude: 0.0, min_segment: 3}
  references:
    dev:
      ttft_p50_ms: [50, -0.2, 0.2, ms]
  metrics:
    ttft_p99_ms: {z_threshold: 6, min_effect: 0.1}
    gpu_energy_j: {direction: lower}
"""


def error_locs(data: dict) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        ChecksConfig.model_validate(data)
    return [".".join(str(p) for p in e["loc"]) for e in exc.value.errors()]


def test_empty_section_gives_the_documented_defaults():
    cfg = ChecksConfig.model_validate({})
    assert cfg == ChecksConfig()
    assert (cfg.window, cfg.min_runs, cfg.z_threshold, cfg.alpha, cfg.min_effect) == (10, 5, 4.0, 0.001, 0.05)
    assert cfg.fail_on == ["regression"] and "ttft_p50_ms" in cfg.primary
    assert (cfg.changepoint.window, cfg.changepoint.max_pvalue, cfg.changepoint.min_segment) == (50, 0.001, 3)


def test_recipe_example_parses_with_reframe_tuples_and_overrides():
    cfg = ChecksConfig.model_validate(yaml.safe_load(RECIPE)["checks"])
    band = cfg.references_for("dev")["ttft_p50_ms"]
    assert band == ReferenceBand(value=50, lower=-0.2, upper=0.2, unit="ms")
    assert band.bounds == (40.0, 60.0)
    assert cfg.references_for("meluxina") == {}
    p99 = cfg.settings("ttft_p99_ms", "lower")
    assert (p99.z_threshold, p99.min_effect, p99.max_noise) == (6, 0.1, cfg.max_noise)
    assert cfg.settings("gpu_energy_j", None).direction == "lower"
    assert cfg.settings("request_rate", "higher").z_threshold == 4.0


def test_override_direction_wins_and_a_missing_direction_names_the_metric():
    cfg = ChecksConfig.model_validate({"metrics": {"request_rate": {"direction": "lower"}}})
    assert cfg.settings("request_rate", "higher").direction == "lower"
    with pytest.raises(ValueError, match="mystery_metric"):
        cfg.settings("mystery_metric", None)


def test_negative_reference_value_widens_by_its_magnitude():
    assert ReferenceBand.model_validate([-10, -0.1, 0.2]).bounds == (-11.0, -8.0)


@pytest.mark.parametrize("band, key", [
    ([50, 0.1, 0.2, "ms"], "references.dev.ttft_p50_ms.lower"),
    ([50, -0.1, -0.2, "ms"], "references.dev.ttft_p50_ms.upper"),
    ([50, -0.1], "references.dev.ttft_p50_ms"),
    (["fast", -0.1, 0.1], "references.dev.ttft_p50_ms.value"),
])
def test_bad_reference_tuples_name_their_key(band, key):
    assert key in error_locs({"references": {"dev": {"ttft_p50_ms": band}}})


@pytest.mark.parametrize("data, key", [
    ({"windw": 10}, "windw"),
    ({"fail_on": ["pass"]}, "fail_on.0"),
    ({"methods": ["ttest"]}, "methods.0"),
    ({"alpha": 1.5}, "alpha"),
    ({"comparable_by": "date"}, "comparable_by"),
    ({"changepoint": {"min_segment": 1}}, "changepoint.min_segment"),
    ({"changepoint": {"max_pvalue": 0}}, "changepoint.max_pvalue"),
    ({"metrics": {"ttft_p50_ms": {"direction": "up"}}}, "metrics.ttft_p50_ms.direction"),
    ({"metrics": {"ttft_p50_ms": {"z_treshold": 3}}}, "metrics.ttft_p50_ms.z_treshold"),
])
def test_field_errors_name_the_key(data, key):
    assert key in error_locs(data)


def test_cross_field_errors_say_which_fields():
    with pytest.raises(ValidationError, match="min_runs"):
        ChecksConfig(window=4, min_runs=5)
    with pytest.raises(ValidationError, match="min_segment"):
        ChecksConfig.model_validate({"changepoint": {"window": 8, "min_segment": 5}})


def test_config_is_frozen():
    with pytest.raises(ValidationError):
        ChecksConfig().window = 3


def test_config_import_stays_light_for_dag_parsing():
    code = ("import sys, factorybench.analysis, factorybench.analysis.config; "
            "print(sorted(m for m in ('numpy', 'scipy', 'airflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
