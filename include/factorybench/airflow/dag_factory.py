"""One DAG per recipe. Parsing stays cheap: it reads YAML and builds tasks, nothing else.

A broken recipe never hides the others: it becomes a DAG of its own, tagged
`broken-recipe`, whose description and only task carry the file, key path and reason.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowException

from factorybench import settings
from factorybench.airflow.operators import SlurmCancelOperator, SlurmJobSensor, SlurmSubmitOperator
from factorybench.errors import RecipeError
from factorybench.recipe import load_recipe, recipe_files
from factorybench.recipe.schema import Recipe

log = logging.getLogger("factorybench.dags")

# Trigger-form params: name → (dotted recipe path, JSON-schema type, extra schema).
PARAMS: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "transport": ("cluster.transport", ["null", "string"], {"enum": [None, "ssh", "rest", "local"]}),
    "partition": ("service.resources.partition", ["null", "string"], {"pattern": r"^[A-Za-z0-9_.+\-]*$"}),
    "time_limit": ("service.resources.time", "string", {"pattern": r"^[0-9:\-]+$"}),
    "port": ("service.port", ["integer", "string"], {}),
    "client_where": ("client.where", "string", {"enum": ["local", "slurm"]}),
    "client_tasks": ("client.tasks", "integer", {"minimum": 1, "maximum": 256}),
    "profile": ("client.profile.kind", "string",
                {"enum": ["synchronous", "concurrent", "constant", "poisson", "gamma", "sweep", "capacity"]}),
    "streams": ("client.profile.streams", "integer", {"minimum": 1}),
    "rate": ("client.profile.rate", ["null", "number"], {"exclusiveMinimum": 0}),
    "max_requests": ("client.profile.max_requests", ["null", "integer"], {"minimum": 1}),
    "duration_s": ("client.profile.duration_s", ["null", "number"], {"exclusiveMinimum": 0}),
}


def _defaults(recipe: Recipe) -> dict[str, Any]:
    """Each param's value in the recipe (one dump per recipe: this runs on every DAG parse)."""
    data = recipe.model_dump(mode="json")
    out = {}
    for name, (path, _, _) in PARAMS.items():
        node: Any = data
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        out[name] = node
    return out


def recipe_params(recipe: Recipe) -> dict[str, Param]:
    defaults = _defaults(recipe)
    return {name: Param(defaults[name], type=typ, description=f"overrides {path}", **extra)
            for name, (path, typ, extra) in PARAMS.items()}


def overrides_from(params: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """Only the params that differ from the recipe become overrides."""
    defaults = _defaults(recipe)
    return {path: params[name] for name, (path, _, _) in PARAMS.items()
            if name in params and params[name] != defaults[name]}


def build_dag(path: Path) -> DAG:
    recipe = load_recipe(path)
    recipe_path = str(path)
    with DAG(
        dag_id=recipe.dag_id,
        description=(recipe.description or f"factorybench recipe {recipe.name}")[:200],
        schedule=recipe.schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["factorybench", *recipe.tags],
        params=recipe_params(recipe),
        default_args={"retries": 0, "execution_timeout": timedelta(hours=6)},
        doc_md=f"Recipe `{path.name}`: {recipe.description}",
    ) as dag:
        from factorybench.airflow import tasks

        plan = task(task_id="plan")(tasks.plan)(recipe_path)
        submit = SlurmSubmitOperator(task_id="submit_service", plan=plan)
        wait = SlurmJobSensor(task_id="wait_service_running", plan=plan, job_id=submit.output)
        endpoint = task(task_id="discover_endpoint")(tasks.discover_endpoint)(plan, wait.output, submit.output)
        load = tasks.RunLoadOperator(task_id="run_load", plan=plan, endpoint=endpoint, job_id=submit.output)
        # all_done: the service job is cancelled on every path. `report`, the only leaf, needs the
        # load, the archive and the cancel to succeed, so the run's state tells the truth.
        stop = SlurmCancelOperator(task_id="stop_service", plan=plan, job_id=submit.output,
                                   trigger_rule="all_done")
        logs = task(task_id="collect_service_logs", trigger_rule="all_done")(tasks.collect_logs)(plan, submit.output)
        archived = task(task_id="archive", trigger_rule="all_done")(tasks.archive)(
            plan, submit.output, endpoint, load.output, stop.output)
        report = task(task_id="report")(tasks.report)(archived)

        plan >> submit >> wait >> endpoint >> load >> stop >> logs >> archived
        [load, stop] >> report
    return dag


def broken_dag(path: Path, error: RecipeError) -> DAG:
    dag_id = "factorybench_broken_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             tags=["factorybench", "broken-recipe"], description=f"BROKEN RECIPE {path.name}",
             doc_md=f"### Recipe `{path}` is invalid\n\n```\n{error}\n```") as dag:
        message = str(error)

        @task(task_id="recipe_error")
        def fail():
            raise AirflowException(message)

        fail()
    return dag


def build_dags(directory: Path | None = None) -> dict[str, DAG]:
    dags: dict[str, DAG] = {}
    for path in recipe_files(directory or settings.recipes_dir()):
        try:
            dag = build_dag(path)
        except RecipeError as exc:
            log.error("invalid recipe, its DAG is replaced by an error DAG:\n%s", exc)
            dag = broken_dag(path, exc)
        if dag.dag_id in dags:
            dag = broken_dag(path, RecipeError(str(path), [("name", f"DAG id {dag.dag_id} is used by another recipe")]))
        dags[dag.dag_id] = dag
    return dags
