"""`factorybench validate`: recipes checked the way the DAG factory and the plan step check them."""

from __future__ import annotations

import argparse
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


def register(sub) -> None:
    v = sub.add_parser("validate", help="check recipes; exit 1 if any is invalid",
                       description="Check recipes against the schema and render their batch scripts. Every "
                                   "problem is reported with the file, the key path and the reason.")
    v.add_argument("paths", nargs="*", help="recipe files or directories (default: the recipes directory)")
    v.add_argument("--clusters", help="cluster profiles file (default: config/clusters.yaml or $FB_CLUSTERS_FILE)")
    v.set_defaults(func=_validate)
