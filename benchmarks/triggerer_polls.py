"""SLURM calls per minute and the triggerer's CPU for N deferred sensors, before and after the
shared poller (slurm/poller.py), side by side in one run.

    .venv/bin/python benchmarks/triggerer_polls.py [--baseline bc26872] [--sensors 1 10 50]
        [--transports ssh rest] [--interval 2] [--window 60]

Needs the native dev cluster (devcluster/cluster.sh up). For each N it submits N held jobs (they
pend with JobHeldUser, which the pending policy leaves alone), then, per code revision and
transport, starts a fresh interpreter that runs N of that revision's `SlurmJobTrigger`s in one
asyncio loop, as the triggerer runs them, against the real cluster through the Airflow
connections the DAGs use (SSH to the login node at 127.0.0.1:2222; slurmrestd at :6820). After a
5 s warm-up it counts, for `--window` seconds, every SLURM query the triggers send (SSH commands
other than `scontrol token`, REST requests other than /openapi, whether they succeed or not), the
process's CPU time, and the triggers that failed (an exception: in Airflow, a failed sensor).
The baseline is the package of an older revision, unpacked onto PYTHONPATH (as dag_parse.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import table  # noqa: E402
from dag_parse import export  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import asyncio, collections, json, sys, time
from factorybench.airflow import connections
from factorybench.airflow.triggers import SlurmJobTrigger
from factorybench.recipe import load_clusters
from factorybench.slurm.rest.client import RestClient

transport, interval, window, ids = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4].split(",")
calls = collections.Counter()
counting = [False]

def count(what):
    if counting[0]:
        calls[what] += 1

run, send = connections.SshRunner.run, RestClient._send
async def ssh_run(self, command, timeout=None):
    if not command.startswith("scontrol token"):
        count("ssh " + command.split()[0])
    return await run(self, command, timeout)
async def rest_send(self, method, path, body, token):
    if not path.startswith("/openapi"):
        count("rest " + path.split("/")[3])
    return await send(self, method, path, body, token)
connections.SshRunner.run, RestClient._send = ssh_run, rest_send

profile = load_clusters(sys.argv[5])["dev"].model_copy(update={"transport": transport, "poll_interval_s": interval})

failed = collections.Counter()

async def one(job_id):
    # A trigger that raises is a failed sensor in the triggerer: counted, not fatal to the others.
    try:
        async for event in SlurmJobTrigger(cluster=profile.model_dump(mode="json"), job_id=job_id,
                                           poll_interval=interval).run():
            failed[f"fired early: {event.payload.get('status')}"] += 1
            return
    except Exception as exc:
        failed[type(exc).__name__] += 1

async def main():
    tasks = [asyncio.create_task(one(j)) for j in ids]
    await asyncio.sleep(5)  # connections made, first polls done
    counting[0] = True
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    counting[0] = False
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"calls": dict(calls), "per_min": sum(calls.values()) * 60 / wall,
                      "cpu_pct": 100 * cpu / wall, "failed": dict(failed)}))

asyncio.run(main())
"""


def sbatch_held(n: int) -> list[str]:
    return [subprocess.run(["sbatch", "--parsable", "--hold", "-p", "cpu", "-t", "10", "-J", "fb-bench-held",
                            "-o", "/dev/null", "--wrap", "true"], capture_output=True, text=True,
                           check=True).stdout.strip().split(";")[0] for _ in range(n)]


def clusters_of(rev: str | None, dest: Path) -> Path:
    """The revision's config/clusters.yaml (an older package refuses keys added since)."""
    if rev is None:
        return REPO / "config" / "clusters.yaml"
    dest.write_bytes(subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:config/clusters.yaml"],
                                    capture_output=True, check=True).stdout)
    return dest


def measure(include: Path, clusters: Path, transport: str, ids: list[str], interval: float, window: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(include), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING", "AIRFLOW_HOME": tempfile.mkdtemp(prefix="fb-polls-")}
    proc = subprocess.run([sys.executable, "-c", PROBE, transport, str(interval), str(window), ",".join(ids),
                           str(clusters)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="bc26872", help="git revision before the shared poller")
    ap.add_argument("--sensors", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--transports", nargs="+", default=["ssh", "rest"], choices=["ssh", "rest"])
    ap.add_argument("--interval", type=float, default=2.0, help="the profile's poll_interval_s")
    ap.add_argument("--window", type=float, default=60.0, help="seconds measured per run")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": (export(args.baseline, Path(tmp)), clusters_of(args.baseline, Path(tmp) / "clusters.yaml")),
                 "after": (REPO / "include", clusters_of(None, Path(tmp)))}
        for n in args.sensors:
            ids = sbatch_held(n)
            try:
                for transport in args.transports:
                    got = {name: measure(*tree, transport, ids, args.interval, args.window)
                           for name, tree in trees.items()}
                    rows.append((n, transport, got["before"]["per_min"], got["after"]["per_min"],
                                 got["before"]["cpu_pct"], got["after"]["cpu_pct"],
                                 _failed(got["before"]), _failed(got["after"])))
                    print(f"N={n} {transport}: {got}", file=sys.stderr, flush=True)
            finally:
                subprocess.run(["scancel", *ids], check=False)
    print(f"poll interval {args.interval:g} s, {args.window:g} s measured per run, baseline {args.baseline}")
    print(table(["deferred sensors", "transport", "SLURM calls/min before", "after", "triggerer CPU % before",
                 "after", "sensors failed before", "after"], rows))


def _failed(got: dict) -> str:
    return ", ".join(f"{v} ({k})" for k, v in sorted(got["failed"].items())) or "0"


if __name__ == "__main__":
    main()
