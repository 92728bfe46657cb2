"""What the Airflow plugin registers for the UI, importable at no cost.

Airflow imports plugins in every process, each task's included, but only its API server serves
them. So the UI app (FastAPI routes, Jinja2, Airflow's security module: seconds of imports) is
built on the first request that reaches it, not when the plugin is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

PREFIX = "/factorybench"  # factorybench.airflow.links builds the report link under the same prefix
RUN_TAB, NAV, CLUSTER_NAV, DAG_TAB = "benchmark", "benchmarks", "slurm-clusters", "benchmark-trends"  # url_routes


class LazyApp:
    """An ASGI app that imports `module:attribute` on its first call and hands every call to it."""

    def __init__(self, target: str):
        self.target = target
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            module, _, name = self.target.partition(":")
            self._app = getattr(importlib.import_module(module), name)
        return self._app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


FASTAPI_APPS = [{"app": LazyApp("factorybench.ui.app:app"), "url_prefix": PREFIX, "name": "factorybench"}]
EXTERNAL_VIEWS = [
    {"name": "Benchmarks", "href": f"{PREFIX}/", "destination": "nav", "url_route": NAV, "nav_top_level": True,
     "icon": f"{PREFIX}/static/icon.svg"},
    {"name": "SLURM clusters", "href": f"{PREFIX}/clusters", "destination": "nav", "category": "browse",
     "url_route": CLUSTER_NAV},
    {"name": "Benchmark", "href": f"{PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}", "destination": "dag_run",
     "url_route": RUN_TAB},
    {"name": "Benchmark trends", "href": f"{PREFIX}/dags/{{DAG_ID}}", "destination": "dag", "url_route": DAG_TAB},
]
