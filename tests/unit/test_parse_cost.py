"""DAG parsing stays cheap: building every recipe's DAG imports none of the heavy modules.

(The time it takes is measured by benchmarks/dag_parse.py, not here.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

HEAVY = ["numpy", "pandas", "pyarrow", "scipy", "aiohttp", "sqlalchemy.orm", "fsspec", "jinja2",
         "factorybench.pipeline", "factorybench.load.engine", "factorybench.results.query",
         "airflow.providers.ssh"]


def test_parsing_every_recipe_imports_nothing_heavy(tmp_path):
    probe = (
        "import json, sys\n"
        "import airflow.sdk\n"
        "before = set(sys.modules)\n"
        "from factorybench.airflow.dag_factory import build_dags\n"
        "dags = build_dags()\n"
        f"print(json.dumps({{'dags': sorted(dags), 'heavy': [m for m in {HEAVY!r} "
        "if m in sys.modules and m not in before]}))\n")
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "FB_HOME": str(REPO)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "factorybench_smoke" in got["dags"]
    assert got["heavy"] == []
