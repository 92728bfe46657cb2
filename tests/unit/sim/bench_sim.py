"""Throughput and timing accuracy of the simulator (a script, not collected by pytest).

    python tests/unit/sim/bench_sim.py --concurrency 64 --duration 10

Starts `python -m factorybench.sim` as a subprocess (its own core), then drives it with
N closed-loop streaming clients (aiohttp + uvloop) and compares what they measure with
the configured truth: TTFT = ttft_ms, E2E = ttft_ms + (tokens - 1) * itl_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

import aiohttp


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def client(session: aiohttp.ClientSession, url: str, body: bytes, stop_at: float,
                 ttfts: list[float], e2es: list[float], itls: list[float]) -> None:
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        first = last = None
        async with session.post(url, data=body,
                                headers={"Content-Type": "application/json"}) as resp:
            async for data in resp.content.iter_any():
                now = time.perf_counter()
                if b'"content":"' in data.replace(b'"content":""', b""):
                    if first is None:
                        first = now
                    elif last is not None:
                        itls.append(now - last)
                    last = now
        if first is not None and last is not None:
            ttfts.append(first - t0)
            e2es.append(last - t0)


def server_view(base: str, pid: int) -> tuple[float, float, float, float, float]:
    """(TTFT sum, count, ITL sum, count) from the server's /metrics, and its CPU seconds."""
    import urllib.request
    vals = {}
    with urllib.request.urlopen(base + "/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith(("vllm:time_to_first_token_seconds_", "vllm:inter_token_latency_seconds_")):
                name, value = line.rsplit(" ", 1)
                vals[name.split("{")[0]] = float(value)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return (vals["vllm:time_to_first_token_seconds_sum"], vals["vllm:time_to_first_token_seconds_count"],
            vals["vllm:inter_token_latency_seconds_sum"], vals["vllm:inter_token_latency_seconds_count"], cpu)


async def drive(url: str, concurrency: int, tokens: int, duration: float,
                warmup: float) -> dict[str, float]:
    body = json.dumps({"model": "sim-model", "max_tokens": tokens, "stream": True,
                       "messages": [{"role": "user", "content": "hello"}]}).encode()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm: tuple[list[float], list[float], list[float]] = ([], [], [])
        end = time.perf_counter() + warmup
        await asyncio.gather(*(client(session, url, body, end, *warm) for _ in range(concurrency)))
        ttfts: list[float] = []
        e2es: list[float] = []
        itls: list[float] = []
        t0 = time.perf_counter()
        end = t0 + duration
        await asyncio.gather(*(client(session, url, body, end, ttfts, e2es, itls)
                               for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"requests": len(ttfts), "rate": len(ttfts) / elapsed,
            "ttft_p50_ms": pct(ttfts, 0.5) * 1e3, "ttft_p99_ms": pct(ttfts, 0.99) * 1e3,
            "ttft_mean_ms": statistics.fmean(ttfts) * 1e3,
            "itl_p50_ms": pct(itls, 0.5) * 1e3, "itl_mean_ms": statistics.fmean(itls) * 1e3,
            "e2e_p50_ms": pct(e2es, 0.5) * 1e3, "e2e_p99_ms": pct(e2es, 0.99) * 1e3}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--concurrency", type=int, nargs="+", default=[64])
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--itl-ms", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--loop", default="auto")
    args = p.parse_args()
    proc = subprocess.Popen(
        [sys.executable, "-m", "factorybench.sim", "--port", "0", "--ttft-ms", str(args.ttft_ms),
         "--itl-ms", str(args.itl_ms), "--loop", args.loop, "--max-num-seqs", "4096"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().split()[-1]
        if hasattr(os, "sched_setaffinity"):  # server and client on different cores
            os.sched_setaffinity(proc.pid, {0})
            os.sched_setaffinity(0, {1})
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        e2e_truth = args.ttft_ms + (args.tokens - 1) * args.itl_ms
        for c in args.concurrency:
            before = server_view(base, proc.pid)
            t_start = time.perf_counter()
            r = asyncio.run(drive(base + "/v1/chat/completions", c, args.tokens,
                                  args.duration, args.warmup))
            ideal = c / (e2e_truth / 1e3)
            print(f"c={c:4d} rate={r['rate']:7.1f}/s (ideal {ideal:7.1f}, "
                  f"{100 * r['rate'] / ideal:5.1f}%)  TTFT p50={r['ttft_p50_ms']:.2f} "
                  f"mean={r['ttft_mean_ms']:.2f} p99={r['ttft_p99_ms']:.2f} ms "
                  f"(truth {args.ttft_ms})  ITL p50={r['itl_p50_ms']:.2f} "
                  f"mean={r['itl_mean_ms']:.2f} ms  E2E p50={r['e2e_p50_ms']:.1f} "
                  f"p99={r['e2e_p99_ms']:.1f} ms (truth {e2e_truth})  n={r['requests']}",
                  flush=True)
            after = server_view(base, proc.pid)
            d = [a - b for a, b in zip(after, before)]
            print(f"       server-side: TTFT mean={1e3 * d[0] / d[1]:.3f} ms  "
                  f"ITL mean={1e3 * d[2] / d[3]:.3f} ms  server CPU "
                  f"{100 * d[4] / (time.perf_counter() - t_start):.0f}%", flush=True)
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
