"""What the pipeline calls: the monitoring watchers of a run, and the publication after it.

The recipe's `monitoring:` section says what to watch (the server's /metrics, at which interval
and path; which exporters its job starts; whether to push); the cluster profile's `monitoring:`
says where things are (Prometheus, Pushgateway, Loki, the file_sd directory).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Iterable

from factorybench.monitoring.names import for_kind

log = logging.getLogger("factorybench.monitoring")


def watchers(plan, endpoint: dict[str, Any], transport: Any, job_id: str) -> list:
    """The server-metrics scraper (server kinds with known names), the run window, and live pushes."""
    from factorybench.monitoring.live import LiveWatcher
    from factorybench.monitoring.server import ServerMetricsWatcher, StepClock
    from factorybench.monitoring.window import WindowWatcher

    recipe, profile = plan.recipe_model(), plan.cluster_model().monitoring
    want = recipe.monitoring
    out: list = []
    server = None
    names = for_kind(recipe.service.kind)
    if want.prometheus and names is not None and endpoint.get("url"):
        server = ServerMetricsWatcher(endpoint["url"] + want.metrics_path, names, want.interval_s, plan.run_id,
                                      StepClock(), timeout_s=profile.timeout_s)
        out.append(server)
    out.append(WindowWatcher(str(job_id), [endpoint["node"]] if endpoint.get("node") else [], transport,
                             profile.slurm_energy))
    if want.push and profile.pushgateway_url:
        out.append(LiveWatcher(profile.pushgateway_url, recipe.name, plan.run_id, profile.live_interval_s, server,
                               profile.timeout_s))
    return out


def publish(plan, job_id: str | None, files: dict[str, Any], metrics: Iterable, steps: Iterable,
            judged: dict[str, Any]) -> None:
    """After the run is archived: its summary and verdicts to the Pushgateway, its job's output to
    Loki. Each is an observer: a failure is logged, never raised."""
    recipe, profile = plan.recipe_model(), plan.cluster_model().monitoring
    if recipe.monitoring.push and profile.pushgateway_url:
        try:
            from factorybench.monitoring import push

            cluster = files.get("monitoring/cluster.json")
            source = ((json.loads(cluster) if cluster else {}).get("energy") or {}).get("source")
            registry = push.run_registry(plan.run_id, judged["status"], metrics,
                                         [(s.index, s.metrics) for s in steps], judged, time.time(), source)
            push.push_run(profile.pushgateway_url, recipe.name, plan.run_id, registry, profile.timeout_s)
            log.info("run %s pushed to %s", plan.run_id, profile.pushgateway_url)
        except Exception as exc:
            log.warning("pushing run %s to %s failed: %s", plan.run_id, profile.pushgateway_url, exc)
    if profile.loki_url:
        try:
            from factorybench.monitoring.loki import push_logs

            streams = {"stdout": _text(files.get("service.out")), "stderr": _text(files.get("service.err"))}
            labels = {"job": str(job_id or "none"), "recipe": recipe.name, "run_id": plan.run_id,
                      "source": "factorybench"}
            lines = push_logs(profile.loki_url, labels, streams, profile.timeout_s)
            log.info("%d log lines of job %s pushed to %s", lines, job_id, profile.loki_url)
        except Exception as exc:
            log.warning("pushing job %s's output to Loki %s failed: %s", job_id, profile.loki_url, exc)


def _text(content: Any) -> str:
    if content is None:
        return ""
    return content.decode(errors="replace") if isinstance(content, bytes) else str(content)
