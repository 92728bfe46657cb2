"""`factorybench` command line: validate recipes, list results.

The load engine and the simulator have their own entry points
(`python -m factorybench.load`, `python -m factorybench.sim`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from factorybench import settings
from factorybench.errors import RecipeError


def _validate(args: argparse.Namespace) -> int:
    from factorybench.recipe import cluster_for, load_clusters, load_recipe, recipe_files
    from factorybench.slurm.script import build_job_spec

    paths: list[Path] = []
    for raw in args.paths or [str(settings.recipes_dir())]:
        p = Path(raw)
        paths += recipe_files(p) if p.is_dir() else [p]
    if not paths:
        print("no recipe files found", file=sys.stderr)
        return 2
    try:
        clusters = load_clusters(args.clusters or settings.clusters_file(), env=None)
    except RecipeError as exc:
        print(f"INVALID {exc}", file=sys.stderr)
        return 1
    failed = 0
    for path in paths:
        try:
            recipe = load_recipe(path)
            build_job_spec(recipe, cluster_for(recipe, clusters, str(path)), "validate", "0")
        except RecipeError as exc:
            failed += 1
            print(f"INVALID {exc}", file=sys.stderr)
        except ValueError as exc:  # the job spec's own checks (names, memory, gres)
            failed += 1
            print(f"INVALID {path}: service: {exc}", file=sys.stderr)
        else:
            print(f"ok      {path} -> DAG {recipe.dag_id}")
    print(f"{len(paths) - failed} valid, {failed} invalid", file=sys.stderr)
    return 1 if failed else 0


def _results(args: argparse.Namespace) -> int:
    from factorybench.results.db import recent_runs

    rows = recent_runs(args.url or settings.results_url(), args.recipe, args.limit)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    cols = ["id", "recipe", "status", "requests", "errors", "request_rate", "output_tokens_per_s",
            "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms"]

    def cell(v) -> str:
        if isinstance(v, float):
            return str(int(v)) if v.is_integer() else f"{v:.2f}"
        return "-" if v is None else str(v)

    print("  ".join(f"{c:>{max(8, len(c))}}" for c in cols))
    for r in rows:
        print("  ".join(f"{cell(r.get(c)):>{max(8, len(c))}}" for c in cols))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="factorybench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check recipes; exit 1 if any is invalid")
    v.add_argument("paths", nargs="*", help="recipe files or directories (default: the recipes dir)")
    v.add_argument("--clusters", help="cluster profiles file (default: config/clusters.yaml)")
    v.set_defaults(func=_validate)
    r = sub.add_parser("results", help="list recent runs from the results database")
    r.add_argument("--recipe")
    r.add_argument("--limit", type=int, default=20)
    r.add_argument("--url", help="SQLAlchemy URL (default: $FB_RESULTS_URL or results/factorybench.db)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_results)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
