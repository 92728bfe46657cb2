"""Fixtures: a simulator on a real port 0 socket, and a client session for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest

from factorybench.sim import SimConfig, SimServer

# Fast defaults so that the whole folder stays well under 20 s.
FAST = {"ttft_ms": 5.0, "itl_ms": 1.0}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def sim() -> Callable[..., AbstractAsyncContextManager[SimServer]]:
    """`async with sim(max_queue=0) as server:` starts a server with FAST defaults overridden."""

    @asynccontextmanager
    async def start(**fields: Any) -> AsyncIterator[SimServer]:
        async with SimServer(SimConfig(**{**FAST, **fields})) as server:
            yield server

    return start


def sse_events(raw: bytes) -> list[bytes]:
    """The `data:` payloads of an SSE body, in order."""
    out = []
    for block in raw.split(b"\n\n"):
        if block.strip():
            assert block.startswith(b"data: "), block
            out.append(block[len(b"data: "):])
    return out
