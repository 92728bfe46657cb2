"""Change-point detection side by side with Apache Otava 0.8.0 on the same synthetic nightly series.

Both run with window 50, max_pvalue 0.001 and min_magnitude 0 (Otava's defaults);
ours adds min_segment 3. Series are 100 * (1 + noise * N(0, 1)), seeded.

- False alarms: the share of series with any change point, on stationary series
  and on series with one spike, a two-run burst, or a spike at the last run.
- Steps at run 30: each prefix of 31..60 runs is analysed as the nightly job would
  see it; the delay is the number of runs at the new level when a change point
  first appears within 2 runs of the step (median over the seeds that found it
  within 30 runs). "CPs > 2 runs off" is the share of full 60-run series with a
  change point more than 2 runs away from the step: misplaced or spurious.

Otava pins numpy 2.2, so it lives in its own venv and runs as a subprocess that
reads the series as JSON on stdin (--install creates the venv with pip):

    .venv/bin/python benchmarks/changepoint_vs_otava.py [--seeds 50] [--install]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import numpy as np
from common import table

from factorybench.analysis.changepoint import change_points

REPO = Path(__file__).resolve().parents[1]
OTAVA_VENV = REPO / ".cache" / "venvs" / "otava"
WINDOW, MAX_P, STEP_AT, AFTER, NEAR = 50, 0.001, 30, 30, 2

_OTAVA = """
import json, sys, time
from otava.analysis import compute_change_points
req = json.load(sys.stdin)
t0, out = time.perf_counter(), []
for s in req["series"]:
    cps, _ = compute_change_points(s, window_len=req["window"], max_pvalue=req["max_pvalue"], min_magnitude=0.0)
    out.append([int(c.index) for c in cps])
json.dump({"cps": out, "seconds": time.perf_counter() - t0}, sys.stdout)
"""

Detector = Callable[[list[np.ndarray]], tuple[list[list[int]], float]]


def otava(series: list[np.ndarray]) -> tuple[list[list[int]], float]:
    """Change-point indices per series, and Otava's own compute time (no process start, no JSON)."""
    request = json.dumps({"series": [s.tolist() for s in series], "window": WINDOW, "max_pvalue": MAX_P})
    proc = subprocess.run([str(OTAVA_VENV / "bin" / "python"), "-c", _OTAVA], input=request, text=True,
                          capture_output=True, check=True)
    reply = json.loads(proc.stdout)
    return reply["cps"], reply["seconds"]


def ours(series: list[np.ndarray]) -> tuple[list[list[int]], float]:
    t0 = time.perf_counter()
    cps = [[c.index for c in change_points(s, WINDOW, MAX_P, 0.0, 3)] for s in series]
    return cps, time.perf_counter() - t0


def noisy(seed: int, n: int, noise: float) -> np.ndarray:
    return 100 * (1 + noise * np.random.default_rng(seed).standard_normal(n))


def false_alarm_series(kind: str, seed: int) -> np.ndarray:
    """5 % noise; a spike or burst is +50 % at a seeded position away from the edges."""
    n = {"stationary, 30 runs": 30, "stationary, 100 runs": 100}.get(kind, 60)
    x = noisy(seed, n, 0.05)
    where = int(np.random.default_rng(seed + 10_000).integers(5, n - 6))
    if kind == "one-run spike +50 %":
        x[where] *= 1.5
    elif kind == "two-run burst +50 %":
        x[where:where + 2] *= 1.5
    elif kind == "last run +50 %":
        x[-1] *= 1.5
    return x


FALSE_ALARM_KINDS = ("stationary, 30 runs", "stationary, 60 runs", "stationary, 100 runs",
                     "one-run spike +50 %", "two-run burst +50 %", "last run +50 %")


def false_alarms(tools: dict[str, Detector], seeds: int) -> list[list[object]]:
    rows = []
    for kind in FALSE_ALARM_KINDS:
        series = [false_alarm_series(kind, seed) for seed in range(seeds)]
        row: list[object] = [kind, seeds]
        for detect in tools.values():
            cps, _ = detect(series)
            row.append(f"{sum(bool(c) for c in cps) / seeds:.1%}")
        rows.append(row)
    return rows


def steps(tools: dict[str, Detector], seeds: int, sizes: list[float], noises: list[float]) -> list[list[object]]:
    rows = []
    for noise in noises:
        for size in sizes:
            full = []
            for seed in range(seeds):
                x = noisy(seed, STEP_AT + AFTER, noise)
                x[STEP_AT:] *= 1 + size
                full.append(x)
            prefixes = [x[:STEP_AT + k] for x in full for k in range(1, AFTER + 1)]
            row: list[object] = [f"+{size:.0%}", f"{noise:.0%}"]
            for detect in tools.values():
                cps, _ = detect(prefixes)
                delays = []
                for i in range(seeds):
                    found = [k for k in range(1, AFTER + 1)
                             if any(abs(c - STEP_AT) <= NEAR for c in cps[i * AFTER + k - 1])]
                    if found:
                        delays.append(found[0])
                others = [any(abs(c - STEP_AT) > NEAR for c in cps[i * AFTER + AFTER - 1]) for i in range(seeds)]
                row += [f"{len(delays) / seeds:.0%}", f"{median(delays):g}" if delays else "-",
                        f"{sum(others) / seeds:.0%}"]
            rows.append(row)
    return rows


def speed(tools: dict[str, Detector], seeds: int) -> list[object]:
    series = [noisy(seed, 60, 0.05) for seed in range(seeds)]
    return ["ms per 60-run series"] + [f"{detect(series)[1] / seeds * 1e3:.2f}" for detect in tools.values()]


def install() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(OTAVA_VENV)], check=True)
    subprocess.run([str(OTAVA_VENV / "bin" / "pip"), "install", "apache-otava==0.8.0"], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50, help="seeds per step scenario (false alarms: 10x)")
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.05, 0.10, 0.20])
    ap.add_argument("--noises", type=float, nargs="+", default=[0.02, 0.05, 0.10])
    ap.add_argument("--install", action="store_true", help="create .cache/venvs/otava with apache-otava 0.8.0")
    args = ap.parse_args()
    if args.install:
        install()
    tools: dict[str, Detector] = {"factorybench": ours}
    if (OTAVA_VENV / "bin" / "python").exists():
        tools["Otava 0.8.0"] = otava
    else:
        print(f"Otava is not installed in {OTAVA_VENV} (run with --install); showing factorybench only\n")
    names = list(tools)
    print(table(["series (5 % noise)", "seeds", *(f"{n}: series with a change point" for n in names)],
                false_alarms(tools, 10 * args.seeds)))
    print()
    cols = [f"{n}: {c}" for n in names for c in ("found", "median delay (runs)", "CPs > 2 runs off")]
    print(table(["step at run 30", "noise", *cols], steps(tools, args.seeds, args.sizes, args.noises)))
    print()
    print(table(["speed", *names], [speed(tools, 10 * args.seeds)]))


if __name__ == "__main__":
    main()
