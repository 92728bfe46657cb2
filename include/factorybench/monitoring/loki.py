"""Job stdout/stderr to Grafana Loki's push API (POST /loki/api/v1/push, JSON body).

The body is Loki's documented JSON form: {"streams": [{"stream": {labels}, "values":
[["<unix ns as a string>", "<line>"], ...]}]}. Lines carry no time of their own, so each gets
the push time plus its index in nanoseconds: order is kept and no two lines collide. Requests
are split to stay under `max_bytes` (Loki's default limit is 4 MiB). Snappy-compressed protobuf
is not implemented.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

from factorybench.errors import FactorybenchError

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
PATH = "/loki/api/v1/push"


class LokiError(FactorybenchError):
    pass


def bodies(labels: dict[str, str], streams: dict[str, str], now_ns: int | None = None,
           max_bytes: int = 1 << 20) -> list[bytes]:
    """The JSON request bodies for `streams` (name -> text), each labelled with `labels` + stream."""
    for key in labels:
        if not _LABEL.match(key) or key == "stream":
            raise ValueError(f"Loki label name {key!r} is not allowed")
    base = time.time_ns() if now_ns is None else now_ns
    out: list[bytes] = []
    batch: list[dict] = []
    size = 0
    for name, text in streams.items():
        lines = (text or "").splitlines()
        values: list[list[str]] = []
        for i, line in enumerate(lines):
            values.append([str(base + i), line])
            size += len(line) + 40
            if size >= max_bytes:
                batch.append({"stream": {**labels, "stream": name}, "values": values})
                out.append(json.dumps({"streams": batch}).encode())
                batch, values, size = [], [], 0
        if values:
            batch.append({"stream": {**labels, "stream": name}, "values": values})
    if batch:
        out.append(json.dumps({"streams": batch}).encode())
    return out


def push_logs(url: str, labels: dict[str, str], streams: dict[str, str], timeout_s: float = 5.0) -> int:
    """Push and return the number of lines; LokiError when Loki refuses (it answers 204 on success)."""
    lines = 0
    for body in bodies(labels, streams):
        req = urllib.request.Request(url.rstrip("/") + PATH, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                if resp.status not in (200, 204):
                    raise LokiError(f"Loki {url}: HTTP {resp.status}")
        except urllib.error.HTTPError as exc:
            raise LokiError(f"Loki {url}: HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}") from None
        except OSError as exc:
            raise LokiError(f"Loki {url}: {type(exc).__name__}: {exc}") from None
        lines += sum(len(s["values"]) for s in json.loads(body)["streams"])
    return lines
