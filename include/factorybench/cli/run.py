"""`factorybench run` (one run without Airflow) and `factorybench trigger` (a run through Airflow,
for CI). Both exit 0 on a pass, 1 on a regression and 2 on a failed or invalid run or any error."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import os
import sys
from pathlib import Path

from factorybench import settings
from factorybench.cli.output import add_format
from factorybench.errors import FactorybenchError


def _recipe_path(ref: str) -> Path:
    """A recipe file, or the name of one in the recipes directory."""
    from factorybench.recipe import load_recipe, recipe_files

    if Path(ref).is_file():
        return Path(ref)
    for path in recipe_files(settings.recipes_dir()):
        if path.stem == ref or load_recipe(path).name == ref:
            return path
    raise FactorybenchError(f"no recipe {ref!r}: neither a file nor a recipe in {settings.recipes_dir()}")


def _params(items: list[str]) -> dict:
    from factorybench.recipe.params import parse_assignments

    try:
        return parse_assignments(items or [])
    except ValueError as exc:
        raise FactorybenchError(str(exc)) from None


@contextlib.contextmanager
def _logs_to_stderr():
    """Airflow's logging writes to stdout; keep stdout for the result (JSON must parse)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _exit_code(status: str, failed: bool) -> int:
    from factorybench.trigger import FAILED, PASS, REGRESSION

    return FAILED if status != "success" else REGRESSION if failed else PASS


def _run(args) -> int:
    from factorybench.airflow.connections import transport_for
    from factorybench.pipeline import execute, format_report, plan_run
    from factorybench.slurm.transport import run_sync

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path, params = _recipe_path(args.recipe), _params(args.set)
    if args.transport:
        params["transport"] = args.transport

    async def go():
        transport = transport_for(cluster)
        try:
            return await execute(path, transport, params, triggered_by=getpass.getuser())
        finally:
            await transport.close()

    with _logs_to_stderr():
        cluster = plan_run(path, "validate", "validate", params).cluster_model()  # bad params fail before SLURM
        archived = run_sync(go())
    if args.format == "json":
        print(json.dumps(archived, indent=2, default=str))
    else:
        print(format_report(archived))
        print("\n".join(archived.get("failing") or []))
    return _exit_code(archived["status"], archived.get("failed", False))


def _trigger(args) -> int:
    from factorybench.recipe import load_recipe
    from factorybench.recipe.schema import dag_id_for
    from factorybench.trigger import AirflowAPI, run

    ref = args.recipe  # CI may have no recipes checked out: a name maps to its DAG id directly
    if ref.startswith("factorybench_"):
        dag_id = ref
    elif Path(ref).is_file():
        dag_id = load_recipe(ref).dag_id
    else:
        dag_id = dag_id_for(ref)
    api = AirflowAPI(args.url, token=os.environ.get("FB_AIRFLOW_TOKEN"), username=os.environ.get("FB_AIRFLOW_USER"),
                     password=os.environ.get("FB_AIRFLOW_PASSWORD"))
    outcome = run(api, dag_id, _params(args.conf), wait=args.wait, timeout_s=args.timeout, poll_s=args.poll,
                  ci_ref=args.ci_ref, ui_url=args.url)
    if args.format == "json":
        print(json.dumps(outcome.to_dict(), indent=2, default=str))
    else:
        print(f"{outcome.dag_id} run {outcome.run_id}: {outcome.state} - {outcome.message}")
        for line in filter(None, [outcome.verdict_line, *outcome.failing]):
            print(line)
        if outcome.archive:
            print(f"archive: {outcome.archive}")
        if outcome.report_url:
            print(f"report: {outcome.report_url}")
    return outcome.exit_code


def register(sub) -> None:
    p = sub.add_parser("run", help="one run without Airflow", description="Run a recipe once without Airflow, "
                       "through the same pipeline, into the same archive and database. Exit 0 on a pass, 1 on a "
                       "regression, 2 on a failed or invalid run.")
    p.add_argument("recipe", help="recipe name or file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a run parameter, as in the Airflow trigger form (repeatable), e.g. --set streams=8")
    p.add_argument("--transport", choices=("ssh", "rest", "local"), help="override the cluster profile's transport")
    add_format(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("trigger", help="run a recipe's DAG through Airflow's REST API (for CI)",
                       description="Trigger a recipe's DAG through Airflow's REST API v2, wait for it and print its "
                       "verdict and report. Credentials come from the environment: FB_AIRFLOW_TOKEN, or "
                       "FB_AIRFLOW_USER and FB_AIRFLOW_PASSWORD. Exit 0 on a pass, 1 on a regression, 2 on a failed "
                       "or invalid run, a timeout or any error.")
    p.add_argument("recipe", help="recipe name (or file, or DAG id)")
    p.add_argument("--conf", action="append", metavar="KEY=VALUE",
                   help="a run parameter (repeatable), e.g. --conf streams=8; values are JSON when they parse")
    p.add_argument("--url", default=os.environ.get("FB_AIRFLOW_URL", "http://127.0.0.1:8080"),
                   help="Airflow's base URL (default: $FB_AIRFLOW_URL or http://127.0.0.1:8080)")
    p.add_argument("--ci-ref", default=os.environ.get("FB_CI_REF"),
                   help="the CI's reference (commit, pipeline), recorded with the run (default: $FB_CI_REF)")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait for the run to end (default) or only trigger it")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")
    p.add_argument("--poll", type=float, default=5, help="seconds between polls (default 5)")
    add_format(p)
    p.set_defaults(func=_trigger)
