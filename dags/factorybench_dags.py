"""One Airflow DAG per recipe in recipes/ (or $FB_RECIPES_DIR). All logic lives in the factorybench package."""

from factorybench.airflow.dag_factory import build_dags

globals().update(build_dags())
