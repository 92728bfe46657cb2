"""A recipe's history in a fresh SQLite results database and archive, built once per test session."""

from __future__ import annotations

import pytest

from factorybench.report.synthetic import record_history
from factorybench.results.database import dispose_all


@pytest.fixture(scope="session")
def history(tmp_path_factory):
    """14 past runs (two of an older recipe version, one regression, one accepted change) and a
    current run of 2000 requests whose TTFT regressed, judged by the real analysis."""
    root = tmp_path_factory.mktemp("report-history")
    url = f"sqlite:///{root}/results.db"
    current = record_history(url, str(root / "archive"), current_n=2000)
    yield {"url": url, "archive": str(root / "archive"), **current}
    dispose_all()
