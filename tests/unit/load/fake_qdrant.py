"""A fake Qdrant REST server that checks every request's shape, for the vector-qdrant protocol tests.

No Qdrant server installs here. The shapes below follow Qdrant's published OpenAPI document
(docs/redoc/master/openapi.json, 1.19): CreateCollection, PointsBatch (PUT .../points?wait=true),
QueryRequest (POST .../points/query) and the {"result", "status", "time"} envelope. A request
that does not match gets 400 with Qdrant's error envelope, so a wrong shape shows as errors.

Search is exact when `params.exact` is true or `hnsw_ef` covers the collection; otherwise it only
looks at even ids, a crude stand-in for an approximate index, so recall drops below 1. After an
upsert the collection reports "yellow" twice before "green", like an optimizer at work.

Run: python fake_qdrant.py  (prints "fake-qdrant listening on URL"); GET /_log returns every request.
"""

from __future__ import annotations

import argparse
import asyncio
import math

from aiohttp import web

DISTANCES = {"Cosine", "Euclid", "Dot", "Manhattan"}


class Invalid(Exception):
    pass


def need(cond: bool, what: str) -> None:
    if not cond:
        raise Invalid(what)


def floats(v: object, size: int, what: str) -> list[float]:
    need(isinstance(v, list) and len(v) == size and all(isinstance(x, (int, float)) for x in v),
         f"{what}: a list of {size} numbers")
    return v  # type: ignore[return-value]


class Fake:
    def __init__(self) -> None:
        self.collections: dict[str, dict] = {}
        self.log: list[dict] = []

    def ok(self, result: object) -> web.Response:
        return web.json_response({"result": result, "status": "ok", "time": 0.0001})

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.log.append({"method": request.method, "path": request.path, "query": dict(request.query), "body": body})
        try:
            return await self.route(request, body)
        except Invalid as e:
            return web.json_response({"status": {"error": f"Format error in JSON body: {e}"}, "time": 0}, status=400)

    async def route(self, request: web.Request, body: dict | None) -> web.Response:
        parts = request.path.strip("/").split("/")
        need(parts[0] == "collections" and len(parts) >= 2, f"unknown path {request.path}")
        name, rest, method = parts[1], parts[2:], request.method
        if not rest and method == "DELETE":
            return self.ok(self.collections.pop(name, None) is not None)
        if not rest and method == "PUT":
            return self.ok(self.create(name, body))
        need(name in self.collections, f"collection {name} not found")
        c = self.collections[name]
        if not rest and method == "GET":
            status = "yellow" if c["polls_left"] > 0 else "green"
            c["polls_left"] -= 1
            return self.ok({"status": status, "optimizer_status": "ok", "points_count": len(c["points"]),
                            "indexed_vectors_count": len(c["points"]), "segments_count": 1,
                            "config": {}, "payload_schema": {}})
        if rest == ["points"] and method == "PUT":
            need(request.query.get("wait") == "true", "upsert without wait=true")
            return self.ok(self.upsert(c, body))
        if rest == ["points", "query"] and method == "POST":
            return self.ok({"points": self.query(c, body)})
        raise Invalid(f"unsupported {method} {request.path}")

    def create(self, name: str, body: dict | None) -> bool:
        need(isinstance(body, dict), "CreateCollection: an object")
        vectors = body["vectors"] if "vectors" in body else None
        need(isinstance(vectors, dict) and isinstance(vectors.get("size"), int) and vectors["size"] >= 1,
             "vectors.size: an integer >= 1")
        need(vectors.get("distance") in DISTANCES, f"vectors.distance: one of {sorted(DISTANCES)}")
        hnsw = body.get("hnsw_config") or {}
        need(set(hnsw) <= {"m", "ef_construct", "full_scan_threshold", "max_indexing_threads", "on_disk",
                           "payload_m"}, f"hnsw_config: unknown keys {sorted(hnsw)}")
        need(hnsw.get("ef_construct", 4) >= 4 and hnsw.get("full_scan_threshold", 10) >= 10,
             "hnsw_config: ef_construct >= 4, full_scan_threshold >= 10")
        need(set(body) <= {"vectors", "hnsw_config", "optimizers_config", "wal_config", "quantization_config",
                           "shard_number", "replication_factor", "on_disk_payload"}, f"unknown keys {sorted(body)}")
        self.collections[name] = {"size": vectors["size"], "distance": vectors["distance"], "points": {},
                                  "polls_left": 0}
        return True

    def upsert(self, c: dict, body: dict | None) -> dict:
        need(isinstance(body, dict) and isinstance(body.get("batch"), dict), "PointsBatch: {batch: {ids, vectors}}")
        ids, vectors = body["batch"].get("ids"), body["batch"].get("vectors")
        need(isinstance(ids, list) and all(isinstance(i, int) and i >= 0 for i in ids), "batch.ids: uint64 ids")
        need(isinstance(vectors, list) and len(vectors) == len(ids), "batch.vectors: one vector per id")
        for i, v in zip(ids, vectors):
            c["points"][i] = floats(v, c["size"], "batch.vectors[]")
        c["polls_left"] = 2
        return {"operation_id": len(self.log), "status": "completed"}

    def query(self, c: dict, body: dict | None) -> list[dict]:
        need(isinstance(body, dict), "QueryRequest: an object")
        q = floats(body.get("query"), c["size"], "query")
        limit = body.get("limit", 10)
        need(isinstance(limit, int) and limit >= 1, "limit: an integer >= 1")
        params = body.get("params") or {}
        need(set(params) <= {"hnsw_ef", "exact", "quantization", "indexed_only"}, f"params: {sorted(params)}")
        exact = params.get("exact", False) or params.get("hnsw_ef", 0) >= len(c["points"])
        ids = [i for i in c["points"] if exact or i % 2 == 0]
        if c["distance"] == "Euclid":
            scored = sorted((math.dist(q, c["points"][i]), i) for i in ids)
        else:
            def cos(v: list[float]) -> float:
                return sum(a * b for a, b in zip(q, v)) / (math.hypot(*q) * math.hypot(*v))
            scored = sorted((-cos(c["points"][i]), i) for i in ids)
        return [{"id": i, "version": 0, "score": abs(s)} for s, i in scored[:limit]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    fake = Fake()
    app = web.Application()
    app.router.add_get("/_log", lambda _: web.json_response(fake.log))
    app.router.add_route("*", "/{tail:.*}", fake.handle)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"fake-qdrant listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
