"""The interface of non-LLM protocols: one `Driver` per service kind, called by the engine per request.

The engine keeps what is common (when to send, timing, samples, stops); a driver owns its
connections and the meaning of a request. It reports the instants around the wire I/O itself,
so encoding a batch of vectors or decoding a result never counts as the server's latency.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from factorybench.load.config import LoadConfig
from factorybench.load.samples import ErrorClass


@dataclass(slots=True)
class Outcome:
    """A successful operation: send and receive instants (perf_counter) and what it carried."""

    t0: float
    t1: float
    items: int = 1
    recall: float | None = None
    status: int | None = None


class OpError(Exception):
    """A failed operation whose class the driver already knows (an HTTP status, a server error reply)."""

    def __init__(self, error: ErrorClass, detail: str, status: int | None = None):
        super().__init__(detail)
        self.error, self.detail, self.status = error, detail[:300], status


class Driver:
    """One protocol's requests. `prepare` and `settle` run once per run, in one process."""

    def __init__(self, config: LoadConfig):
        self.config = config

    async def prepare(self) -> None:
        """Before the first step: create and fill what the run needs (tables, collections, keys)."""

    async def settle(self, phase: str | None) -> None:
        """After a step: wait until the service is ready for the next one (e.g. indexing done)."""

    async def open(self, connections: int, phase: str | None) -> None:
        """Before a step in each process: connections for up to `connections` requests at once, and any
        request payloads worth building ahead (so encoding never delays a send)."""

    async def close(self) -> None:
        """After a step in each process."""

    def op(self, i: int, phase: str | None) -> str:
        raise NotImplementedError

    async def call(self, i: int, op: str) -> Outcome:
        raise NotImplementedError

    def classify(self, exc: Exception) -> tuple[ErrorClass, str, int | None]:
        """(error class, detail, HTTP status) of a failed call."""
        if isinstance(exc, OpError):
            return exc.error, exc.detail, exc.status
        if isinstance(exc, asyncio.TimeoutError):
            return ErrorClass.TIMEOUT, f"no answer within {self.config.timeout_s:g} s", None
        if isinstance(exc, (ConnectionRefusedError, ConnectionResetError, BrokenPipeError)):
            return ErrorClass.CONNECT, repr(exc)[:300], None
        if isinstance(exc, OSError):
            return ErrorClass.CONNECT, repr(exc)[:300], None
        return ErrorClass.PROTOCOL, repr(exc)[:300], None
