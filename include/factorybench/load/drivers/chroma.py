"""vector-chroma: Chroma's HTTP API v2, with client-side vectors (no embedding function on the server).

Checked against Chroma 1.5.9: collections are created with an `hnsw` configuration (space,
ef_construction, ef_search, max_neighbors), addressed by id for add and query. Chroma has no
exact index, so `index.kind: exact` is refused when the config is validated.
"""

from __future__ import annotations

import json

import msgspec

from factorybench.load.drivers.base import Outcome
from factorybench.load.drivers.http import HttpVectorDriver
from factorybench.load.drivers.vectors import floats_json

_COLLECTIONS = "/api/v2/tenants/default_tenant/databases/default_database/collections"


class ChromaDriver(HttpVectorDriver):
    _id: str | None = None

    async def prepare(self) -> None:
        v = self.config.vector
        await self.admin("DELETE", f"{_COLLECTIONS}/{v.collection}", ok=(200, 404))
        created = await self.admin("POST", _COLLECTIONS, {
            "name": v.collection, "get_or_create": False,
            "configuration": {"hnsw": {"space": v.metric, "ef_construction": v.index.ef_construction,
                                       "ef_search": v.index.ef_search, "max_neighbors": v.index.m}}})
        self._id = created["id"]

    async def open(self, connections: int, phase: str | None) -> None:
        if self._id is None:  # a worker process: the collection was created by the parent
            self._id = (await self.admin("GET", f"{_COLLECTIONS}/{self.config.vector.collection}"))["id"]
        await super().open(connections, phase)

    def insert_body(self, i: int) -> bytes:
        ids, rows = self.vectors.batch(i)
        return b'{"ids": %s, "embeddings": %s}' % (json.dumps([str(x) for x in ids]).encode(), floats_json(rows))

    def query_body(self, q: int) -> bytes:
        return b'{"query_embeddings": [%s], "n_results": %d, "include": ["distances"]}' % (
            floats_json(self.vectors.queries[q]), self.config.vector.k)

    async def call(self, i: int, op: str) -> Outcome:
        path = f"{_COLLECTIONS}/{self._id}"
        body = self.body(i, op)
        if op == "insert":
            t0, t1, status, _ = await self.send("POST", f"{path}/add", body, ok=(200, 201))
            return Outcome(t0, t1, items=len(self.vectors.batch(i)[0]), status=status)
        t0, t1, status, data = await self.send("POST", f"{path}/query", body)
        ids = [int(x) for x in msgspec.json.decode(data)["ids"][0]]
        return Outcome(t0, t1, recall=self.vectors.recall(i % self.config.vector.queries, ids), status=status)
