"""kv-redis: a GET/SET mix through redis-py's asyncio client (RESP is redis-py's business, not ours).

redis-py retries failed commands by default; a benchmark must see every failure and never
send a command twice, so its retries are switched off. The connection pool blocks when all
connections are busy instead of failing, and is opened in full before the step.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

import numpy as np
import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from factorybench.load.config import LoadConfig
from factorybench.load.drivers.base import Driver, Outcome
from factorybench.load.samples import ErrorClass

_OPS = 65536  # the operation mix repeats after this many requests
_PRELOAD_CHUNK = 1000


class RedisDriver(Driver):
    def __init__(self, config: LoadConfig):
        super().__init__(config)
        kv = config.kv
        rng = np.random.default_rng(kv.seed)
        self._reads = (rng.random(_OPS) < kv.read_ratio).tolist()
        self._keys = [f"{kv.key_prefix}{k}".encode() for k in rng.integers(0, kv.keys, _OPS).tolist()]
        self._value = b"v" * kv.value_bytes
        self._client: aioredis.Redis | None = None

    def _connect(self, connections: int) -> aioredis.Redis:
        no_retry = Retry(NoBackoff(), 0)
        pool = aioredis.BlockingConnectionPool.from_url(
            self.config.target, max_connections=connections, timeout=None, retry=no_retry,
            socket_timeout=self.config.timeout_s, socket_connect_timeout=min(self.config.timeout_s, 30))
        return aioredis.Redis(connection_pool=pool, retry=no_retry)

    async def prepare(self) -> None:
        """SET every key once, so GETs hit (pipelined MSETs, outside the measurement)."""
        kv = self.config.kv
        if not kv.preload:
            return
        client = self._connect(1)
        try:
            for start in range(0, kv.keys, _PRELOAD_CHUNK):
                stop = min(start + _PRELOAD_CHUNK, kv.keys)
                await client.mset({f"{kv.key_prefix}{k}": self._value for k in range(start, stop)})
        finally:
            await client.aclose()

    async def open(self, connections: int, phase: str | None) -> None:
        self._client = client = self._connect(connections)
        pool = client.connection_pool
        conns = await asyncio.gather(*(pool.get_connection() for _ in range(connections)), return_exceptions=True)
        for conn in conns:  # opened ahead; a failure is left to the requests, which record it
            if not isinstance(conn, BaseException):
                await pool.release(conn)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def op(self, i: int, phase: str | None) -> str:
        return "get" if self._reads[i % _OPS] else "set"

    async def call(self, i: int, op: str) -> Outcome:
        client = self._client
        assert client is not None
        key = self._keys[i % _OPS]
        t0 = perf_counter()
        if op == "get":
            await client.get(key)
        else:
            await client.set(key, self._value)
        return Outcome(t0, perf_counter())

    def classify(self, exc: Exception) -> tuple[ErrorClass, str, int | None]:
        if isinstance(exc, rexc.TimeoutError):
            return ErrorClass.TIMEOUT, repr(exc)[:300], None
        if isinstance(exc, rexc.ConnectionError):
            return ErrorClass.CONNECT, repr(exc)[:300], None
        if isinstance(exc, rexc.RedisError):
            return ErrorClass.SERVER, repr(exc)[:300], None
        return super().classify(exc)
