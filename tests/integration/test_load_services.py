"""kv-redis and sql-postgres against real servers on 127.0.0.1: Redis (started here) and the PostgreSQL
that scripts/postgres.sh keeps on 127.0.0.1:5432 for the test suite."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
import redis
from devstack import free_port

from factorybench.load import LoadConfig, ProfileConfig, run_load
from factorybench.load.engine import run_coroutine

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def redis_server() -> Iterator[tuple[str, subprocess.Popen]]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: run scripts/services/ensure.sh redis"
    port = free_port()
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait(5)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A brand-new database on the suite's PostgreSQL server, dropped afterwards."""
    name = f"fb_load_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    try:
        run_coroutine(admin(f"CREATE DATABASE {name}"))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 (scripts/postgres.sh starts it): {exc}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    run_coroutine(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_redis_get_set_mix(redis_server) -> None:
    url, _ = redis_server
    config = LoadConfig(target=url, protocol="kv-redis", kv={"keys": 500, "read_ratio": 0.75, "value_bytes": 64},
                        profile=ProfileConfig(kind="concurrent", streams=4, max_requests=2000, warmup_requests=100))
    result = run_load(config)
    s = result.summary
    assert (s.requests, s.errors) == (1900, 0)
    assert set(s.ops) == {"get", "set"} and 0.7 < s.ops["get"] / 1900 < 0.8
    assert s.ops_per_s == pytest.approx(s.request_rate) and s.e2e_ms.p50 and s.ttft_ms.p50 == s.e2e_ms.p50
    client = redis.Redis.from_url(url)
    assert client.dbsize() == 500 and len(client.get("fb:7") or b"") == 64  # preloaded, then overwritten alike
    assert not s.sanity  # no LLM checks for a key-value store


def test_redis_killed_mid_run_stops_the_load(redis_server) -> None:
    url, proc = redis_server
    timer = threading.Timer(1.0, proc.kill)
    timer.start()
    started = time.monotonic()
    try:
        s = run_load(LoadConfig(target=url, protocol="kv-redis", kv={"keys": 100},
                                profile=ProfileConfig(kind="concurrent", streams=4, duration_s=60))).summary
    finally:
        timer.cancel()
    assert time.monotonic() - started < 6
    assert s.aborted and s.abort_reason and s.abort_reason.startswith("service unreachable")
    assert s.requests > 100 and s.errors < 20 and set(s.errors_by_class) == {"connect"}


def test_postgres_reads_and_writes_by_key(pg_url: str) -> None:
    config = LoadConfig(target=pg_url, protocol="sql-postgres",
                        sql={"rows": 2000, "read_ratio": 0.8, "value_bytes": 32},
                        profile=ProfileConfig(kind="constant", rate=200, max_requests=400, max_concurrency=4))
    s = run_load(config).summary
    assert (s.requests, s.errors) == (400, 0) and set(s.ops) == {"read", "write"}
    assert s.ops_per_s == pytest.approx(s.request_rate)

    async def table() -> tuple[int, int]:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetchval("SELECT count(*) FROM fb_kv"), \
                await conn.fetchval("SELECT count(*) FROM fb_kv WHERE v LIKE 'y%'")
        finally:
            await conn.close()

    rows, written = run_coroutine(table())
    assert rows == 2000 and 0 < written <= s.ops["write"]  # writes may hit a key twice


def test_postgres_custom_query_and_server_errors(pg_url: str) -> None:
    base = dict(target=pg_url, protocol="sql-postgres", profile=ProfileConfig(kind="concurrent", streams=2,
                                                                              max_requests=50))
    run_load(LoadConfig(**base, sql={"rows": 100}))
    s = run_load(LoadConfig(**base, sql={"create": False, "query": "SELECT count(*) FROM fb_kv WHERE k < $1"})).summary
    assert (s.requests, s.errors, s.ops) == (50, 0, {"read": 50})
    s = run_load(LoadConfig(**base, sql={"create": False, "query": "SELECT nope FROM fb_kv WHERE k = $1"})).summary
    assert s.errors_by_class == {"server": 50} and not s.aborted  # the server answered: not unreachable


def test_postgres_unreachable_fails_before_the_run() -> None:
    from factorybench.errors import LoadError

    with pytest.raises(LoadError, match="sql-postgres: could not prepare"):
        run_load(LoadConfig(target=f"postgresql://postgres@127.0.0.1:{free_port()}/x", protocol="sql-postgres",
                            profile=ProfileConfig(max_requests=1)))
