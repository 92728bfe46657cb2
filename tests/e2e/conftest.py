"""The real Airflow stack on loopback, shared by the end-to-end tests that drive it over HTTP.

Standalone (scheduler, dag-processor, triggerer, API server) with Postgres as the metadata DB,
started by scripts/airflow.sh exactly as `make airflow` starts it, with the repo's DAGs and plugin.
`airflow_sh` starts the script with other settings (the Celery layout: test_celery_stack.py).
"""

from __future__ import annotations

import pytest
from devstack import airflow_sh, fresh_postgres_db

DB = "factorybench_airflow_test"


@pytest.fixture(scope="session")
def airflow_stack(native_cluster, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-stack")
    with airflow_sh(home, {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": fresh_postgres_db(DB),
                           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "FB_RESULTS_URL": f"sqlite:///{home}/results.db",
                           "FB_ARCHIVE_URL": str(home / "archive")}) as stack:
        yield stack
