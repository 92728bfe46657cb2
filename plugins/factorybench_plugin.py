"""Registers factorybench with Airflow: the verdict note listener, the report link, and the UI
(mounted at /factorybench in the API server and shown inside Airflow's UI as external views).
All logic lives in the factorybench package."""

from airflow.plugins_manager import AirflowPlugin

from factorybench.airflow import links, listeners
from factorybench.ui import plugin as ui


class FactorybenchPlugin(AirflowPlugin):
    name = "factorybench"
    listeners = [listeners]
    operator_extra_links = [links.ReportLink()]
    fastapi_apps = ui.FASTAPI_APPS
    external_views = ui.EXTERNAL_VIEWS
