"""HTTP helpers shared by the OpenAI and Ollama handlers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from factorybench.sim.engine import Engine

ENGINE_KEY: web.AppKey[Engine] = web.AppKey("engine", Engine)


class BadRequest(Exception):
    """The request body is invalid: answer 400 with this message."""


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"invalid JSON body: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def positive_int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{name} must be a positive integer, got {value!r}")
    return value


def drop_connection(request: web.Request) -> None:
    """Close the socket abruptly (no final chunk, no terminating zero-length chunk)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def stream_response(request: web.Request, content_type: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": content_type,
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    return resp
