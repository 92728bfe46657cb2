"""The recipe's and the cluster profile's monitoring sections: defaults, and errors that name the file,
the key path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from factorybench.errors import RecipeError
from factorybench.recipe import load_clusters, load_recipe

REPO = Path(__file__).resolve().parents[3]


def test_defaults_watch_the_server_and_push_but_start_nothing():
    recipe = load_recipe(REPO / "recipes" / "smoke.yaml")
    assert recipe.monitoring.prometheus and recipe.monitoring.push and recipe.monitoring.exporters == []
    assert recipe.monitoring.interval_s == 2.0 and recipe.monitoring.token_tolerance == 0.0
    dev = load_clusters(REPO / "config" / "clusters.yaml")["dev"].monitoring
    assert dev.prometheus_url is None and dev.file_sd_dir is None and dev.selector == 'slurm_job_id="{job_id}"'


def test_profile_errors_name_the_key(tmp_path):
    path = tmp_path / "clusters.yaml"
    path.write_text(yaml.safe_dump({"site": {"transport": "local", "workdir": "/tmp", "monitoring": {
        "pushgateway_url": "ftp://gw", "file_sd_dir": "relative/dir", "dcgm_exporter": {"command": [], "port": 1}}}}))
    with pytest.raises(RecipeError) as err:
        load_clusters(path)
    text = str(err.value)
    assert str(path) in text and "site.monitoring.pushgateway_url: " in text and "http(s) URL" in text
    assert "site.monitoring.file_sd_dir: " in text and "site.monitoring.dcgm_exporter.command: " in text


def test_recipe_errors_name_the_key(tmp_path):
    recipe = yaml.safe_load((REPO / "recipes" / "smoke.yaml").read_text())
    recipe["monitoring"] = {"exporters": ["gpu"], "interval_s": 0, "token_tolerance": 2, "scrape": True}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    text = str(err.value)
    for key in ("monitoring.exporters.0", "monitoring.interval_s", "monitoring.token_tolerance",
                "monitoring.scrape: unknown key"):
        assert key in text, text
