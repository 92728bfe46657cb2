"""The plugin stays cheap to import: Airflow imports it in every process, each task's included,
but only the API server serves the UI, which is built on its first request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PLUGIN = REPO / "plugins" / "factorybench_plugin.py"
HEAVY = ["factorybench.ui.app", "factorybench.ui.views", "airflow.api_fastapi.core_api.security",
         "factorybench.results.query", "numpy", "matplotlib"]


def test_importing_the_plugin_builds_no_ui(tmp_path):
    probe = (
        "import json, sys, importlib.util\n"
        "import airflow.sdk\n"
        "before = set(sys.modules)\n"
        f"spec = importlib.util.spec_from_file_location('fbplugin', {str(PLUGIN)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "views = [v['url_route'] for v in module.FactorybenchPlugin.external_views]\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules and m not in before]\n"
        "print(json.dumps({'views': views, 'heavy': heavy}))\n")
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "FB_HOME": str(REPO)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"views": ["benchmarks", "slurm-clusters", "benchmark", "benchmark-trends"], "heavy": []}


def test_the_lazy_app_builds_the_ui_once():
    from factorybench.ui.plugin import FASTAPI_APPS

    lazy = FASTAPI_APPS[0]["app"]
    from factorybench.ui import app as ui

    assert lazy.app is ui.app and lazy.app is lazy.app
