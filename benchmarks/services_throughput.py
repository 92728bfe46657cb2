"""Each real service's throughput on this machine: every dev service recipe run once through the
whole pipeline (`factorybench run`: SLURM job, readiness, load, archive), one after the other.

The figures are whatever the recipes' loads give on this 2-core machine, where the service and
the client share both cores; the load average before and after each run is printed with it.

    devcluster/cluster.sh up native && devcluster/cluster.sh up forky && scripts/services/ensure.sh
    .venv/bin/python benchmarks/services_throughput.py [--recipes redis-kv ...] [--set max_requests=N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from common import table

REPO = Path(__file__).resolve().parents[1]
RECIPES = ["llamacpp-gemma", "infinity-minilm", "chroma-vectors", "pgvector-vectors", "redis-kv", "postgres-sql"]


def cluster_env(flavour: str) -> dict[str, str]:
    script = REPO / "devcluster" / "cluster.sh"
    out = subprocess.run(["bash", "-c", f'eval "$({script} env {flavour})" && env -0'], capture_output=True,
                         check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def environment(tmp: str) -> dict[str, str]:
    """scripts/env.sh's environment plus the forky profile's variables, results in a temp dir."""
    env = cluster_env("native")
    forky = cluster_env("forky")
    env.update({"FB_HOME": str(REPO), "FB_VENV": str(REPO / ".venv"), "FB_TRANSPORT": "ssh",
                "AIRFLOW_CONN_SLURM_REST_FORKY": forky["AIRFLOW_CONN_SLURM_REST_FORKY"],
                "FB_FORKY_TOKEN_CMD": forky["FB_SLURM_TOKEN_CMD"], "FB_FORKY_WORKDIR": forky["FB_SLURM_WORKDIR"],
                "AIRFLOW_HOME": tmp, "FB_RESULTS_URL": f"sqlite:///{tmp}/results.db",
                "FB_ARCHIVE_URL": f"{tmp}/archive"})
    return env


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def run(recipe: str, sets: list[str], env: dict[str, str], tmp: str) -> list[object]:
    before = load_average()
    argv = [str(REPO / ".venv" / "bin" / "factorybench"), "run", recipe, "--json"]
    for item in sets:
        argv += ["--set", item]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp)
    if proc.returncode == 2 or not proc.stdout.strip():
        return [recipe, "FAILED", proc.stderr.strip().splitlines()[-1:]]
    out = json.loads(proc.stdout)
    archive = Path(out["archive"])
    s = json.loads((archive / "load" / "summary.json").read_text())["summary"]
    ready = json.loads((archive / "endpoint.json").read_text())["ready_s"]
    rate, unit = next(((s[k], u) for k, u in (("output_tokens_per_s", "output tok/s"), ("embeddings_per_s", "texts/s"),
                                                ("query_rate", "queries/s"), ("ops_per_s", "ops/s"))
                       if s.get(k)), (s["request_rate"], "req/s"))
    extra = []
    if s.get("insert_vectors_per_s"):
        extra.append(f"insert {s['insert_vectors_per_s']:.0f} vectors/s")
    if s.get("recall_at_k") is not None:
        extra.append(f"recall@k {s['recall_at_k']:.3f}")
    if s.get("ttft_p50_ms") and s.get("itl_p50_ms"):
        extra.append(f"TTFT p50 {s['ttft_p50_ms']:.0f} ms, ITL p50 {s['itl_p50_ms']:.0f} ms")
    return [recipe, out["status"], s["requests"], s["errors"], s["request_rate"], f"{rate:.1f} {unit}",
            s["e2e_p50_ms"], ready, "; ".join(extra), f"{before} / {load_average()}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipes", nargs="+", default=RECIPES)
    ap.add_argument("--set", action="append", default=[],
                    help="a run parameter for every recipe, e.g. max_requests=100")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fb-services-bench-") as tmp:
        env = environment(tmp)
        for recipe in args.recipes:
            rows.append(run(recipe, args.set, env, tmp))
            print(rows[-1], flush=True)
    print(table(["recipe", "status", "requests", "errors", "req/s", "throughput", "latency p50 ms", "ready s",
                 "more", "load avg before / after"], rows))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
