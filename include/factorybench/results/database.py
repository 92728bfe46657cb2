"""One engine per results URL, with the schema migrated to the newest revision on first use.

Any SQLAlchemy URL works; SQLite is the default and PostgreSQL is what production uses. Several
processes may start at once (Celery workers, the CLI), so the migration holds a lock: an advisory
lock on PostgreSQL, a lock file beside the database on SQLite. A database made by the foundation's
`create_all` (tables but no alembic_version) is stamped as revision 0001 and then upgraded.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
_PG_LOCK_KEY = 0x66625F72  # "fb_r": one advisory lock id for factorybench's migrations
MIGRATIONS = Path(__file__).with_name("migrations")


def engine_for(url: str) -> Engine:
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            engine = _create(url)
            migrate(engine)
            _ENGINES[url] = engine
        return engine


def _create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _):  # readers (UI, CLI) never block the archive writer
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine) -> None:
    with _migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        cfg = alembic_config(conn)
        tables = set(inspect(conn).get_table_names())
        if "fb_runs" in tables and "alembic_version" not in tables:
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    db = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not db or db == ":memory:":
        yield
        return
    with open(f"{db}.migrate.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def dispose_all() -> None:
    """Close every pooled connection (tests that drop databases need this)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
