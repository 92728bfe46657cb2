"""The simulator's aiohttp application and ways to run it.

`make_app(config)` for aiohttp's test client or an own runner; `SimServer` (an async
context manager) to run one on a real port in tests and benchmarks; `serve()` to run
until cancelled (the CLI).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from factorybench.sim import api_ollama, api_openai
from factorybench.sim._http import ENGINE_KEY
from factorybench.sim.config import SimConfig
from factorybench.sim.engine import Engine
from factorybench.sim.metrics import CONTENT_TYPE


async def health(request: web.Request) -> web.Response:
    if request.app[ENGINE_KEY].ready:
        return web.Response(text="ok")
    return web.Response(status=503, text="starting")


async def version(request: web.Request) -> web.Response:
    from factorybench.provenance import fb_version
    return web.json_response({"version": f"factorybench-sim {fb_version()}"})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[ENGINE_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _start_engine(app: web.Application) -> None:
    app[ENGINE_KEY].start(asyncio.get_running_loop())


async def _stop_engine(app: web.Application) -> None:
    app[ENGINE_KEY].stop()


def make_app(config: SimConfig | None = None) -> web.Application:
    """A fresh app with its own engine, scheduler, RNGs and metrics registry."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ENGINE_KEY] = Engine(config or SimConfig())
    app.on_startup.append(_start_engine)
    app.on_cleanup.append(_stop_engine)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/version", version)
    api_openai.add_routes(app)
    api_ollama.add_routes(app)
    return app


def engine_of(app: web.Application) -> Engine:
    """The app's engine (scheduler state, metrics) for tests and embedding callers."""
    return app[ENGINE_KEY]


class SimServer:
    """A simulator on a real socket: `async with SimServer(cfg) as s: ... s.url ...`.

    Port 0 picks a free port; `port` and `url` give the one bound.
    """

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1",
                 port: int = 0):
        self.app = make_app(config)
        self.host = host
        self.port = port
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def engine(self) -> Engine:
        return self.app[ENGINE_KEY]

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024,
                           reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(config: SimConfig, host: str = "127.0.0.1", port: int = 8000,
                on_listening: Callable[[str], None] | None = None) -> None:
    """Run until cancelled; `on_listening(url)` is called once the socket is bound."""
    server = SimServer(config, host, port)
    await server.start()
    try:
        if on_listening is not None:
            on_listening(server.url)
        await asyncio.Event().wait()
    finally:
        await server.stop()
