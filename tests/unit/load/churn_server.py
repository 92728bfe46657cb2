"""A raw asyncio HTTP/1.1 server that drops kept-alive connections, like llama.cpp's server.

Every response says `Connection: keep-alive`, yet the server never reads a second request on
a connection: when one arrives it resets the connection. A client that reuses connections
sees a failed write or a disconnect on every reused one. The server counts the requests it
answered and the connections it accepted, so a test can tell a resend from a duplicate.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ChurnServer:
    def __init__(self) -> None:
        self.answered = 0
        self.connections = 0
        self.reset_requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            body = json.loads(await reader.readexactly(length)) if length else {}
            self.answered += 1
            n = int(body.get("max_tokens", 4))
            text = " ".join(m.get("content", "") for m in body.get("messages", []))
            payload = json.dumps({
                "model": body.get("model"), "choices": [{"index": 0, "message": {"content": "tok " * n}}],
                "usage": {"prompt_tokens": len(text.split()), "completion_tokens": n}}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                         b"Keep-Alive: timeout=5, max=100\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
            await writer.drain()
            if await reader.read(1):  # a second request on this connection: never read, never answered
                self.reset_requests += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.transport.abort()


@contextmanager
def churn_server() -> Iterator[tuple[str, ChurnServer]]:
    """Runs the server on its own event loop in a thread; yields (base URL, counters)."""
    state = ChurnServer()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def serve() -> None:
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        holder["server"] = server
        holder["port"] = server.sockets[0].getsockname()[1]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{holder['port']}", state
    finally:
        server = holder["server"]
        loop.call_soon_threadsafe(server.close)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
