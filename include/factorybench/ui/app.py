"""The factorybench UI: a FastAPI app that plugins/factorybench_plugin.py mounts at /factorybench in
Airflow's API server, shown inside Airflow's UI as external views (iframes):

- GET  /                               Benchmarks (nav): every recipe, last verdict, sparklines; ?tag= ?cluster=
- GET  /recipes/{recipe}               a recipe's trend of one metric (?metric=), change points, accepted changes
- POST /recipes/{recipe}/accept        accept a change from a run on (edit permission)
- GET  /compare?a=&b=                  two runs side by side (no b: a against its baseline); /compare/report: the HTML
- GET  /clusters?profile=&transport=   partitions, nodes, GPUs and factorybench's SLURM queue (cached 15 s)
- GET  /runs/{dag_id}/{run_id}         a DAG run's Benchmark tab: result, logs, jobs; live progress while it runs
- GET  /runs/{dag_id}/{run_id}/report  the archived report.html; /files/{name}: an archived text file
- POST /runs/{dag_id}/{run_id}/cancel  mark the DAG run failed and cancel its SLURM jobs (edit permission)
- GET  /dags/{dag_id}                  a DAG's tab: its recipe's trend page
- GET  /static/{name}                  ui.css, ui.js, icon.svg

Every route needs an Airflow user (auth.py). Pages are server-rendered Jinja2 with inline SVG; the
only script (static/ui.js) opens Airflow's own pages around the frame. Results are read through
`Results`, annotations written through `store.annotate`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from airflow.api_fastapi.logging.decorators import action_logging
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from factorybench import settings
from factorybench.errors import FactorybenchError
from factorybench.ui import auth, control, views
from factorybench.ui.plugin import PREFIX

CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'self'")
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
REFRESH_S = 5  # the Benchmark tab of a run in flight reloads itself this often
STATIC = {"ui.css": "text/css", "ui.js": "text/javascript", "icon.svg": "image/svg+xml"}

STATES = control.ClusterStates()


def _q(text: str) -> str:
    return quote(str(text), safe="")


class Links:
    """Paths of this app's pages and of Airflow's own, relative to where Airflow is served."""

    def __init__(self, request: Request):
        self.root = request.scope.get("root_path", "").rstrip("/")
        self.airflow = self.root.removesuffix(PREFIX)

    def _with(self, path: str, query: dict[str, Any]) -> str:
        query = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{self.root}{path}" + (f"?{urlencode(query)}" if query else "")

    def overview(self, **query: Any) -> str:
        return self._with("/", query)

    def recipe(self, recipe: str, **query: Any) -> str:
        return self._with(f"/recipes/{_q(recipe)}", query)

    def run(self, dag_id: str, run_id: str, tail: str = "", **query: Any) -> str:
        return self._with(f"/runs/{_q(dag_id)}/{_q(run_id)}{tail}", query)

    def compare(self, **query: Any) -> str:
        return self._with("/compare", query)

    def clusters(self, **query: Any) -> str:
        return self._with("/clusters", query)

    def static(self, name: str) -> str:
        return f"{self.root}/static/{name}?v={_static(name)[1]}"  # a new file, a new URL: no stale cache

    def airflow_run(self, dag_id: str, run_id: str) -> str:
        return f"{self.airflow}/dags/{_q(dag_id)}/runs/{_q(run_id)}"

    def airflow_dag(self, dag_id: str) -> str:
        return f"{self.airflow}/dags/{_q(dag_id)}"


@lru_cache(maxsize=1)
def _templates():
    import jinja2

    from factorybench.ui.svg import fmt

    env = jinja2.Environment(loader=jinja2.PackageLoader("factorybench.ui", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = fmt
    env.filters["when"] = lambda t: "-" if t is None else f"{t:%Y-%m-%d %H:%M}"
    env.filters["signed"] = lambda v, digits=1: "-" if v is None else f"{v:+.{digits}f}%"
    return env


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(template).render(**{"refresh": None, **context, "links": Links(request)})
    return HTMLResponse(html, status_code)


def message(request: Request, title: str, text: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return page(request, "message.html", status_code, title=title, text=text, **context)


def _results():
    from factorybench.results.query import Results

    return Results()


router = APIRouter(dependencies=[auth.authenticated])


@router.get("/", name="overview")
def overview(request: Request, user: auth.GetUserDep, tag: str | None = None, cluster: str | None = None):
    cards, tags, clusters = views.overview(_results(), lambda dag_id: auth.can(user, "GET", dag_id), tag or None,
                                           cluster or None)
    return page(request, "overview.html", cards=cards, tags=tags, clusters=clusters, tag=tag or "",
                cluster=cluster or "", spark_runs=views.SPARK_RUNS)


@router.get("/recipes/{recipe}", name="trend", dependencies=[auth.read_recipe])
def trend(request: Request, recipe: str, user: auth.GetUserDep, metric: str | None = None,
          accepted: str | None = None):
    results, links = _results(), Links(request)
    dag_id = views.dag_id_of(recipe)
    try:
        view = views.trend_view(results, recipe, metric, lambda p: links.run(dag_id, p.dag_run_id))
    except FactorybenchError as exc:
        return message(request, f"Recipe {recipe}", str(exc), 404)
    return page(request, "trend.html", view=view, can_edit=auth.can(user, "PUT", dag_id), accepted=accepted)


@router.post("/recipes/{recipe}/accept", name="accept",
             dependencies=[auth.edit_recipe, auth.same_origin, Depends(action_logging("factorybench_accept_change"))])
def accept(request: Request, recipe: str, user: auth.GetUserDep, dag_run_id: str = Form(...),
           reason: str = Form(...), metric: str = Form("")):
    from factorybench.results.store import annotate

    try:
        annotate(settings.results_url(), recipe, user.get_name(), reason.strip()[:500], dag_run_id=dag_run_id)
    except FactorybenchError as exc:
        return message(request, "Change not accepted", str(exc), 400)
    return RedirectResponse(Links(request).recipe(recipe, metric=metric, accepted=dag_run_id), 303)


def _readable(user, results, ref: str):
    try:
        detail = results.run(ref)
    except FactorybenchError as exc:
        raise HTTPException(404, str(exc)) from None
    if not auth.can(user, "GET", detail.run.dag_id):
        raise HTTPException(403, "Forbidden")
    return detail


@router.get("/compare", name="compare")
def compare(request: Request, user: auth.GetUserDep, a: str | None = None, b: str | None = None):
    results = _results()
    recent = [r for r in results.runs(limit=40) if auth.can(user, "GET", r.dag_id)]
    if not a:
        return page(request, "compare.html", a=None, b=None, rows=None, recent=recent)
    da = _readable(user, results, a)
    db = _readable(user, results, b) if b else None
    return page(request, "compare.html", a=da, b=db, rows=views.compare_rows(da, db) if db else None, recent=recent)


@router.get("/compare/report", name="compare_report")
async def compare_report(user: auth.GetUserDep, a: str, b: str | None = None):
    from factorybench.report import render_comparison_from

    results = _results()
    da = _readable(user, results, a)
    db = _readable(user, results, b) if b else None
    html = await asyncio.to_thread(render_comparison_from, results, da.run.id, db.run.id if db else None)
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_CSP})


@router.get("/clusters", name="clusters", dependencies=[auth.cluster_view])
async def clusters(request: Request, profile: str | None = None, transport: str | None = None):
    from factorybench.plan import run_tag
    from factorybench.slurm.transport import TRANSPORT_KINDS
    from factorybench.ui import airflow_state

    try:
        profiles = control.profiles()
    except FactorybenchError as exc:
        return message(request, "SLURM clusters", str(exc), 500)
    latest = [r.cluster for r in _results().runs(limit=1)]  # by default, where the last benchmark ran
    name = profile if profile in profiles else next((p for p in latest if p in profiles), next(iter(profiles)))
    chosen = profiles[name]
    if transport in TRANSPORT_KINDS and transport != chosen.transport:
        chosen = chosen.model_copy(update={"transport": transport})
    read = await STATES.read(name, chosen)
    dag_ids = [info.dag_id for info in views.recipe_catalog().values()]
    runs = {run_tag(r): (d, r) for d, r in await asyncio.to_thread(airflow_state.running_runs, dag_ids)}
    return page(request, "clusters.html", profiles=list(profiles), profile=name, transport=chosen.transport,
                kinds=TRANSPORT_KINDS, read=read, runs=runs, ttl=int(STATES.ttl_s),
                description=chosen.description or "")


@router.get("/runs/{dag_id}/{run_id}", name="run", dependencies=[auth.read_run])
async def run(request: Request, dag_id: str, run_id: str, user: auth.GetUserDep):
    if not dag_id.startswith("factorybench_"):
        return message(request, "Not a benchmark", f"{dag_id} is not a factorybench DAG: it has no benchmark "
                                                    "results.")
    view, live, flow = await asyncio.to_thread(_run_data, dag_id, run_id)
    recipe = view.detail.run.recipe if view else (flow.plan["recipe"]["name"] if flow and flow.plan else dag_id)
    context: dict[str, Any] = dict(dag_id=dag_id, run_id=run_id, recipe=recipe, flow=flow, view=view, live=live,
                                   can_edit=auth.can(user, "PUT", dag_id), notice=dict(request.query_params),
                                   jobs=None, jobs_error=None)
    if view is None and flow is not None and flow.active and flow.plan:
        from factorybench.recipe import ClusterProfile

        plan = flow.plan
        read = await STATES.read(plan["cluster_name"], ClusterProfile.model_validate(plan["cluster"]))
        context["jobs"] = read.state.jobs_of_run(plan["recipe"]["name"], plan["run_tag"]) if read.state else []
        context["jobs_error"] = read.error
    return page(request, "run.html", refresh=REFRESH_S if view is None and flow is not None and flow.active else None,
                **context)


def _run_data(dag_id: str, run_id: str):
    """(the archived run's view or None, its live progress or None, Airflow's DAG run or None)."""
    from factorybench.ui import airflow_state

    results = _results()
    detail = results.run_by_dag_run(dag_id, run_id)
    flow = airflow_state.dag_run_state(dag_id, run_id)
    if detail is not None:
        return views.run_view(results, detail), None, flow
    return None, views.live_view(results.live(dag_id, run_id), time.time()), flow


@router.get("/runs/{dag_id}/{run_id}/report", name="report", dependencies=[auth.read_run])
async def report(request: Request, dag_id: str, run_id: str):
    """The report the archive holds; drawn afresh for a run archived without one."""
    results = _results()
    detail = results.run_by_dag_run(dag_id, run_id)
    if detail is None:
        return message(request, "No report yet", f"Run {run_id} of {dag_id} has no archived result yet.", 404)
    if any(a["name"] == "report.html" for a in detail.artifacts):
        html = results.artifact(detail.run.id, "report.html").decode()
    else:
        from factorybench.report import render_run_report_from

        html = await asyncio.to_thread(render_run_report_from, results, detail.run.id)
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_CSP})


@router.get("/runs/{dag_id}/{run_id}/files/{name}", name="file", dependencies=[auth.read_run])
def file(dag_id: str, run_id: str, name: str):
    results = _results()
    detail = results.run_by_dag_run(dag_id, run_id)
    if detail is None or name not in views.TEXT_FILES or name not in {a["name"] for a in detail.artifacts}:
        raise HTTPException(404, f"run {run_id} has no file {name!r} to show")
    raw = results.artifact(detail.run.id, name)
    return PlainTextResponse(views.pretty_json(raw) if name.endswith(".json") else raw.decode(errors="replace"))


@router.post("/runs/{dag_id}/{run_id}/cancel", name="cancel",
             dependencies=[auth.edit_run, auth.same_origin, Depends(action_logging("factorybench_cancel_run"))])
async def cancel(request: Request, dag_id: str, run_id: str, background: BackgroundTasks):
    outcome = await control.cancel_run(dag_id, run_id)
    if outcome.plan is not None:
        STATES.forget(outcome.plan["cluster_name"])
        background.add_task(control.settle, dag_id, run_id, outcome.plan)
    if outcome.state_before is None:
        return message(request, "Nothing to cancel", outcome.error or "", 404)
    return RedirectResponse(Links(request).run(dag_id, run_id, cancelled=outcome.state_before,
                                               jobs=",".join(outcome.cancelled), left=",".join(outcome.left),
                                               error=outcome.error), 303)


@router.get("/dags/{dag_id}", name="dag", dependencies=[auth.read_run])
def dag(request: Request, dag_id: str):
    recipe = next((info.name for info in views.recipe_catalog().values() if info.dag_id == dag_id), None)
    if recipe is None:
        return message(request, "Not a benchmark", f"{dag_id} is not a factorybench recipe's DAG.")
    return RedirectResponse(Links(request).recipe(recipe), 303)


@lru_cache(maxsize=None)
def _static(name: str) -> tuple[bytes, str]:
    body = resources.files("factorybench.ui").joinpath("static", name).read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:12]


@router.get("/static/{name}", name="static")
def static(name: str):
    if name not in STATIC:
        raise HTTPException(404)
    return Response(_static(name)[0], media_type=STATIC[name], headers={"Cache-Control": "private, max-age=86400"})


def create_app() -> FastAPI:
    """The app the plugin mounts. No docs or OpenAPI routes: every route needs a user."""
    app = FastAPI(title="factorybench", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    return app


app = create_app()
