"""The benchmark's steps, in data-flow order, with no Airflow in them.

recipe → plan (job spec) → SLURM job → endpoint → load → samples → archive → report.
Each Airflow task calls one of these; so does `factorybench run` for a run without Airflow.
Everything passed between steps is JSON-able, because it travels through XCom.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from factorybench import settings
from factorybench.endpoint import discover, wait_ready
from factorybench.errors import JobError
from factorybench.recipe import apply_overrides, cluster_for, load_clusters, load_recipe, recipe_hash
from factorybench.recipe.cluster import ClusterProfile
from factorybench.recipe.schema import Recipe
from factorybench.results import archive, db
from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.script import build_job_spec, job_name, sbatch_lines
from factorybench.slurm.spec import JobSpec
from factorybench.slurm.transport import Transport

log = logging.getLogger("factorybench.pipeline")


@dataclass(frozen=True)
class Plan:
    recipe_path: str
    recipe: dict[str, Any]
    recipe_hash: str
    cluster_name: str
    cluster: dict[str, Any]
    spec: dict[str, Any]
    run_id: str
    run_tag: str

    def recipe_model(self) -> Recipe:
        return Recipe.model_validate(self.recipe)

    def cluster_model(self) -> ClusterProfile:
        return ClusterProfile.model_validate(self.cluster)

    def spec_model(self) -> JobSpec:
        return JobSpec.from_dict(self.spec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        return cls(**d)


def run_tag(run_id: str) -> str:
    """Short, SLURM-safe and unique per run: names the jobs so each run's jobs are findable."""
    return hashlib.sha1(run_id.encode()).hexdigest()[:10]


def plan_run(recipe_path: str | Path, run_id: str, overrides: dict[str, Any] | None = None,
             clusters_file: str | Path | None = None) -> Plan:
    source = str(recipe_path)
    recipe = load_recipe(recipe_path)
    if overrides:
        recipe = apply_overrides(recipe, overrides, f"{source} (with run overrides)")
    clusters = load_clusters(clusters_file or settings.clusters_file())
    cluster = cluster_for(recipe, clusters, source)
    digest = recipe_hash(recipe)
    tag = run_tag(run_id)
    spec = build_job_spec(recipe, cluster, tag, digest)
    return Plan(recipe_path=source, recipe=recipe.model_dump(mode="json"), recipe_hash=digest,
                cluster_name=recipe.cluster.profile, cluster=cluster.model_dump(mode="json"),
                spec=spec.to_dict(), run_id=run_id, run_tag=tag)


async def find_endpoint(plan: Plan, job: JobInfo, transport: Transport) -> dict[str, Any]:
    recipe, cluster = plan.recipe_model(), plan.cluster_model()
    endpoint = discover(job, recipe, cluster)
    log.info("job %s on %s: probing %s%s", job.job_id, endpoint.node, endpoint.url, recipe.readiness.path)
    ready_s = await wait_ready(endpoint, recipe.readiness, lambda: transport.status(job.job_id))
    log.info("service ready after %.1fs", ready_s)
    return {**endpoint.to_dict(), "ready_s": ready_s}


def archive_dir(plan: Plan) -> Path:
    return archive.run_dir(settings.archive_dir(), plan.recipe_model().name, plan.run_id)


def load_config(plan: Plan, endpoint: dict[str, Any]):
    """Recipe client section + discovered endpoint → the load engine's config."""
    from factorybench.load import LoadConfig

    recipe = plan.recipe_model()
    c = recipe.client
    return LoadConfig(target=endpoint["url"], protocol=c.protocol, model=recipe.service.model or "",
                      stream=c.stream, profile=c.profile, dataset=c.dataset, slo=c.slo, guard=c.guard,
                      http=c.http, extra_body=c.extra_body, workers=c.workers, timeout_s=c.timeout_s)


def run_client(plan: Plan, endpoint: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Run the load here (client.where=local); samples go to the archive, the summary to XCom."""
    from factorybench.load import run_load

    config = load_config(plan, endpoint)
    log.info("Load: %s %s against %s", config.protocol.value, config.profile.kind, config.target)
    result = run_load(config)
    result.save(out_dir / "load")
    summary = result.summary.model_dump(mode="json")
    log.info("Load done: %s", {k: summary.get(k) for k in db.SUMMARY_UNITS})
    return summary


def client_job_spec(plan: Plan, endpoint: dict[str, Any]) -> JobSpec:
    """The load client as a SLURM job of `client.tasks` tasks (srun, file barrier, exact merge).

    The target is the service's node name, as compute nodes see it. The load config travels
    base64-encoded inside the script, so no recipe value is ever parsed by the shell.
    """
    recipe, cluster = plan.recipe_model(), plan.cluster_model()
    config = load_config(plan, {"url": f"http://{endpoint['node']}:{endpoint['port']}"})
    blob = base64.b64encode(config.model_dump_json().encode()).decode()
    res = recipe.client.resources.model_copy(update={"ntasks": recipe.client.tasks})
    name = job_name(recipe, plan.run_tag, "client")
    rundir = f"{cluster.workdir.rstrip('/')}/{name}"
    header = "\n".join(f"#SBATCH {line}" for line in
                       sbatch_lines(name, res, cluster.workdir, "%x-%j.out", "%x-%j.err"))
    env = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in cluster.env.items())
    script = (f"{cluster.shebang}\n{header}\nset -euo pipefail\n{env}\n"
              f"rm -rf {shlex.quote(rundir)} && mkdir -p {shlex.quote(rundir)}\n"
              f"echo {blob} | base64 -d > {shlex.quote(rundir + '/load.json')}\n"
              f"srun python -m factorybench.load slurm-task --config {shlex.quote(rundir + '/load.json')} "
              f"--dir {shlex.quote(rundir)} --json\n")
    return JobSpec(name=name, script=script, workdir=cluster.workdir, time_limit_min=res.time_minutes,
                   partition=res.partition, account=res.account, qos=res.qos, nodes=res.nodes,
                   ntasks=res.ntasks, cpus_per_task=res.cpus, mem=res.mem, environment=dict(cluster.env))


async def run_client_job(plan: Plan, endpoint: dict[str, Any], transport: Transport,
                         out_dir: Path) -> dict[str, Any]:
    """Submit the client job, wait for it, and take rank 0's merged summary from its stdout."""
    spec = client_job_spec(plan, endpoint)
    poll = plan.cluster_model().poll_interval_s
    job_id = await transport.submit(spec)
    log.info("load client: SLURM job %s with %d tasks", job_id, spec.ntasks)
    info: JobInfo | None = None
    try:
        while (info := await transport.status(job_id)) and not info.terminal:
            await asyncio.sleep(poll)
    finally:
        if info is None or not info.terminal:  # interrupted: never leave the client running
            await transport.cancel(job_id)
    out = await transport.output(job_id, spec)
    archive.write_files(out_dir, {"client.out": out.stdout, "client.err": out.stderr, "client-job.sh": spec.script})
    start, end = out.stdout.find("{"), out.stdout.rfind("}")
    # Exit code 3 is the engine's "finished, but the client could not keep up": still a result.
    if start < 0 or info.state not in (JobState.COMPLETED, JobState.FAILED):
        raise JobError(f"load client job ended without a result: {info.describe()}\n{out.stderr[-2000:]}",
                       job_id, info.state.value, info.reason)
    summary = json.loads(out.stdout[start:end + 1])
    log.info("Load done (%d tasks): %s", spec.ntasks, {k: summary.get(k) for k in db.SUMMARY_UNITS})
    return summary


def judge(summary: dict[str, Any] | None, service_before_stop: JobInfo | None) -> tuple[str, str]:
    """success | invalid | failed, with the reason a person needs."""
    if service_before_stop is not None and service_before_stop.terminal:
        return "failed", f"the service job ended before teardown: {service_before_stop.describe()}"
    if summary is None:
        return "failed", "no load result: an earlier task failed (see its log)"
    if not summary.get("valid", True):
        return "invalid", "the client could not keep up: " + "; ".join(summary.get("invalid_reasons") or [])
    if not summary.get("requests"):
        return "failed", "no request completed"
    if summary.get("errors"):
        return "failed", f"{summary['errors']} of {summary['requests'] + summary['errors']} requests failed"
    return "success", ""


def archive_run(plan: Plan, dag_id: str, job_id: str | None, job: JobInfo | None,
                endpoint: dict[str, Any] | None, summary: dict[str, Any] | None,
                status: str, message: str) -> dict[str, Any]:
    recipe = plan.recipe_model()
    directory = archive.write_files(archive_dir(plan), {
        "recipe.json": plan.recipe, "plan.json": {k: v for k, v in plan.to_dict().items() if k != "spec"},
        "job.sh": plan.spec["script"], "job.json": job.to_dict() if job else None,
        "endpoint.json": endpoint, "summary.json": summary,
        "verdict.json": {"status": status, "message": message},
    })
    db_id = db.record_run(
        settings.results_url(), recipe=recipe.name, recipe_hash=plan.recipe_hash, dag_id=dag_id,
        dag_run_id=plan.run_id, cluster=plan.cluster_name, transport=plan.cluster["transport"],
        job_ids=[job_id] if job_id else [], nodes=list(job.nodes) if job else [],
        service_state=job.state.value if job else None,
        started_at=job.start_time if job else None, finished_at=db.utcnow(), status=status,
        message=message, archive_path=str(directory), metrics=summary or {})
    return {"db_id": db_id, "status": status, "message": message, "archive": str(directory),
            "results_url": _redact_url(settings.results_url()), "recipe": recipe.name,
            "job_id": job_id, "summary": {k: (summary or {}).get(k) for k in db.SUMMARY_UNITS}}


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def format_report(archived: dict[str, Any]) -> str:
    s = archived["summary"]
    rows = [("recipe", archived["recipe"]), ("status", archived["status"]), ("SLURM job", archived["job_id"])]
    rows += [(k, "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))) for k, v in s.items()]
    rows += [("archive", archived["archive"]), ("results db", archived["results_url"])]
    if archived["message"]:
        rows.append(("message", archived["message"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
