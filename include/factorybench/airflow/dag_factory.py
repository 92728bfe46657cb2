"""One DAG per recipe. Parsing stays cheap: it reads YAML and builds tasks, nothing else.

A broken recipe never hides the others: it becomes a DAG of its own, tagged
`broken-recipe`, whose description and only task carry the file, key path and reason.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, task
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowException

from factorybench import settings
from factorybench.airflow import tasks
from factorybench.airflow.links import CheckOperator
from factorybench.airflow.operators import SlurmCancelOperator, SlurmJobSensor, SlurmSubmitOperator
from factorybench.errors import RecipeError
from factorybench.recipe import load_clusters, load_recipe, params, recipe_files
from factorybench.recipe.cluster import ClusterProfile, pool_name
from factorybench.recipe.schema import Recipe

log = logging.getLogger("factorybench.dags")


def recipe_params(recipe: Recipe) -> ParamsDict:
    """The trigger form: one Param per overridable recipe value, its default the recipe's own."""
    defaults = params.defaults(recipe.model_dump(mode="json"))
    return ParamsDict({spec.name: Param(defaults[spec.name], description=f"{spec.description} "
                                        f"(overrides {spec.path})".strip(), **spec.schema)
                       for spec in params.SPECS})


def _step(task_id: str, fn, *args, cls: type[PythonOperator] = PythonOperator, **kwargs) -> PythonOperator:
    """A Python task. Classic operators cost half what @task does to build, per DAG parse."""
    return cls(task_id=task_id, python_callable=fn, op_args=list(args), show_return_value_in_logs=False, **kwargs)


def build_dag(path: Path, clusters: dict[str, ClusterProfile] | None = None) -> DAG:
    """`clusters` (config/clusters.yaml) names the pool of the recipe's cluster, if it has one."""
    recipe = load_recipe(path)
    recipe_path = str(path)
    profile = (clusters or {}).get(recipe.cluster.profile)
    # The tasks from submit to the end of the load hold the service job, so they hold a slot of the
    # cluster's pool (deferred too: the pool counts deferred tasks). Teardown never waits for one.
    holds = {"pool": pool_name(recipe.cluster.profile)} if profile and profile.max_concurrent_jobs else {}
    with DAG(
        dag_id=recipe.dag_id,
        description=(recipe.description or f"factorybench recipe {recipe.name}")[:200],
        schedule=recipe.schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=recipe.max_active_runs,
        tags=["factorybench", *recipe.tags],
        # upstream weights: a run's later tasks outrank other runs' submits for a freed pool slot,
        # so runs that hold a job finish before new jobs start.
        default_args={"retries": 0, "execution_timeout": timedelta(hours=6), "weight_rule": "upstream"},
        doc_md=f"Recipe `{path.name}`: {recipe.description}",
    ) as dag:
        plan = _step("plan", tasks.plan, recipe_path)
        submit = SlurmSubmitOperator(task_id="submit_service", plan=plan.output, **holds)
        wait = SlurmJobSensor(task_id="wait_service_running", plan=plan.output, job_id=submit.output, **holds)
        endpoint = _step("discover_endpoint", tasks.discover_endpoint, plan.output, wait.output, submit.output,
                         **holds)
        load = tasks.RunLoadOperator(task_id="run_load", plan=plan.output, endpoint=endpoint.output,
                                     job_id=submit.output, **holds)
        # all_done: the service job is cancelled, the run judged and archived on every path.
        # `check`, the only leaf, needs the load, the cancel and the archive to succeed, and fails
        # on a regression, so the run's state tells the truth.
        stop = SlurmCancelOperator(task_id="stop_service", plan=plan.output, job_id=submit.output,
                                   trigger_rule="all_done")
        logs = _step("collect_service_logs", tasks.collect_logs, plan.output, submit.output, trigger_rule="all_done")
        judged = _step("judge", tasks.judge, plan.output, submit.output, load.output, stop.output,
                       trigger_rule="all_done")
        archived = _step("archive", tasks.archive, plan.output, submit.output, endpoint.output, load.output,
                         stop.output, judged.output, trigger_rule="all_done")
        check = _step("check", tasks.check, archived.output, cls=CheckOperator)

        plan >> submit >> wait >> endpoint >> load >> stop >> logs >> judged >> archived >> check
        [load, stop] >> check
    # Set once the tasks exist: each task would otherwise deep-copy every Param at construction,
    # which was half of the DAG factory's parse time.
    dag.params = recipe_params(recipe)
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


def _clusters() -> dict[str, ClusterProfile]:
    """The cluster profiles, for their pools; a broken clusters file fails each run's plan task with
    its own message, so here it only costs the pools."""
    try:
        return load_clusters(settings.clusters_file())
    except (RecipeError, OSError) as exc:
        log.error("cluster profiles unreadable; DAGs get no pools:\n%s", exc)
        return {}


def build_dags(directory: Path | None = None) -> dict[str, DAG]:
    dags: dict[str, DAG] = {}
    clusters = _clusters()
    for path in recipe_files(directory or settings.recipes_dir()):
        try:
            dag = build_dag(path, clusters)
        except RecipeError as exc:
            log.error("invalid recipe, its DAG is replaced by an error DAG:\n%s", exc)
            dag = broken_dag(path, exc)
        except Exception as exc:  # anything else one recipe trips on must not hide the others
            log.exception("recipe %s could not become a DAG", path)
            dag = broken_dag(path, RecipeError(str(path), [("", f"cannot build its DAG: {type(exc).__name__}: {exc}")]))
        if dag.dag_id in dags:
            dag = broken_dag(path, RecipeError(str(path), [("name", f"DAG id {dag.dag_id} is used by another recipe")]))
        dags[dag.dag_id] = dag
    return dags
