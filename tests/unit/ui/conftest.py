"""The UI inside Airflow's real API-server app (`create_app`, the repo's plugin mounted at
/factorybench), a recipe's history in a temporary results database, and real tokens from the
SimpleAuthManager for users of each role."""

from __future__ import annotations

import pytest

from factorybench.results.database import dispose_all

ROLES = ("viewer", "user", "op", "admin")


@pytest.fixture(scope="session")
def ui_history(tmp_path_factory):
    """14 past runs of `smoke` (a regression, an accepted change) and a current run whose TTFT
    regressed, judged by the real analysis; and a clusters file with a `local` profile."""
    from factorybench.report.synthetic import record_history

    root = tmp_path_factory.mktemp("ui-history")
    url, archive = f"sqlite:///{root}/results.db", str(root / "archive")
    current = record_history(url, archive, runs=14, n=240, current_n=600)
    clusters = root / "clusters.yaml"
    clusters.write_text(f"local:\n  transport: local\n  workdir: {root / 'jobs'}\n  description: this machine\n")
    yield {"url": url, "archive": archive, "clusters": str(clusters), "root": root, **current}
    dispose_all()


@pytest.fixture(autouse=True)
def ui_env(ui_history, monkeypatch):
    """The app reads these per request: this package's tests see only their own results."""
    monkeypatch.setenv("FB_RESULTS_URL", ui_history["url"])
    monkeypatch.setenv("FB_ARCHIVE_URL", ui_history["archive"])
    monkeypatch.setenv("FB_CLUSTERS_FILE", ui_history["clusters"])


@pytest.fixture(scope="session")
def airflow_app(airflow_db):
    from airflow.api_fastapi.app import create_app

    return create_app("core")


@pytest.fixture(scope="session")
def client(airflow_app):
    from fastapi.testclient import TestClient

    with TestClient(airflow_app) as c:
        yield c


@pytest.fixture(scope="session")
def tokens(airflow_app) -> dict[str | None, str]:
    """A signed JWT per role, as `POST /auth/token` would issue them; None: a user with no role."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = get_auth_manager()
    return {role: manager.generate_jwt(SimpleAuthManagerUser(username=role or "nobody", role=role))
            for role in (*ROLES, None)}


@pytest.fixture
def as_role(client, tokens):
    """as_role("viewer").get(path): requests with that role's Bearer token."""
    class _As:
        def __init__(self, role):
            self.headers = {"Authorization": f"Bearer {tokens[role]}"}

        def get(self, path, **kw):
            return client.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

        def post(self, path, **kw):
            return client.post(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    return _As
