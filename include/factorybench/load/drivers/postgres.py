"""sql-postgres and vector-pgvector over asyncpg.

Each process holds one connection per concurrent request in a plain queue, not asyncpg's
Pool: a Pool resets every connection on release (an extra round trip per query) and would
reset `hnsw.ef_search` with it. A connection that breaks is replaced on its next use, so a
server that comes back is used again and one that is gone shows as connection errors.
"""

from __future__ import annotations

import asyncio
import struct
from time import perf_counter

import asyncpg
import numpy as np

from factorybench.load.config import LoadConfig
from factorybench.load.drivers.base import Driver, OpError, Outcome
from factorybench.load.drivers.vectors import Prebuilt, VectorSet
from factorybench.load.samples import ErrorClass

_OPS = 65536  # the operation mix repeats after this many requests


class _Connections:
    """Up to n connections; a broken one is dropped and reopened by the next request that needs it."""

    def __init__(self, dsn: str, n: int, timeout_s: float, setup=None):
        self.dsn, self.timeout_s, self.setup = dsn, timeout_s, setup
        self._free: asyncio.LifoQueue = asyncio.LifoQueue()
        for _ in range(n):
            self._free.put_nowait(None)

    async def acquire(self) -> asyncpg.Connection:
        conn = await self._free.get()
        if conn is None or conn.is_closed():
            try:
                conn = await asyncpg.connect(self.dsn, timeout=min(self.timeout_s, 30))
                if self.setup is not None:
                    await self.setup(conn)
            except BaseException:
                self._free.put_nowait(None)
                raise
        return conn

    async def fill(self) -> None:
        """Open every connection before the step, so no request waits for a connect; failures are left
        to the requests, which record them."""
        conns = await asyncio.gather(*(self.acquire() for _ in range(self._free.qsize())), return_exceptions=True)
        for conn in conns:
            if isinstance(conn, asyncpg.Connection):
                self.release(conn)

    def release(self, conn: asyncpg.Connection) -> None:
        self._free.put_nowait(None if conn.is_closed() else conn)

    async def close(self) -> None:
        while not self._free.empty():
            conn = self._free.get_nowait()
            if conn is not None:
                await conn.close()


class _Postgres(Driver):
    _conns: _Connections | None = None

    async def _setup(self, conn: asyncpg.Connection) -> None:
        """Per-connection settings (codecs, GUCs)."""

    async def open(self, connections: int, phase: str | None) -> None:
        self._conns = _Connections(self.config.target, connections, self.config.timeout_s, self._setup)
        await self._conns.fill()

    async def close(self) -> None:
        if self._conns is not None:
            await self._conns.close()

    async def admin(self, *statements: str) -> None:
        """Setup statements outside the measurement, on a connection of their own."""
        conn = await asyncpg.connect(self.config.target, timeout=30)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def _timed(self, method: str, statement: str, *args) -> tuple[float, float, object]:
        assert self._conns is not None
        conn = await self._conns.acquire()
        try:
            t0 = perf_counter()
            result = await getattr(conn, method)(statement, *args)
            return t0, perf_counter(), result
        finally:
            self._conns.release(conn)

    def classify(self, exc: Exception) -> tuple[ErrorClass, str, int | None]:
        if isinstance(exc, asyncpg.PostgresError) and not isinstance(
                exc, (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.AdminShutdownError,
                      asyncpg.exceptions.CannotConnectNowError)):
            return ErrorClass.SERVER, f"{type(exc).__name__}: {exc}"[:300], None
        if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError)):
            return ErrorClass.DROPPED, repr(exc)[:300], None
        return super().classify(exc)


class SQLDriver(_Postgres):
    """Reads and writes by random key on a table of `rows` rows."""

    def __init__(self, config: LoadConfig):
        super().__init__(config)
        s = config.sql
        rng = np.random.default_rng(s.seed)
        self._reads = (rng.random(_OPS) < s.read_ratio).tolist()
        self._keys = rng.integers(0, s.rows, _OPS).tolist()
        self._value = "y" * s.value_bytes
        self._read = s.query or f"SELECT v FROM {s.table} WHERE k = $1"
        self._write = s.write_query or f"UPDATE {s.table} SET v = $2 WHERE k = $1"

    async def prepare(self) -> None:
        s = self.config.sql
        if s.create:
            await self.admin(f"DROP TABLE IF EXISTS {s.table}",
                             f"CREATE TABLE {s.table} (k bigint PRIMARY KEY, v text)",
                             f"INSERT INTO {s.table} SELECT g, repeat('x', {s.value_bytes}) "
                             f"FROM generate_series(0, {s.rows - 1}) AS g", f"ANALYZE {s.table}")

    def op(self, i: int, phase: str | None) -> str:
        return "read" if self._reads[i % _OPS] else "write"

    async def call(self, i: int, op: str) -> Outcome:
        key = self._keys[i % _OPS]
        if op == "read":
            args = (key,) if "$1" in self._read else ()
            t0, t1, _ = await self._timed("fetch", self._read, *args)
        else:
            args = (key, self._value) if "$2" in self._write else (key,) if "$1" in self._write else ()
            t0, t1, _ = await self._timed("execute", self._write, *args)
        return Outcome(t0, t1)


def _vector_bytes(row: np.ndarray) -> bytes:
    """pgvector's binary format: dimension (int16), unused (int16), float4 values, big-endian."""
    return struct.pack(">HH", len(row), 0) + row.astype(">f4").tobytes()


class PgvectorDriver(_Postgres):
    """A table (id bigint, embedding vector(dim)) with an HNSW index (or none: exact), `<->`/`<=>` queries."""

    def __init__(self, config: LoadConfig):
        super().__init__(config)
        self.vectors = VectorSet(config.vector)
        v = config.vector
        self._ops, self._dist = ("vector_cosine_ops", "<=>") if v.metric == "cosine" else ("vector_l2_ops", "<->")
        self._insert = f"INSERT INTO {v.collection} (id, embedding) VALUES ($1, $2)"
        self._query = f"SELECT id FROM {v.collection} ORDER BY embedding {self._dist} $1 LIMIT {v.k}"

    async def prepare(self) -> None:
        v = self.config.vector
        statements = ["CREATE EXTENSION IF NOT EXISTS vector", f"DROP TABLE IF EXISTS {v.collection}",
                      f"CREATE TABLE {v.collection} (id bigint PRIMARY KEY, embedding vector({v.dim}))"]
        if v.index.kind == "hnsw":  # built before the inserts, as Chroma and Qdrant index while inserting
            statements.append(f"CREATE INDEX ON {v.collection} USING hnsw (embedding {self._ops}) "
                              f"WITH (m = {v.index.m}, ef_construction = {v.index.ef_construction})")
        await self.admin(*statements)

    async def _setup(self, conn: asyncpg.Connection) -> None:
        await conn.set_type_codec("vector", schema="public", format="binary", encoder=lambda b: b,
                                  decoder=lambda b: b)
        await conn.execute(f"SET hnsw.ef_search = {self.config.vector.index.ef_search}")

    async def open(self, connections: int, phase: str | None) -> None:
        await super().open(connections, phase)
        v = self.config.vector
        if phase == "insert":
            self._bodies = Prebuilt(self._batch, -(-v.count // v.insert_batch), v.count * v.dim)
        else:
            self._bodies = Prebuilt(lambda q: _vector_bytes(self.vectors.queries[q]), v.queries, v.queries * v.dim)
            self.vectors.kth_distance  # the exact answers, before the step: never inside a timed loop

    def _batch(self, i: int) -> list[tuple[int, bytes]]:
        ids, rows = self.vectors.batch(i)
        return [(n, _vector_bytes(row)) for n, row in zip(ids, rows)]

    def op(self, i: int, phase: str | None) -> str:
        return "insert" if phase == "insert" else "query"

    async def call(self, i: int, op: str) -> Outcome:
        if op == "insert":
            rows = self._bodies[i]
            t0, t1, _ = await self._timed("executemany", self._insert, rows)
            return Outcome(t0, t1, items=len(rows))
        q = i % self.config.vector.queries
        t0, t1, records = await self._timed("fetch", self._query, self._bodies[q])
        if not isinstance(records, list):
            raise OpError(ErrorClass.PROTOCOL, f"unexpected result {records!r}")
        return Outcome(t0, t1, recall=self.vectors.recall(q, [r[0] for r in records]))
