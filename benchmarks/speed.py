"""(b) Speed against the physical limit: closed loop, TTFT 50 ms, ITL 10 ms, 32 output tokens.

A request takes 50 + 31 * 10 = 360 ms, so N streams can do at most N / 0.36 s
requests/s. The engine passes at N when it reaches >= 95 % of that with TTFT p50
within 5 % of 50 ms. A 50-line aiohttp client runs side by side as the baseline.

    .venv/bin/python benchmarks/speed.py [--streams 64 128 256 512] [--server sim|min] [--server-procs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
import uvloop
from common import minserver, simulator, table

from factorybench.load import LoadConfig, ProfileConfig, run_load
from factorybench.load.config import DatasetConfig, Lengths

TTFT, ITL, OUT = 50.0, 10.0, 32
IDEAL_S = (TTFT + (OUT - 1) * ITL) / 1e3


# ---- the baseline: a minimal aiohttp client, as people write them (about 50 lines) ----
async def minimal_client(url: str, streams: int, requests: int) -> tuple[float, float]:
    """Returns (requests/s, TTFT p50 ms) for `requests` chat requests over `streams` users."""
    body = {"model": "sim-model", "messages": [{"role": "user", "content": "hello " * 63}],
            "max_tokens": OUT, "stream": True}
    ttfts: list[float] = []
    left = [requests]

    async def user(session: aiohttp.ClientSession) -> None:
        while left[0] > 0:
            left[0] -= 1
            t0 = time.perf_counter()
            first = None
            async with session.post(url + "/v1/chat/completions", json=body) as resp:
                async for line in resp.content:  # line iteration, as most clients do
                    if first is None and line.startswith(b"data:") and b'"content": ""' not in line \
                            and b"[DONE]" not in line:
                        first = time.perf_counter()
            ttfts.append(((first or t0) - t0) * 1e3)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=streams)) as session:
        t = time.perf_counter()
        await asyncio.gather(*(user(session) for _ in range(streams)))
        elapsed = time.perf_counter() - t
    return len(ttfts) / elapsed, statistics.median(ttfts)
# ---- end of the baseline ----


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--server", choices=("sim", "min"), default="min")
    ap.add_argument("--server-procs", type=int, default=1, help="minserver processes (SO_REUSEPORT)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="engine worker processes to try")
    ap.add_argument("--rounds", type=int, default=8, help="requests per stream")
    args = ap.parse_args()
    serve = simulator("--ttft-ms", str(TTFT), "--itl-ms", str(ITL), "--max-num-seqs", "4096",
                      "--max-queue", "100000") if args.server == "sim" else \
        minserver("--ttft-ms", str(TTFT), "--itl-ms", str(ITL), "--procs", str(args.server_procs))
    rows = []
    with serve as url:
        for n in args.streams:
            ideal = n / IDEAL_S
            for w in args.workers:
                config = LoadConfig(
                    target=url, model="sim-model", workers=w,
                    dataset=DatasetConfig(prompt_tokens=Lengths(mean=64), output_tokens=Lengths(mean=OUT)),
                    profile=ProfileConfig(kind="concurrent", streams=n, warmup_requests=n,
                                          max_requests=n * (args.rounds + 1)))
                s = run_load(config).summary
                passed = s.request_rate >= 0.95 * ideal and abs(s.ttft_p50_ms - TTFT) <= 0.05 * TTFT
                rows.append([n, f"factorybench w={w}", ideal, s.request_rate, f"{s.request_rate / ideal:.1%}",
                             s.ttft_p50_ms, "yes" if passed else "no",
                             "valid" if s.valid else "INVALID: " + "; ".join(s.invalid_reasons)])
                print(rows[-1], flush=True)
            rate, ttft = uvloop.run(minimal_client(url, n, n * args.rounds))
            passed = rate >= 0.95 * ideal and abs(ttft - TTFT) <= 0.05 * TTFT
            rows.append([n, "minimal aiohttp", ideal, rate, f"{rate / ideal:.1%}", ttft, "yes" if passed else "no",
                         "(no guard)"])
            print(rows[-1], flush=True)
    print(f"server: {args.server}" + (f" x{args.server_procs}" if args.server == "min" else ""))
    print(table(["streams", "client", "ideal req/s", "req/s", "of ideal", "TTFT p50 ms", ">=95% & TTFT<=5%",
                 "guard"], rows))


if __name__ == "__main__":
    main()
