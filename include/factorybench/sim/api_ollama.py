"""Ollama-compatible endpoints: /api/generate, /api/chat (NDJSON), /api/tags, /api/version.

Streaming answers one `done:false` line per chunk, then a `done:true` line with Ollama's
statistics (nanoseconds). Ollama puts scheduler waiting into load_duration, and so do we.
A full queue answers 503, as OLLAMA_MAX_QUEUE does.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from factorybench.sim._http import (ENGINE_KEY, BadRequest, drop_connection, positive_int,
                                    read_json, stream_response)
from factorybench.sim.engine import Dropped, Generation, InjectedError
from factorybench.sim.model import QueueFull, count_tokens

VERSION = "0.12.6"


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _ns(seconds: float) -> int:
    return max(0, int(seconds * 1e9))


def _stats(gen: Generation) -> dict[str, Any]:
    return {"done": True, "done_reason": "length",
            "total_duration": _ns(gen.end - gen.arrival),
            "load_duration": _ns(gen.start - gen.arrival),
            "prompt_eval_count": gen.prompt_tokens,
            "prompt_eval_duration": _ns(gen.first_token_at - gen.start),
            "eval_count": gen.generated,
            "eval_duration": _ns(gen.end - gen.first_token_at)}


def _num_predict(body: dict[str, Any], default: int) -> int:
    options = body.get("options") or {}
    value = options.get("num_predict")
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return default  # -1 / -2 mean "until the context is full": bounded here
    return positive_int(value, "options.num_predict", default)


def _chat_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("messages must be a list")
    return sum(count_tokens(m.get("content") or "") for m in messages if isinstance(m, dict))


def _prompt_tokens(body: dict[str, Any]) -> int:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    return count_tokens(prompt) + count_tokens(body.get("system") or "")


async def _generate(request: web.Request, chat: bool) -> web.StreamResponse:
    arrival = time.monotonic()
    engine = request.app[ENGINE_KEY]
    if not engine.ready:
        return error(503, "server is starting up")
    try:
        body = await read_json(request)
        prompt_tokens = _chat_tokens(body) if chat else _prompt_tokens(body)
        max_tokens = _num_predict(body, engine.config.default_max_tokens)
    except BadRequest as e:
        return error(400, str(e))
    model = body.get("model") or engine.config.model
    created_at = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    head = f'{{"model":{json.dumps(model)},"created_at":"{created_at}",'
    try:
        async with engine.generation(arrival, prompt_tokens, max_tokens) as gen:
            if body.get("stream", True):
                return await _stream(request, gen, head, chat)
            try:
                await gen.run()
            except Dropped:
                drop_connection(request)
                return web.Response(status=500)  # never reaches the closed socket
            out: dict[str, Any] = {"model": model, "created_at": created_at}
            if chat:
                out["message"] = {"role": "assistant", "content": gen.text}
            else:
                out["response"] = gen.text
            out.update(_stats(gen))
            return web.json_response(out)
    except QueueFull:
        return error(503, "server busy, please try again.  maximum pending requests exceeded")
    except InjectedError:
        return error(500, "injected fault (error_rate)")


async def _stream(request: web.Request, gen: Generation, head: str,
                  chat: bool) -> web.StreamResponse:
    if chat:
        pre = (head + '"message":{"role":"assistant","content":"').encode()
        post = b'"},"done":false}\n'
        final_head = head + '"message":{"role":"assistant","content":""},'
    else:
        pre = (head + '"response":"').encode()
        post = b'","done":false}\n'
        final_head = head + '"response":"",'
    resp = await stream_response(request, "application/x-ndjson")
    try:
        async for words, last in gen.chunks():
            data = pre + b"".join(words) + post
            if last:
                stats = json.dumps(_stats(gen), separators=(",", ":"))[1:]  # drop the "{"
                data += (final_head + stats + "\n").encode()
            await resp.write(data)
    except Dropped:
        drop_connection(request)
    except ConnectionError:
        pass  # the client went away; the engine counts the request as aborted
    return resp


async def generate(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=False)


async def chat(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=True)


async def tags(request: web.Request) -> web.Response:
    model = request.app[ENGINE_KEY].config.model
    return web.json_response({"models": [{
        "name": model, "model": model, "modified_at": "2026-01-01T00:00:00Z", "size": 0,
        "digest": "0" * 64,
        "details": {"format": "gguf", "family": "sim", "parameter_size": "0B",
                    "quantization_level": "none"}}]})


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": VERSION})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/generate", generate)
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/version", version)
