"""What the HTTP vector databases (Chroma, Qdrant) share: a session, JSON calls, error classes."""

from __future__ import annotations

import json
from time import perf_counter
from typing import Any

import aiohttp

from factorybench.errors import LoadError
from factorybench.load.config import LoadConfig
from factorybench.load.drivers.base import Driver, OpError
from factorybench.load.drivers.vectors import Prebuilt, VectorSet
from factorybench.load.samples import ErrorClass, error_for_status


class HttpVectorDriver(Driver):
    """Insert and query over JSON; the subclass says which paths and bodies."""

    def __init__(self, config: LoadConfig):
        super().__init__(config)
        self.base = config.target.rstrip("/")
        self.vectors = VectorSet(config.vector)
        self._session: aiohttp.ClientSession | None = None

    def _new_session(self, connections: int) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0),
                                     headers={"Content-Type": "application/json", **self.config.headers},
                                     timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))

    async def open(self, connections: int, phase: str | None) -> None:
        self._session = self._new_session(connections)
        v = self.config.vector
        if phase == "insert":
            self._bodies = Prebuilt(self.insert_body, -(-v.count // v.insert_batch), v.count * v.dim)
        else:
            self._bodies = Prebuilt(self.query_body, v.queries, v.queries * v.dim)
            self.vectors.kth_distance  # the exact answers, before the step: never inside a timed loop

    def insert_body(self, i: int) -> bytes:
        """The payload of insert request i (batch i)."""
        raise NotImplementedError

    def query_body(self, q: int) -> bytes:
        """The payload of a search for query vector q."""
        raise NotImplementedError

    def body(self, i: int, op: str) -> bytes:
        return self._bodies[i if op == "insert" else i % self.config.vector.queries]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def op(self, i: int, phase: str | None) -> str:
        return "insert" if phase == "insert" else "query"

    async def send(self, method: str, path: str, body: bytes | None,
                   ok: tuple[int, ...] = (200,)) -> tuple[float, float, int, bytes]:
        """(send instant, receive instant, status, body) of one call; any other status raises OpError."""
        assert self._session is not None
        t0 = perf_counter()
        async with self._session.request(method, self.base + path, data=body) as resp:
            data = await resp.read()
            t1 = perf_counter()
        if resp.status not in ok:
            raise OpError(error_for_status(resp.status), data[:300].decode(errors="replace"), resp.status)
        return t0, t1, resp.status, data

    async def admin(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        """A setup call outside the measurement (its own session); returns the decoded JSON."""
        async with self._new_session(1) as session:
            self._session, saved = session, self._session
            try:
                _, _, _, data = await self.send(method, path, None if body is None else json.dumps(body).encode(), ok)
            except OpError as e:
                raise LoadError(f"{self.config.protocol.value}: {method} {path} answered HTTP {e.status}: "
                                f"{e.detail}") from None
            finally:
                self._session = saved
        return json.loads(data) if data else None

    def classify(self, exc: Exception) -> tuple[ErrorClass, str, int | None]:
        if isinstance(exc, aiohttp.ClientConnectorError):
            return ErrorClass.CONNECT, repr(exc)[:300], None
        if isinstance(exc, aiohttp.ClientError):
            return ErrorClass.DROPPED, repr(exc)[:300], None
        return super().classify(exc)
