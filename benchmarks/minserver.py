"""A minimal streaming server for the speed benchmark: raw asyncio protocol, preformatted bytes.

OpenAI chat SSE only (a role-only chunk, `max_tokens` content chunks at
start + ttft + k * itl, a usage chunk, [DONE]) over HTTP/1.1 keep-alive with
chunked encoding. Several processes share the port with SO_REUSEPORT, so the
server need not be the bottleneck of a client benchmark.

    python benchmarks/minserver.py --port 0 --ttft-ms 50 --itl-ms 10 --procs 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import sys

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
_MAX_TOKENS = re.compile(rb'"max_tokens":\s*(\d+)')


def _chunk(obj: object) -> bytes:
    data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


ROLE = _chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
TOKEN = _chunk({"choices": [{"index": 0, "delta": {"content": "tok"}}]})
DONE = _chunk(b"[DONE]") + b"0\r\n\r\n"


class Stream(asyncio.Protocol):
    ttft = 0.05
    itl = 0.01

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", self.buf[:end]).group(1))  # type: ignore[union-attr]
        if len(self.buf) < end + 4 + length:
            return
        body, self.buf = self.buf[end + 4:end + 4 + length], self.buf[end + 4 + length:]
        m = _MAX_TOKENS.search(body)
        n = int(m.group(1)) if m else 16
        self.t.write(_HEAD + ROLE)  # type: ignore[attr-defined]
        start = self.loop.time()
        for k in range(n - 1):
            self.loop.call_at(start + self.ttft + k * self.itl, self.t.write, TOKEN)  # type: ignore[attr-defined]
        # The last token travels with the usage chunk and the end: timers due together may run in any order.
        last = TOKEN + _chunk({"choices": [], "usage": {"prompt_tokens": 64, "completion_tokens": n}}) + DONE
        self.loop.call_at(start + self.ttft + (n - 1) * self.itl, self.t.write, last)  # type: ignore[attr-defined]


def serve(sock: socket.socket) -> None:
    import uvloop

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Stream, sock=sock)
        await server.serve_forever()

    uvloop.run(main())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft-ms", type=float, default=50)
    ap.add_argument("--itl-ms", type=float, default=10)
    ap.add_argument("--procs", type=int, default=1)
    args = ap.parse_args()
    Stream.ttft, Stream.itl = args.ttft_ms / 1e3, args.itl_ms / 1e3
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(4096)
    print(f"minserver listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    for _ in range(args.procs - 1):
        if os.fork() == 0:
            break
    sys.stdout.close()
    serve(sock)


if __name__ == "__main__":
    main()
