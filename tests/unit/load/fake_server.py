"""A tiny streaming server for the load tests, independent of factorybench.sim.

Run: python fake_server.py --ttft-ms 20 --itl-ms 5. The model name selects odd
behaviours: "long-line" (one 1 MB content chunk), "split" (3-byte writes),
"err-429" / "err-500" (error statuses), "no-usage" (no usage chunk), "drop" (connection
aborted after two tokens), "stall" (no token for 30 s), "ignore-prompt" (usage says 3 prompt tokens
whatever was sent, like a broken chat template), "early-stop" (half of max_tokens), "other-model"
(names another model in its responses).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import web


def _chunk(kind: str, text: str | None, model: str, role: bool = False) -> dict:
    if kind == "chat":
        delta = {"role": "assistant", "content": ""} if role else {"content": text}
        return {"object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": delta}]}
    return {"object": "text_completion", "model": model, "choices": [{"index": 0, "text": text}]}


class Server:
    def __init__(self, ttft_ms: float, itl_ms: float):
        self.ttft, self.itl = ttft_ms / 1e3, itl_ms / 1e3

    async def _tokens(self, n: int):
        """Yields token numbers at start + ttft + k * itl (absolute times, no drift)."""
        start = time.perf_counter()
        for k in range(n):
            delay = start + self.ttft + k * self.itl - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            yield k

    async def openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        kind = "chat" if request.path.endswith("chat/completions") else "text"
        model, n = body.get("model", ""), int(body.get("max_tokens", 16))
        if model.startswith("err-"):
            return web.json_response({"error": model}, status=int(model[4:]))
        if model == "early-stop":
            n = max(1, n // 2)
        text = body.get("prompt") or " ".join(m["content"] for m in body.get("messages", []))
        prompt = 3 if model == "ignore-prompt" else len(text.split())
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
        model = "someone-else" if model == "other-model" else model
        if not body.get("stream"):
            async for _ in self._tokens(n):
                pass
            choice = {"index": 0, "message": {"role": "assistant", "content": "tok " * n}} if kind == "chat" \
                else {"index": 0, "text": "tok " * n}
            return web.json_response({"model": model, "choices": [choice], "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(obj: dict | str) -> None:
            data = f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()
            if model == "split":
                for i in range(0, len(data), 3):
                    await resp.write(data[i:i + 3])
            else:
                await resp.write(data)

        if kind == "chat":
            await send(_chunk(kind, None, model, role=True))  # role-only chunk at once: must not count as TTFT
        if model == "stall":
            await asyncio.sleep(30)
        async for k in self._tokens(n):
            if model == "drop" and k == 2:
                assert request.transport is not None
                request.transport.abort()  # connection lost mid-stream
                return resp
            await send(_chunk(kind, "x" * 1_000_000 if model == "long-line" else "tok ", model))
        if model != "no-usage" and body.get("stream_options", {}).get("include_usage"):
            await send({"choices": [], "usage": usage})
        await send("[DONE]")
        return resp

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.ttft)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({"model": body.get("model"),
                                  "data": [{"embedding": [0.1] * 8, "index": i} for i in range(len(texts))],
                                  "usage": {"prompt_tokens": sum(len(t.split()) for t in texts)}})

    async def ollama(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        n = int(body.get("options", {}).get("num_predict", 16))
        chat = request.path.endswith("chat")
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        async for _ in self._tokens(n):
            line = {"message": {"role": "assistant", "content": "tok "}} if chat else {"response": "tok "}
            await resp.write((json.dumps({**line, "done": False}) + "\n").encode())
        text = body.get("prompt") or " ".join(m["content"] for m in body.get("messages", []))
        done = {"model": body.get("model"), "done": True, "eval_count": n, "prompt_eval_count": len(text.split())}
        await resp.write((json.dumps(done) + "\n").encode())
        return resp

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.ttft)
        return web.json_response({"ok": True, "got": body})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft-ms", type=float, default=20)
    ap.add_argument("--itl-ms", type=float, default=5)
    args = ap.parse_args()
    srv = Server(args.ttft_ms, args.itl_ms)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", srv.openai)
    app.router.add_post("/v1/completions", srv.openai)
    app.router.add_post("/v1/embeddings", srv.embeddings)
    app.router.add_post("/api/generate", srv.ollama)
    app.router.add_post("/api/chat", srv.ollama)
    app.router.add_post("/echo", srv.echo)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"fake-server listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop
        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
