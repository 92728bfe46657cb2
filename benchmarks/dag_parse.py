"""DAG parsing cost: 100 recipes through the DAG factory, this tree against an older revision.

    .venv/bin/python benchmarks/dag_parse.py [--recipes 100] [--baseline bc26872] [--repeat 5]

Each measurement is a fresh interpreter (as the DAG processor's parsing subprocess is): Airflow's
SDK is imported first and not counted; then the factory module's import and `build_dags()` over
N copies of the smoke recipe are timed. It also lists which heavy modules parsing pulled in.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "aiohttp", "factorybench.load.engine", "factorybench.pipeline")

PROBE = """
import json, sys, time
from pathlib import Path
import airflow.sdk  # Airflow itself is paid for by every DAG file, not ours
t0 = time.perf_counter()
from factorybench.airflow.dag_factory import build_dags
t1 = time.perf_counter()
dags = build_dags(Path(sys.argv[1]))
t2 = time.perf_counter()
heavy = [m for m in %r if m in sys.modules]
print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "dags": len(dags), "heavy": heavy}))
""" % (HEAVY,)


def export(rev: str, dest: Path) -> Path:
    """The package of an older revision, unpacked (not installed) so PYTHONPATH can point at it."""
    blob = subprocess.run(["git", "-C", str(REPO), "archive", rev, "include"], capture_output=True,
                          check=True).stdout
    path = dest / "archive.tar"
    path.write_bytes(blob)
    with tarfile.open(path) as tar:
        tar.extractall(dest, filter="data")
    return dest / "include"


def make_recipes(n: int, dest: Path) -> Path:
    smoke = (REPO / "recipes" / "smoke.yaml").read_text()
    dest.mkdir()
    for i in range(n):
        (dest / f"parse-{i:03d}.yaml").write_text(smoke.replace("name: smoke", f"name: parse-{i:03d}"))
    return dest


def measure(include: Path, recipes: Path, repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(include), "FB_HOME": str(REPO),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_HOME": tempfile.mkdtemp(prefix="fb-parse-")}
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", PROBE, str(recipes)], env=env, capture_output=True,
                             text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {"import_ms": statistics.median(r["import_s"] for r in runs) * 1e3,
            "build_ms": statistics.median(r["build_s"] for r in runs) * 1e3,
            "dags": runs[0]["dags"], "heavy": runs[0]["heavy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", type=int, default=100, help="how many recipes to parse")
    ap.add_argument("--baseline", default="bc26872", help="git revision to compare against")
    ap.add_argument("--repeat", type=int, default=5, help="fresh interpreters per tree (median taken)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recipes = make_recipes(args.recipes, Path(tmp) / "recipes")
        rows = [(f"baseline {args.baseline}", measure(export(args.baseline, Path(tmp)), recipes, args.repeat)),
                ("this tree", measure(REPO / "include", recipes, args.repeat))]
    n = args.recipes
    print(f"| code | DAGs | factory import ms | build_dags ms ({n} recipes) | ms per recipe (import + build) / {n}"
          " | heavy modules imported |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        per = (r["import_ms"] + r["build_ms"]) / n
        print(f"| {name} | {r['dags']} | {r['import_ms']:.0f} | {r['build_ms']:.0f} | {per:.2f} | "
              f"{', '.join(r['heavy']) or 'none'} |")


if __name__ == "__main__":
    main()
