"""A local streaming server in a subprocess, so the client under test owns its event loop."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def start_server(argv: list[str], marker: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if marker not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """Fake server with TTFT 20 ms and ITL 5 ms."""
    script = Path(__file__).with_name("fake_server.py")
    proc, url = start_server([sys.executable, str(script), "--ttft-ms", "20", "--itl-ms", "5"], "listening on")
    yield url
    proc.terminate()
    proc.wait(5)
