"""A client that cannot keep up must be flagged, not reported as a slow server."""

from __future__ import annotations

import asyncio
import time

from factorybench.load import LoadConfig, ProfileConfig, arun_load
from factorybench.load.config import DatasetConfig, Lengths


def _config(url: str) -> LoadConfig:
    return LoadConfig(target=url, model="m", dataset=DatasetConfig(pool_size=4, output_tokens=Lengths(mean=4)),
                      profile=ProfileConfig(kind="constant", rate=50, max_requests=25))


async def test_blocked_event_loop_marks_run_invalid(server_url: str) -> None:
    loop = asyncio.get_running_loop()

    def hog() -> None:  # 40 ms of CPU every 60 ms, as a saturated client would do
        end = time.perf_counter() + 0.04
        while time.perf_counter() < end:
            pass
        handle[0] = loop.call_later(0.02, hog)

    handle = [loop.call_later(0.0, hog)]
    try:
        s = (await arun_load(_config(server_url))).summary
    finally:
        handle[0].cancel()
    assert not s.valid
    assert any("event-loop lag" in r for r in s.invalid_reasons)
    assert any("lateness" in r for r in s.invalid_reasons)


async def test_idle_client_is_valid(server_url: str) -> None:
    s = (await arun_load(_config(server_url))).summary
    assert s.valid, s.invalid_reasons
    assert s.client.loop_lag_ms.count > 10
