"""Job logs to Loki's push API, checked by a loopback HTTP server against Loki's documented JSON format
(POST /loki/api/v1/push, Content-Type application/json, {"streams": [{"stream": {labels},
"values": [["<unix ns string>", "<line>"], ...]}]}, answered 204). No Loki server runs here."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from factorybench.monitoring.loki import LokiError, bodies, push_logs

LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def loki_problems(path: str, content_type: str, body: bytes) -> list[str]:
    """What Loki's push API would reject in this request (JSON form)."""
    if path != "/loki/api/v1/push":
        return [f"path {path}"]
    if content_type != "application/json":
        return [f"content type {content_type}"]
    doc = json.loads(body)
    if set(doc) != {"streams"} or not isinstance(doc["streams"], list):
        return ["top level must be {streams: [...]}"]
    problems = []
    for s in doc["streams"]:
        if set(s) != {"stream", "values"}:
            problems.append(f"stream keys {sorted(s)}")
            continue
        if not s["stream"] or not all(LABEL.match(k) and isinstance(v, str) for k, v in s["stream"].items()):
            problems.append(f"labels {s['stream']}")
        last = 0
        for value in s["values"]:
            if len(value) not in (2, 3) or not isinstance(value[0], str) or not value[0].isdigit() \
                    or not isinstance(value[1], str):
                problems.append(f"value {value!r}")
                continue
            if int(value[0]) < last:
                problems.append("timestamps go backwards within a stream")
            last = int(value[0])
    return problems


@pytest.fixture
def loki():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            problems = loki_problems(self.path, self.headers.get("Content-Type", ""), body)
            if problems:
                self.send_response(400)
                self.end_headers()
                self.wfile.write("; ".join(problems).encode())
                return
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_job_output_is_pushed_in_lokis_format(loki):
    url, received = loki
    labels = {"job": "4242", "recipe": "smoke", "run_id": "manual__2026-01-01T00:00:00+00:00"}
    n = push_logs(url, labels, {"stdout": "factorybench-sim listening\nready\n", "stderr": "warn: x\n"})
    assert n == 3 and len(received) == 1
    streams = {s["stream"]["stream"]: s for s in received[0]["streams"]}
    assert streams["stdout"]["stream"] == {**labels, "stream": "stdout"}
    assert [v[1] for v in streams["stdout"]["values"]] == ["factorybench-sim listening", "ready"]
    first, second = (int(v[0]) for v in streams["stdout"]["values"])
    assert second == first + 1  # order kept, no two lines on the same nanosecond


def test_large_output_is_split_into_several_requests(loki):
    url, received = loki
    text = "\n".join(f"line {i} " + "x" * 200 for i in range(12_000))  # about 2.5 MB
    assert push_logs(url, {"job": "1"}, {"stdout": text}) == 12_000
    assert len(received) >= 3
    lines = [v[1] for body in received for s in body["streams"] for v in s["values"]]
    assert lines == text.splitlines()


def test_a_refusal_carries_lokis_reason(loki):
    url, _ = loki
    with pytest.raises(LokiError, match="HTTP 400: path /wrong/loki/api/v1/push"):
        push_logs(url + "/wrong", {"job": "1"}, {"stdout": "x"})


def test_label_names_are_checked_before_sending():
    with pytest.raises(ValueError, match="not allowed"):
        bodies({"bad-name": "x"}, {"stdout": "x"})
    assert bodies({"job": "1"}, {"stdout": "", "stderr": ""}) == []
