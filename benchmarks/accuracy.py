"""(a) Accuracy against the simulator: TTFT 50 ms, ITL 10 ms, closed loop at several concurrencies.

Goal: TTFT p50 within 2 % (or 1 ms) of 50 ms and ITL p50 within 5 % of 10 ms, and
beyond what the client can do, the guard flags the run invalid.

    .venv/bin/python benchmarks/accuracy.py [--streams 1 8 64 256 512] [--workers 1]
"""

from __future__ import annotations

import argparse

from common import simulator, table

from factorybench.load import LoadConfig, ProfileConfig, run_load
from factorybench.load.config import DatasetConfig, Lengths

TTFT, ITL = 50.0, 10.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 8, 64, 256, 512])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6, help="Requests per stream after warm-up")
    args = ap.parse_args()
    rows = []
    with simulator("--ttft-ms", str(TTFT), "--itl-ms", str(ITL), "--max-num-seqs", "4096",
                   "--max-queue", "100000") as url:
        for n in args.streams:
            config = LoadConfig(
                target=url, model="sim-model", workers=args.workers,
                dataset=DatasetConfig(prompt_tokens=Lengths(mean=64), output_tokens=Lengths(mean=32)),
                profile=ProfileConfig(kind="concurrent", streams=n, warmup_requests=n,
                                      max_requests=n * (args.rounds + 1)))
            s = run_load(config).summary
            ttft_err = s.ttft_p50_ms - TTFT
            itl_err = (s.itl_p50_ms - ITL) / ITL
            ok = (abs(ttft_err) <= max(1.0, 0.02 * TTFT)) and abs(itl_err) <= 0.05
            rows.append([n, s.requests, s.errors, s.request_rate, s.ttft_p50_ms, ttft_err, s.itl_p50_ms,
                         f"{itl_err:+.1%}", "yes" if ok else "no", s.client.loop_lag_ms.p99 or 0.0,
                         f"{s.client.cpu_fraction:.0%}", "valid" if s.valid else "INVALID: " +
                         "; ".join(s.invalid_reasons)])
            print(rows[-1], flush=True)
    print(table(["streams", "ok", "errors", "req/s", "TTFT p50 ms", "TTFT err ms", "ITL p50 ms", "ITL err",
                 "within goal", "loop lag p99 ms", "client CPU", "guard"], rows))


if __name__ == "__main__":
    main()
