"""Results-layer fixtures: a fresh results database on SQLite and on the PostgreSQL server."""

from __future__ import annotations

import uuid

import pytest

from factorybench.results.database import dispose_all

PG_ADMIN = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")


def _pg_admin():
    import psycopg2

    conn = psycopg2.connect(**PG_ADMIN, connect_timeout=5)
    conn.autocommit = True
    return conn


@pytest.fixture
def pg_url():
    """A brand-new PostgreSQL database, dropped afterwards."""
    import psycopg2

    name = f"fb_results_{uuid.uuid4().hex[:8]}"
    try:
        admin = _pg_admin()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    dispose_all()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def results_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/results.db"
        dispose_all()
    else:
        yield request.getfixturevalue("pg_url")
