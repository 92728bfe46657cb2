"""The precise timer, and the CLI started as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from factorybench.sim.__main__ import build_parser, config_from_args
from factorybench.sim.clock import PreciseTimer


@pytest.mark.parametrize("use_timerfd", [True, False])
async def test_timer_wakes_after_deadline_in_order(use_timerfd):
    timer = PreciseTimer(asyncio.get_running_loop(), use_timerfd=use_timerfd)
    woke: list[tuple[int, float]] = []
    base = time.monotonic()

    async def sleeper(i: int, at: float) -> None:
        await timer.sleep_until(at)
        woke.append((i, time.monotonic() - at))

    try:
        await asyncio.gather(*(sleeper(i, base + 0.005 * (5 - i)) for i in range(5)))
    finally:
        timer.close()
    assert [i for i, _ in woke] == [4, 3, 2, 1, 0]
    assert all(0 <= late < 0.2 for _, late in woke)


def test_cli_flags_and_config_file(tmp_path):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("itl_ms: 3\nmodel: from-file\nmax_queue: 7\n")
    args = build_parser().parse_args(
        ["--config", str(cfg), "--model", "from-flag", "--ttft-overhead-ms", "11",
         "--error-rate", "0.5"])
    c = config_from_args(args)
    assert (c.model, c.itl_ms, c.ttft_ms, c.max_queue, c.error_rate) == (
        "from-flag", 3.0, 11.0, 7, 0.5)
    (tmp_path / "bad.json").write_text(json.dumps({"no_such_field": 1}))
    with pytest.raises(ValueError):
        config_from_args(build_parser().parse_args(["--config", str(tmp_path / "bad.json")]))


def test_cli_subprocess_port_zero_and_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "factorybench.sim", "--port", "0", "--model", "cli-model",
         "--ttft-ms", "1", "--itl-ms", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        prefix = "factorybench-sim listening on http://127.0.0.1:"
        assert line.startswith(prefix) and int(line[len(prefix):]) > 0
        url = line.split()[-1]
        with urllib.request.urlopen(url + "/v1/models", timeout=5) as r:
            assert json.load(r)["data"][0]["id"] == "cli-model"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_cli_rejects_invalid_values():
    r = subprocess.run([sys.executable, "-m", "factorybench.sim", "--error-rate", "2"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "error_rate" in r.stderr
