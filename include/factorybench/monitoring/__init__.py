"""Monitoring beside the load: the server's own /metrics, node and GPU exporters through Prometheus,
energy, the Pushgateway (run summaries, live progress, verdicts), Loki for job logs.

`setup` is what the pipeline calls (the watchers for a run, and the publication after it is
archived); `reconcile` runs when the run is judged (server vs client token check, node/GPU/energy
figures from Prometheus). Everything else is a plain module with no Airflow in it. See
docs/MONITORING.md. Modules are imported on use: recipes are parsed when Airflow parses DAGs.
"""
