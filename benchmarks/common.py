"""Shared helpers of the benchmark scripts: start and stop simulator processes, print tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path


def simulator(*args: str) -> AbstractContextManager[str]:
    """Runs `python -m factorybench.sim --port 0 ARGS` and yields its base URL."""
    return server([sys.executable, "-m", "factorybench.sim", "--port", "0", *args])


def minserver(*args: str) -> AbstractContextManager[str]:
    """The raw-asyncio server of benchmarks/minserver.py (forks --procs processes)."""
    return server([sys.executable, str(Path(__file__).with_name("minserver.py")), "--port", "0", *args])


@contextmanager
def server(argv: list[str]) -> Iterator[str]:
    """Starts a server in its own process group, yields the URL it prints, then stops the group."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, so output can be pasted into docs/BENCHMARKS.md as is."""
    cells = [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
