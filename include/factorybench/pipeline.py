"""The benchmark's steps, in data-flow order, with no Airflow in them.

recipe → plan (job spec) → SLURM job → endpoint → load → samples → verdict → archive → report.
Each Airflow task calls one of these; so does `factorybench run` for a run without Airflow.
What passes between steps is JSON-able (it travels through XCom); bulky outputs (samples, job
logs) go to the run's spool, and `archive_run` is the only step that writes the archive and the
results database.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shlex
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from factorybench import provenance, settings
from factorybench.endpoint import discover, wait_ready
from factorybench.errors import JobError, LoadError
from factorybench.monitoring import setup as monitoring
from factorybench.monitoring.reconcile import reconcile
from factorybench.plan import Plan, run_tag
from factorybench.recipe import (apply_overrides, cluster_for, load_clusters, load_recipe, recipe_hash,
                                 workload_hash)
from factorybench.recipe.params import PROVENANCE_KEYS, overrides
from factorybench.results import metrics as catalog
from factorybench.results.archive import RunArchive, Spool
from factorybench.results.database import redact
from factorybench.results.store import RunRecord, StepRecord, record_run
from factorybench.servers import kind as server_kind
from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.script import build_job_spec, job_name, sbatch_lines
from factorybench.slurm.spec import JobSpec
from factorybench.slurm.transport import Transport
from factorybench.watch import Aborted, Observed, Watcher, measure

log = logging.getLogger("factorybench.pipeline")

# The load result's files in the spool and the archive.
LOAD_RESULT = "load/summary.json"
FAILURE = "load/failure.txt"  # why the load gave no result, when it did not
REPORT_KEYS = ("requests", "errors", "request_rate", "output_tokens_per_s", "ttft_p50_ms", "ttft_p99_ms",
               "itl_p50_ms", "e2e_p50_ms")


def plan_run(recipe_path: str | Path, dag_id: str, run_id: str, params: dict[str, Any] | None = None, *,
             trigger: str = "cli", triggered_by: str | None = None,
             clusters_file: str | Path | None = None) -> Plan:
    """Recipe file + the run's params (UI form, REST conf, CLI --set) → the run's plan."""
    source = str(recipe_path)
    text = Path(recipe_path).read_text()
    recipe = load_recipe(recipe_path)
    params = params or {}
    changes = overrides(params, recipe)
    if changes:
        log.info("Run overrides: %s", changes)
        recipe = apply_overrides(recipe, changes, f"{source} (with run overrides)")
    clusters = load_clusters(clusters_file or settings.clusters_file())
    cluster = cluster_for(recipe, clusters, source)
    digest = recipe_hash(recipe)
    tag = run_tag(run_id)
    spec = build_job_spec(recipe, cluster, tag, digest)
    prov = {"trigger": trigger, "triggered_by": triggered_by,
            **{k: str(params[k]) for k in PROVENANCE_KEYS if params.get(k)},
            "fb_version": provenance.fb_version(), "git_commit": provenance.git_commit(),
            "client_versions": provenance.client_versions()}
    return Plan(recipe_path=source, recipe_text=text, recipe=recipe.model_dump(mode="json"), recipe_hash=digest,
                workload_hash=workload_hash(recipe), overrides=changes, cluster_name=recipe.cluster.profile,
                cluster=cluster.model_dump(mode="json"),
                spec=spec.to_dict(), dag_id=dag_id, run_id=run_id, run_tag=tag, provenance=prov)


def spool_of(plan: Plan) -> Spool:
    return Spool(settings.archive_url(), plan.dag_id, plan.run_id)


async def find_endpoint(plan: Plan, job: JobInfo, transport: Transport) -> dict[str, Any]:
    recipe, cluster = plan.recipe_model(), plan.cluster_model()
    endpoint = discover(job, recipe, cluster)
    log.info("job %s on %s: probing %s%s", job.job_id, endpoint.node, endpoint.url, recipe.readiness.path)
    ready_s = await wait_ready(endpoint, recipe.readiness, lambda: transport.status(job.job_id))
    log.info("service ready after %.1fs", ready_s)
    version = await service_version(endpoint.url, recipe.service.kind)
    if version:
        log.info("service version: %s", version)
    return {**endpoint.to_dict(), "ready_s": ready_s, "service_version": version}


async def service_version(url: str, kind: str) -> str | None:
    """What the server says its version is, where its kind has a version endpoint; None otherwise."""
    path = server_kind(kind).version_path
    if not path:
        return None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.get(url + path) as resp:
                if resp.status != 200:
                    return None
                doc = await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None
    value = server_kind(kind).version_of(doc)
    return value[:250] if value else None


def load_config(plan: Plan, endpoint: dict[str, Any]):
    """Recipe client section + discovered endpoint → the load engine's config (a multi-node service's
    other replicas too: the load is spread over all of them)."""
    from factorybench.load import LoadConfig
    from factorybench.load.config import target_url

    recipe = plan.recipe_model()
    c = recipe.client
    others = [r["url"] for r in endpoint.get("replicas") or () if r["url"] != endpoint["url"]]
    return LoadConfig(target=target_url(c.protocol, endpoint["url"], c.db), protocol=c.protocol,
                      replicas=[target_url(c.protocol, url, c.db) for url in others],
                      model=recipe.service.model or "", stream=c.stream, profile=c.profile, dataset=c.dataset,
                      slo=c.slo, guard=c.guard, http=c.http, extra_body=c.extra_body, ignore_eos=c.ignore_eos,
                      embeddings=c.embeddings, vector=c.vector, kv=c.kv, sql=c.sql, db=c.db, sanity=c.sanity,
                      workers=c.workers, timeout_s=c.timeout_s)


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary.get(k) for k in REPORT_KEYS}


def watchers_for(plan: Plan, endpoint: dict[str, Any], transport: Transport, job_id: str) -> list[Watcher]:
    """What watches the run beside the load (see factorybench.watch)."""
    from factorybench.liveness import JobLiveness
    from factorybench.ui import progress as live_progress

    watchers: list[Watcher] = [JobLiveness(transport, job_id, plan.cluster_model().poll_interval_s)]
    watchers += monitoring.watchers(plan, endpoint, transport, job_id)  # server /metrics, run window, live push
    watchers += live_progress.watchers(plan, settings.archive_url())  # the UI's live view (factorybench.ui.progress)
    return watchers


async def run_client(plan: Plan, endpoint: dict[str, Any], transport: Transport, job_id: str) -> dict[str, Any]:
    """Run the load here (client.where=local) with the watchers beside it; the result and what the
    watchers saw go to the spool, the summary to XCom.

    A load stopped early (a watcher saw the service job end, or the engine found the service
    unreachable) keeps and spools its samples so far, then fails with the reason and the job's state.
    """
    from factorybench.load import arun_load
    from factorybench.load.engine import Stop

    config = load_config(plan, endpoint)
    log.info("Load: %s %s against %s", config.protocol.value, config.profile.kind, config.target)
    stop = Stop()
    failure: str | None = None
    try:
        result, observed = await measure(arun_load(config, stop), watchers_for(plan, endpoint, transport, job_id),
                                         stop=stop.set, grace_s=config.stop_grace_s + 10)
    except Aborted as exc:
        result, observed, failure = exc.result, exc.observed, f"load stopped early: {exc}"
    if result is not None:
        with tempfile.TemporaryDirectory(prefix="fb-load-") as tmp:
            result.save(tmp)
            spool_of(plan).put_local_dir(tmp, "load")
    _spool_observed(plan, observed)
    if failure is None and result.summary.aborted:
        failure = f"load stopped early: {result.summary.abort_reason}; {await _job_state(transport, job_id)}"
    if failure is not None:
        raise LoadError(failure)
    summary = result.summary.model_dump(mode="json")
    log.info("Load done: %s", _brief(summary))
    return summary


async def _job_state(transport: Transport, job_id: str, wait_s: float = 10.0) -> str:
    """The service job's state after the engine lost the service: its final state if SLURM has it soon."""
    deadline = time.monotonic() + wait_s
    info = await transport.status(job_id)
    while info.state is JobState.RUNNING and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        info = await transport.status(job_id)
    if info.state in (JobState.PENDING, JobState.REQUEUED):  # it was RUNNING when the load began
        return f"service {info.describe()}: SLURM requeued it off its node"
    return f"service {info.describe()}"


async def _measure(plan: Plan, load, watchers: list[Watcher]):
    try:
        return await measure(load, watchers)
    except Aborted as exc:
        raise LoadError(f"load stopped early: {exc}") from None


def _spool_observed(plan: Plan, observed: dict[str, Observed]) -> None:
    spool = spool_of(plan)
    for name, seen in observed.items():
        for file, content in seen.files.items():
            spool.put(f"{name}/{file}", content)
        if seen.metrics:
            spool.put(f"metrics/{name}.json", [m.to_dict() for m in seen.metrics])


def client_job_spec(plan: Plan, endpoint: dict[str, Any]) -> JobSpec:
    """The load client as a SLURM job of `client.tasks` tasks (srun, file barrier, exact merge).

    The target is the service's node name, as compute nodes see it (each replica's, for a service
    on several nodes). The load config travels
    base64-encoded inside the script, so no recipe value is ever parsed by the shell.
    """
    recipe, cluster = plan.recipe_model(), plan.cluster_model()
    by_name = [{"url": f"http://{r['node']}:{r['port']}"} for r in endpoint.get("replicas") or [endpoint]]
    config = load_config(plan, {"url": by_name[0]["url"], "replicas": by_name})
    blob = base64.b64encode(config.model_dump_json().encode()).decode()
    res = recipe.client.resources.model_copy(update={"ntasks": recipe.client.tasks})
    name = job_name(recipe, plan.run_tag, "client")
    rundir = client_rundir(plan)
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


def client_rundir(plan: Plan) -> str:
    return f"{plan.cluster_model().workdir.rstrip('/')}/{job_name(plan.recipe_model(), plan.run_tag, 'client')}"


async def run_client_job(plan: Plan, endpoint: dict[str, Any], transport: Transport,
                         service_job_id: str) -> dict[str, Any]:
    """Submit the client job, wait for it with the watchers beside it, and bring its merged result
    and samples back through the transport into the spool."""
    spec = client_job_spec(plan, endpoint)
    poll = plan.cluster_model().poll_interval_s
    job_id = await transport.submit(spec)
    log.info("load client: SLURM job %s with %d tasks", job_id, spec.ntasks)

    async def wait() -> JobInfo:
        while not (info := await transport.status(job_id)).terminal:
            await asyncio.sleep(poll)
        return info

    done = False
    try:
        info, observed = await _measure(plan, wait(), watchers_for(plan, endpoint, transport, service_job_id))
        done = True
    finally:
        if not done:  # interrupted or aborted: never leave the client running
            await transport.cancel(job_id)
    _spool_observed(plan, observed)
    out = await transport.output(job_id, spec)
    spool = spool_of(plan)
    for name, content in (("client.out", out.stdout), ("client.err", out.stderr), ("client-job.sh", spec.script),
                          ("client-job.json", info.to_dict())):
        spool.put(name, content)
    # Exit code 3 is the engine's "finished, but the client could not keep up": still a result.
    if info.state not in (JobState.COMPLETED, JobState.FAILED):
        raise JobError(f"load client job ended without a result: {info.describe()}\n{out.stderr[-2000:]}",
                       job_id, info.state.value, info.reason)
    rundir = client_rundir(plan)
    try:
        result = await transport.fetch(f"{rundir}/summary.json")
        samples = await transport.fetch(f"{rundir}/samples.parquet")
    except Exception as exc:
        raise JobError(f"load client job {job_id} left no merged result in {rundir}: {exc}\n{out.stderr[-2000:]}",
                       job_id, info.state.value, info.reason) from exc
    spool.put(LOAD_RESULT, result)
    spool.put("load/samples.parquet", samples)
    summary = json.loads(result)["summary"]
    log.info("Load done (%d tasks, %d samples bytes fetched): %s", spec.ntasks, len(samples), _brief(summary))
    return summary


async def collect_logs(plan: Plan, job_id: str, transport: Transport):
    """The service job's stdout and stderr, into the spool (and returned for the task log)."""
    out = await transport.output(job_id, plan.spec_model())
    spool = spool_of(plan)
    spool.put("service.out", out.stdout)
    spool.put("service.err", out.stderr)
    return out


def record_failure(plan: Plan, error: BaseException | str) -> None:
    """Keep why the run's load could not give a result, for `judge` (a later task) to say so."""
    spool_of(plan).put(FAILURE, str(error))


def assess(summary: dict[str, Any] | None, stopped: dict[str, Any] | None, job_id: str | None,
           failure: str | None = None) -> tuple[str, str]:
    """success | invalid | failed, with the reason a person needs.

    A run is never a success if teardown did not confirm the service job is gone, the service
    ended before teardown (it died under load), the client was invalid, or any request failed.
    """
    if job_id and stopped is None:
        return "failed", ("teardown failed or did not run, so the service job may still be running "
                          "(see the stop_service task)")
    if stopped is not None:
        before, after = JobInfo.from_dict(stopped["before"]), JobInfo.from_dict(stopped["after"])
        if before.terminal:
            return "failed", f"the service job ended before teardown: {before.describe()}"
        if not after.terminal:
            return "failed", f"the service job is still alive after teardown: {after.describe()}"
    if summary is None:
        return "failed", f"no load result: {failure or 'an earlier task failed (see its log)'}"
    if not summary.get("valid", True):
        return "invalid", "the measurement is not valid: " + "; ".join(summary.get("invalid_reasons") or [])
    if not summary.get("requests"):
        return "failed", "no request completed"
    if summary.get("errors"):
        return "failed", f"{summary['errors']} of {summary['requests'] + summary['errors']} requests failed"
    return "success", ""


def judge(plan: Plan, summary: dict[str, Any] | None, stopped: dict[str, Any] | None,
          job_id: str | None) -> dict[str, Any]:
    """The run's status (is it a valid measurement?) and, for valid runs, its verdict against the
    recipe's history. Only successful runs are judged: a failed run has nothing to compare."""
    failure = spool_of(plan).get(FAILURE)
    status, message = assess(summary, stopped, job_id, failure.decode() if failure else None)
    status, message = reconcile(plan, spool_of(plan), status, message)  # server vs client tokens; node/GPU/energy
    judged = {"status": status, "message": message, "verdict": None, "verdict_line": None, "verdicts": None,
              "failed": False}
    if status != "success":
        return judged
    from factorybench.regression import Subject
    from factorybench.regression import judge as against_history
    from factorybench.results.query import Results

    recipe, spool = plan.recipe_model(), spool_of(plan)
    current = {m.name: m.value for m in _run_metrics(summary, spool.files())}
    subject = Subject(recipe.name, plan.recipe_hash, plan.workload_hash, plan.cluster_name, recipe.checks,
                      at=datetime.now(timezone.utc), exclude=plan.run_id)
    verdict = against_history(Results(), subject, current, _sample_columns(spool.get("load/samples.parquet")))
    log.info("Verdict: %s", verdict.line)
    return {**judged, "verdict": verdict.verdict, "verdict_line": verdict.line, "verdicts": verdict.to_dict(),
            "failed": verdict.failed}


def _run_metrics(summary: dict[str, Any] | None, files: dict[str, Any]) -> list[catalog.MetricValue]:
    """The run's whole-run metrics: the client's summary plus what the watchers measured."""
    metrics = catalog.from_summary(summary) if summary else []
    for name in sorted(n for n in files if n.startswith("metrics/")):
        metrics += [catalog.MetricValue(**m) for m in json.loads(files[name])]
    return metrics


def _sample_columns(parquet: bytes | None) -> dict[str, Any]:
    """This run's raw samples per column (successful, measured requests), for Mann-Whitney."""
    if not parquet:
        return {}
    import io

    import pyarrow.parquet as pq

    from factorybench.results.query import measured_values

    table = pq.read_table(io.BytesIO(parquet))
    return {c: measured_values(table, c) for c in {catalog.sample_field(m) for m in catalog.CATALOG} if c}


def _steps(result: dict[str, Any] | None) -> list[StepRecord]:
    steps = []
    for r in (result or {}).get("steps") or []:
        step, summary = r.get("step") or {}, r.get("summary") or {}
        steps.append(StepRecord(index=r["index"], label=step.get("label", f"step {r['index']}"),
                                mode=step.get("mode"), streams=step.get("streams"), rate=step.get("rate"),
                                valid=bool(summary.get("valid", True)), params=step,
                                metrics=catalog.from_summary(summary)))
    return steps


def archive_run(plan: Plan, job_id: str | None, endpoint: dict[str, Any] | None,
                summary: dict[str, Any] | None, stopped: dict[str, Any] | None,
                judged: dict[str, Any]) -> dict[str, Any]:
    """The only writer of the archive and the results database: the spool's files plus the run's
    own records, committed together; re-archiving the same DAG run replaces both."""
    recipe = plan.recipe_model()
    spool = spool_of(plan)
    files: dict[str, Any] = spool.files()
    job = JobInfo.from_dict(stopped["after"]) if stopped else None
    files.update({
        "recipe.yaml": plan.recipe_text, "recipe.json": plan.recipe,
        "plan.json": {k: v for k, v in plan.to_dict().items() if k not in ("spec", "recipe_text", "recipe")},
        "job.sh": plan.spec["script"], "job.json": job.to_dict() if job else None, "endpoint.json": endpoint,
        "verdict.json": judged,
    })
    result = json.loads(files[LOAD_RESULT]) if LOAD_RESULT in files else None
    run_summary = summary or (result or {}).get("summary")
    metrics = _run_metrics(run_summary, files)
    prov, svc = plan.provenance, recipe.service
    archive = RunArchive(settings.archive_url(), recipe.name, plan.run_id)
    record = RunRecord(
        recipe=recipe.name, recipe_hash=plan.recipe_hash, workload_hash=plan.workload_hash,
        recipe_text=plan.recipe_text, dag_id=plan.dag_id,
        dag_run_id=plan.run_id, trigger=prov.get("trigger", "unknown"), triggered_by=prov.get("triggered_by"),
        ci_ref=prov.get("ci_ref"), fb_version=prov.get("fb_version"), git_commit=prov.get("git_commit"),
        cluster=plan.cluster_name, transport=plan.cluster["transport"],
        job_ids=[j for j in (job_id, _client_job_id(files)) if j], nodes=list(job.nodes) if job else [],
        partition=svc.resources.partition, image=svc.image, model=svc.model, service_kind=svc.kind,
        service_version=(endpoint or {}).get("service_version"), client_versions=prov.get("client_versions") or {},
        service_state=job.state.value if job else None, started_at=job.start_time if job else None,
        finished_at=datetime.now(timezone.utc), status=judged["status"], message=judged["message"],
        verdict=judged.get("verdict"), verdict_line=judged.get("verdict_line"), verdicts=judged.get("verdicts"),
        archive_url=archive.url, metrics=metrics,
        steps=_steps(result) if result and len(result.get("steps") or []) > 1 else [])
    files["report.html"] = _report(record, files, judged)
    meta = {"recipe": recipe.name, "dag_id": plan.dag_id, "dag_run_id": plan.run_id}
    with archive.transaction(files, meta) as entries:
        record.artifacts = entries
        db_id = record_run(settings.results_url(), record)
    try:  # the run's summary and verdicts to the Pushgateway, its job's output to Loki: never the run's failure
        monitoring.publish(plan, job_id, files, record.metrics, record.steps, judged)
    except Exception:
        log.exception("publishing run %s to the monitoring stack failed; it is archived", plan.run_id)
    spool.clear()
    return {"db_id": db_id, "status": judged["status"], "message": judged["message"],
            "verdict": judged.get("verdict"), "verdict_line": judged.get("verdict_line"),
            "failed": judged.get("failed", False), "failing": (judged.get("verdicts") or {}).get("failing", []),
            "archive": archive.url, "results_url": redact(settings.results_url()), "recipe": recipe.name,
            "job_id": job_id, "summary": _brief(run_summary or {})}


def _report(record: RunRecord, files: dict[str, Any], judged: dict[str, Any]) -> str | None:
    """The run's HTML report, drawn before the run is stored so it is committed with the archive.
    A report that cannot be drawn is logged, never the run's failure: `factorybench report` redraws it."""
    from factorybench.report import RunReportData, fetch_history, primary_metrics, render_run_report
    from factorybench.results.query import Results

    try:
        current = {m.name: m.value for m in record.metrics}
        history, notes = fetch_history(Results(), record.recipe, primary_metrics(judged.get("verdicts"), current))
        data = RunReportData.from_parts(record, files.get(LOAD_RESULT), files.get("load/samples.parquet"),
                                        judged.get("verdicts"), history=history, annotations=notes, metrics=current)
        return render_run_report(data)
    except Exception:
        log.exception("the report of run %s could not be drawn", record.dag_run_id)
        return None


def _client_job_id(files: dict[str, Any]) -> str | None:
    raw = files.get("client-job.json")
    return json.loads(raw)["job_id"] if raw else None


def format_report(archived: dict[str, Any]) -> str:
    s = archived["summary"]
    rows = [("recipe", archived["recipe"]), ("status", archived["status"]), ("SLURM job", archived["job_id"])]
    if archived.get("verdict_line"):
        rows.append(("verdict", archived["verdict_line"]))
    rows += [(k, "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))) for k, v in s.items()]
    rows += [("archive", archived["archive"]), ("results db", archived["results_url"])]
    if archived["message"]:
        rows.append(("message", archived["message"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


async def execute(recipe_path: str | Path, transport: Transport, params: dict[str, Any] | None = None, *,
                  run_id: str | None = None, triggered_by: str | None = None) -> dict[str, Any]:
    """One whole run without Airflow (`factorybench run`): the same steps, in the same order, into
    the same archive and database. Teardown, judging and archiving happen on every path."""
    from factorybench.slurm.transport import cancel_and_wait
    from factorybench.slurm.wait import wait_for_job

    recipe = load_recipe(recipe_path)
    run_id = run_id or f"cli__{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S.%f')}"
    plan = plan_run(recipe_path, recipe.dag_id, run_id, params, trigger="cli", triggered_by=triggered_by)
    cluster, spec = plan.cluster_model(), plan.spec_model()
    job_id = await transport.submit(spec)
    log.info("submitted %s as SLURM job %s via %s", spec.name, job_id, cluster.transport)
    endpoint = summary = stopped = None
    try:
        outcome = await wait_for_job(job_id, lambda: transport.status(job_id), lambda: transport.cancel(job_id),
                                     poll_interval=cluster.poll_interval_s, pending=cluster.pending)
        if outcome["status"] != "running":
            raise JobError(f"SLURM job ended before it started serving: {outcome['message']}", job_id)
        endpoint = await find_endpoint(plan, JobInfo.from_dict(outcome["job"]), transport)
        run = run_client_job if recipe.client.where == "slurm" else run_client
        summary = await run(plan, endpoint, transport, job_id)
    except Exception as exc:  # recorded as the run's failure below, never lost
        log.error("run %s failed: %s", run_id, exc)
        record_failure(plan, exc)
    finally:
        try:
            before, after = await cancel_and_wait(transport, job_id, cluster.poll_interval_s)
            stopped = {"before": before.to_dict(), "after": after.to_dict()}
        except Exception as exc:
            log.error("teardown of job %s failed: %s", job_id, exc)
        try:
            await collect_logs(plan, job_id, transport)
        except Exception as exc:
            log.error("could not collect job %s's output: %s", job_id, exc)
    judged = judge(plan, summary, stopped, job_id)
    return archive_run(plan, job_id, endpoint, summary, stopped, judged)
