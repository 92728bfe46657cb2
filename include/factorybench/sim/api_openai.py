"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models.

Streamed chunks follow vLLM's shape: for chat a role-only first chunk, then content
chunks, then an empty-delta chunk carrying finish_reason, then (with
stream_options.include_usage) a usage-only chunk with `choices: []`, then `data: [DONE]`.
Each request's JSON framing is serialised once; a chunk is prefix + words + suffix.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import struct
import time
from typing import Any

from aiohttp import web

from factorybench.sim._http import (ENGINE_KEY, BadRequest, drop_connection, positive_int,
                                    read_json, stream_response)
from factorybench.sim.engine import Dropped, Engine, Generation, InjectedError
from factorybench.sim.model import QueueFull, count_tokens

DONE = b"data: [DONE]\n\n"


def error(status: int, message: str, err_type: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": err_type, "param": None, "code": status}},
        status=status)


class _Frames:
    """Pre-serialised SSE framing of one streamed request."""

    def __init__(self, rid: str, obj: str, created: int, model: str, chat: bool):
        head = (f'data: {{"id":"{rid}","object":"{obj}","created":{created},'
                f'"model":{json.dumps(model)},"choices":[')
        self.head = head
        if chat:
            self.role = (head + '{"index":0,"delta":{"role":"assistant","content":""},'
                         '"logprobs":null,"finish_reason":null}]}\n\n').encode()
            self.pre = (head + '{"index":0,"delta":{"content":"').encode()
            self.post = b'"},"logprobs":null,"finish_reason":null}]}\n\n'
            self.finish = (head + '{"index":0,"delta":{},"logprobs":null,'
                           '"finish_reason":"length"}]}\n\n').encode()
        else:
            self.pre = (head + '{"index":0,"text":"').encode()
            self.post = b'","logprobs":null,"finish_reason":null}]}\n\n'
            self.finish = (head + '{"index":0,"text":"","logprobs":null,'
                           '"finish_reason":"length"}]}\n\n').encode()

    def usage(self, usage: dict[str, int]) -> bytes:
        return f'{self.head}],"usage":{json.dumps(usage, separators=(",", ":"))}}}\n\n'.encode()


def _usage(gen: Generation) -> dict[str, int]:
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.generated,
            "total_tokens": gen.prompt_tokens + gen.generated}


def _chat_prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    total = 0
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            total += count_tokens(content)
        elif isinstance(content, list):  # content parts: count the text ones
            total += sum(count_tokens(p.get("text", "")) for p in content if isinstance(p, dict))
    return total


def _input_tokens(value: Any, name: str) -> int:
    """Tokens of a prompt/input: a string, or token ids."""
    if isinstance(value, str):
        return count_tokens(value)
    if isinstance(value, list) and all(isinstance(t, int) for t in value):
        return len(value)
    raise BadRequest(f"{name} must be a string or a list of token ids")


def _completion_prompt_tokens(body: dict[str, Any]) -> int:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        if len(prompt) != 1:
            raise BadRequest("only one prompt per request is supported")
        prompt = prompt[0]
    return _input_tokens(prompt, "prompt")


async def _generate(request: web.Request, chat: bool) -> web.StreamResponse:
    arrival = time.monotonic()
    engine = request.app[ENGINE_KEY]
    if not engine.ready:
        return error(503, "the server is starting up", "ServiceUnavailable")
    try:
        body = await read_json(request)
        prompt_tokens = _chat_prompt_tokens(body) if chat else _completion_prompt_tokens(body)
        max_tokens = positive_int(body.get("max_completion_tokens", body.get("max_tokens")),
                                  "max_tokens", engine.config.default_max_tokens)
        if body.get("n", 1) != 1:
            raise BadRequest("only n=1 is supported")
    except BadRequest as e:
        return error(400, str(e), "BadRequestError")
    model = body.get("model") or engine.config.model
    rid = ("chatcmpl-" if chat else "cmpl-") + engine.next_id()
    try:
        async with engine.generation(arrival, prompt_tokens, max_tokens) as gen:
            if body.get("stream"):
                options = body.get("stream_options") or {}
                return await _stream(request, engine, gen, rid, model, chat,
                                     bool(options.get("include_usage")))
            try:
                await gen.run()
            except Dropped:
                drop_connection(request)
                return web.Response(status=500)  # never reaches the closed socket
            return web.json_response(_full_response(engine, gen, rid, model, chat))
    except QueueFull:
        return error(429, "the waiting queue is full", "TooManyRequests")
    except InjectedError:
        return error(500, "injected fault (error_rate)", "InternalServerError")


async def _stream(request: web.Request, engine: Engine, gen: Generation, rid: str, model: str,
                  chat: bool, include_usage: bool) -> web.StreamResponse:
    frames = _Frames(rid, "chat.completion.chunk" if chat else "text_completion",
                     engine.created, model, chat)
    resp = await stream_response(request, "text/event-stream")
    pre, post = frames.pre, frames.post
    try:
        if chat:
            await resp.write(frames.role)
        async for words, last in gen.chunks():
            data = pre + b"".join(words) + post
            if last:
                data += frames.finish
                if include_usage:
                    data += frames.usage(_usage(gen))
                data += DONE
            await resp.write(data)
    except Dropped:
        drop_connection(request)
    except ConnectionError:
        pass  # the client went away; the engine counts the request as aborted
    return resp


def _full_response(engine: Engine, gen: Generation, rid: str, model: str,
                   chat: bool) -> dict[str, Any]:
    if chat:
        choice: dict[str, Any] = {"index": 0,
                                  "message": {"role": "assistant", "content": gen.text}}
    else:
        choice = {"index": 0, "text": gen.text}
    choice.update(logprobs=None, finish_reason="length")
    return {"id": rid, "object": "chat.completion" if chat else "text_completion",
            "created": engine.created, "model": model, "choices": [choice],
            "usage": _usage(gen)}


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=True)


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=False)


def embedding_vector(text: str | list[int], dim: int, seed: int) -> list[float]:
    """A unit vector determined by the input and the seed alone."""
    digest = hashlib.blake2b(f"{seed}:{text!r}".encode(), digest_size=16).digest()
    rng = random.Random(digest)
    v = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


async def embeddings(request: web.Request) -> web.Response:
    arrival = time.monotonic()
    engine = request.app[ENGINE_KEY]
    cfg = engine.config
    if not engine.ready:
        return error(503, "the server is starting up", "ServiceUnavailable")
    try:
        body = await read_json(request)
        raw = body.get("input")
        single = isinstance(raw, str) or (isinstance(raw, list) and raw
                                          and isinstance(raw[0], int))
        inputs = [raw] if single else raw
        if not isinstance(inputs, list) or not inputs:
            raise BadRequest("input must be a string, token ids, or a non-empty list of them")
        tokens = sum(_input_tokens(x, "input") for x in inputs)
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise BadRequest("encoding_format must be float or base64")
    except BadRequest as e:
        return error(400, str(e), "BadRequestError")
    if engine.faults.draw(1).error:
        return error(500, "injected fault (error_rate)", "InternalServerError")
    try:
        await engine.embed_delay(arrival, tokens)
    except QueueFull:
        return error(429, "the waiting queue is full", "TooManyRequests")
    data = []
    for i, x in enumerate(inputs):
        vec: list[float] | str = embedding_vector(x, cfg.embed_dim, cfg.seed)
        if encoding == "base64":
            vec = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vec})
    return web.json_response({"object": "list", "data": data,
                              "model": body.get("model") or cfg.model,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def models(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    return web.json_response({"object": "list", "data": [
        {"id": engine.config.model, "object": "model", "created": engine.created,
         "owned_by": "factorybench-sim", "root": engine.config.model, "parent": None}]})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
