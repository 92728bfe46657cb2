"""A scriptable stand-in for slurmrestd, and access to the recorded REST fixtures."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

FIXTURES = Path(__file__).parents[2] / "fixtures" / "rest"
RECORDED = ("v0.0.37", "v0.0.38", "v0.0.40", "v0.0.41", "v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45")
ALL_VERSIONS = ("v0.0.37", "v0.0.38", "v0.0.39", *RECORDED[2:])


def fixture(*parts: str) -> Any:
    return json.loads(FIXTURES.joinpath(*parts).read_text())


def make_jwt(exp: float, user: str = "root") -> str:
    """An unsigned JWT with the claims `scontrol token` puts in (only `exp` matters here)."""
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc({'exp': int(exp), 'iat': int(time.time()), 'sun': user})}.c2ln"


class FakeSlurmrestd:
    """Routes are (method, path) → handler(request) returning (status, json body)."""

    def __init__(self, versions: tuple[str, ...] = ("v0.0.42",), slurmdb: tuple[str, ...] = (),
                 openapi_path: str = "/openapi/v3"):
        self.routes: dict[tuple[str, str], Callable[[web.Request], tuple[int, Any]]] = {}
        self.requests: list[tuple[str, str, dict, Any]] = []
        paths = {f"/slurm/{v}/job/{{job_id}}": {} for v in versions}
        paths.update({f"/slurmdb/{v}/job/{{job_id}}": {} for v in slurmdb})
        self.on("GET", openapi_path, lambda r: (200, {"paths": paths}))
        self.accepts: Callable[[str | None], bool] = lambda token: True
        self.server: TestServer | None = None

    def on(self, method: str, path: str, handler: Callable[[web.Request], tuple[int, Any]] | tuple[int, Any]):
        self.routes[(method, path)] = handler if callable(handler) else (lambda r, h=handler: h)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path, dict(request.headers), body))
        if not self.accepts(request.headers.get("X-SLURM-USER-TOKEN")):
            return web.json_response({"errors": [{"error": "Authentication failure", "error_number": 1007}]},
                                     status=401)
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return web.json_response({"errors": [{"error": "Unable to find path", "error_number": 9001}]},
                                     status=404)
        status, doc = handler(request)
        return web.json_response(doc, status=status)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app)
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()


@pytest.fixture
async def fake():
    server = FakeSlurmrestd()
    yield server
    await server.close()
