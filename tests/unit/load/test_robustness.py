"""Real servers misbehave: dropped kept-alive connections, dying services, stops from outside."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest
from churn_server import churn_server
from conftest import start_server

from factorybench.load import LoadConfig, ProfileConfig, run_load
from factorybench.load.config import DatasetConfig, Lengths
from factorybench.load.engine import Stop, run_coroutine
from factorybench.load.runner import arun_load


def _config(url: str, **kw) -> LoadConfig:
    base = dict(target=url, model="m", stream=False, dataset=DatasetConfig(pool_size=8, output_tokens=Lengths(mean=4)),
                profile=ProfileConfig(kind="concurrent", streams=2, max_requests=40))
    return LoadConfig.model_validate({**base, **kw})


def test_server_dropping_kept_alive_connections_is_churn_not_errors() -> None:
    """Every reused connection is reset by the server before it reads the request: each such request
    is resent once on a fresh connection, none is lost or duplicated, and the churn is reported."""
    with churn_server() as (url, server):
        result = run_load(_config(url))
    s = result.summary
    assert (s.requests, s.errors) == (40, 0), s.errors_by_class
    assert server.answered == 40  # resent only what the server never read: no duplicates
    assert s.stale_connection_retries == server.reset_requests > 0
    assert s.connections_opened == server.connections == 40
    assert sum(x.retries for x in result.samples) == s.stale_connection_retries


def test_a_fresh_connection_that_fails_is_not_resent(server_url: str) -> None:
    """The fake server aborts mid-stream after two tokens: the server processed it, so no resend."""
    s = run_load(_config(server_url, model="drop", stream=True, profile=ProfileConfig(max_requests=6))).summary
    assert s.errors_by_class == {"dropped": 6} and s.stale_connection_retries == 0


def test_unreachable_service_trips_the_circuit_breaker() -> None:
    config = _config("http://127.0.0.1:9", profile=ProfileConfig(kind="concurrent", streams=2, duration_s=30),
                     unreachable_after=10)
    started = time.monotonic()
    s = run_load(config).summary
    assert time.monotonic() - started < 5
    assert s.aborted and s.abort_reason and s.abort_reason.startswith("service unreachable: 10 consecutive")
    assert 10 <= s.errors <= 12 and s.errors_by_class == {"connect": s.errors}


def test_stop_keeps_samples_and_cuts_in_flight_requests(server_url: str) -> None:
    """A stop from outside (a watcher): no new request, in-flight ones cut after the grace period."""
    config = _config(server_url, model="stall", stream=True, stop_grace_s=0.2,
                     profile=ProfileConfig(kind="concurrent", streams=3, duration_s=60))

    async def main():
        stop = Stop()
        asyncio.get_running_loop().call_later(0.5, stop.set, "service job 1 is CANCELLED")
        t0 = time.monotonic()
        result = await arun_load(config, stop)
        return result, time.monotonic() - t0

    result, took = run_coroutine(main())
    s = result.summary
    assert took < 3
    assert s.aborted and s.abort_reason == "service job 1 is CANCELLED"
    assert s.aborted_requests == 3 and s.errors == 0 and s.requests == 0  # cut, not counted as the server's
    assert [x.error for x in result.samples] == ["aborted"] * 3


def test_open_loop_stops_too(server_url: str) -> None:
    config = _config(server_url, stop_grace_s=0.5, profile=ProfileConfig(kind="constant", rate=50, duration_s=60))

    async def main():
        stop = Stop()
        asyncio.get_running_loop().call_later(0.5, stop.set, "stopped")
        return await arun_load(config, stop)

    s = run_coroutine(main()).summary
    assert s.aborted and 15 <= s.requests <= 40 and s.errors == 0


@pytest.mark.timeout(60)
def test_simulator_killed_mid_load_stops_the_load_within_seconds() -> None:
    proc, url = start_server([sys.executable, "-m", "factorybench.sim", "--port", "0", "--ttft-ms", "20",
                              "--itl-ms", "5"], "listening on")
    killed: list[float] = []

    def kill() -> None:
        killed.append(time.monotonic())
        proc.kill()

    timer = threading.Timer(1.5, kill)
    timer.start()
    try:
        result = run_load(LoadConfig(target=url, model="sim-model",
                                     dataset=DatasetConfig(output_tokens=Lengths(mean=8)),
                                     profile=ProfileConfig(kind="concurrent", streams=4, duration_s=60)))
    finally:
        timer.cancel()
        proc.kill()
        proc.wait(5)
    ended = time.monotonic()
    s = result.summary
    assert killed and ended - killed[0] < 5
    assert s.aborted and "service unreachable" in (s.abort_reason or "")
    assert s.requests > 10 and s.errors < 20  # a few in flight plus the breaker's ten
