"""vector-qdrant: Qdrant's REST API (collections, batch upsert with wait=true, the query API).

No Qdrant server installs here, so the request and response shapes follow Qdrant's published
OpenAPI document (docs/redoc/master/openapi.json, version 1.19) and are tested against a fake
server that checks them. For `hnsw`, the collection is created with indexing_threshold 1 kB
and full_scan_threshold 10 kB, so even a small data set is searched through its HNSW graph,
and the queries wait until the collection is green (indexing done).
"""

from __future__ import annotations

import asyncio
import json
import time

import msgspec

from factorybench.errors import LoadError
from factorybench.load.drivers.base import Outcome
from factorybench.load.drivers.http import HttpVectorDriver
from factorybench.load.drivers.vectors import floats_json

_DISTANCE = {"l2": "Euclid", "cosine": "Cosine"}


class QdrantDriver(HttpVectorDriver):
    @property
    def _path(self) -> str:
        return f"/collections/{self.config.vector.collection}"

    async def prepare(self) -> None:
        v = self.config.vector
        await self.admin("DELETE", self._path, ok=(200, 404))
        body: dict = {"vectors": {"size": v.dim, "distance": _DISTANCE[v.metric]}}
        if v.index.kind == "hnsw":
            body["hnsw_config"] = {"m": v.index.m, "ef_construct": v.index.ef_construction,
                                   "full_scan_threshold": 10}
            body["optimizers_config"] = {"indexing_threshold": 1}
        await self.admin("PUT", self._path, body)

    async def settle(self, phase: str | None) -> None:
        """After the inserts: queries must meet the finished index, not segments still being built."""
        if phase != "insert":
            return
        deadline = time.monotonic() + self.config.vector.index_wait_s
        while True:
            info = (await self.admin("GET", self._path))["result"]
            if info["status"] == "green" and info.get("optimizer_status", "ok") == "ok":
                return
            if time.monotonic() > deadline:
                raise LoadError(f"vector-qdrant: collection {self.config.vector.collection} still "
                                f"{info['status']} after {self.config.vector.index_wait_s:g} s")
            await asyncio.sleep(0.2)

    def insert_body(self, i: int) -> bytes:
        ids, rows = self.vectors.batch(i)
        return b'{"batch": {"ids": %s, "vectors": %s}}' % (json.dumps(list(ids)).encode(), floats_json(rows))

    def query_body(self, q: int) -> bytes:
        v = self.config.vector
        params = {"exact": True} if v.index.kind == "exact" else {"hnsw_ef": v.index.ef_search}
        return b'{"query": %s, "limit": %d, "params": %s}' % (
            floats_json(self.vectors.queries[q]), v.k, json.dumps(params).encode())

    async def call(self, i: int, op: str) -> Outcome:
        body = self.body(i, op)
        if op == "insert":
            t0, t1, status, _ = await self.send("PUT", f"{self._path}/points?wait=true", body)
            return Outcome(t0, t1, items=len(self.vectors.batch(i)[0]), status=status)
        t0, t1, status, data = await self.send("POST", f"{self._path}/points/query", body)
        ids = [int(p["id"]) for p in msgspec.json.decode(data)["result"]["points"]]
        return Outcome(t0, t1, recall=self.vectors.recall(i % self.config.vector.queries, ids), status=status)
