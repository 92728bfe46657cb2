"""The UI's pages through Airflow's real API-server app, with real SimpleAuthManager tokens: every
route refuses anonymous requests, each role sees and may do what Airflow lets it, and the pages
show the numbers the results database holds."""

from __future__ import annotations

import re
import socket
from html.parser import HTMLParser

import pytest
from starlette.routing import Route

from factorybench.results.query import Results
from factorybench.ui import app as ui
from factorybench.ui.svg import fmt

pytestmark = pytest.mark.airflow
RUN = "/factorybench/runs/factorybench_smoke"


class Html(HTMLParser):
    """Elements as (tag, attributes), the text, and tables by id as rows of cell texts."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.chunks: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table, self._row, self._cell = None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if tag == "table" and a.get("id"):
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.chunks.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.chunks).split())

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and (cls is None or cls in a.get("class", "").split())]

    def rows(self, table: str) -> list[dict[str, str]]:
        head, *body = self.tables[table]
        return [dict(zip(head, r)) for r in body]


def page(response) -> Html:
    assert response.status_code == 200, response.text[:2000]
    return Html(response.text)


@pytest.fixture(scope="module")
def results(ui_history):
    return Results(ui_history["url"])


def _paths():
    """Every route of the app with its path parameters filled in."""
    values = {"dag_id": "factorybench_smoke", "run_id": "nightly-14", "recipe": "smoke", "name": "ui.css"}
    for route in ui.app.routes:
        assert isinstance(route, Route)
        for method in route.methods - {"HEAD"}:
            yield method, ui.PREFIX + re.sub(r"{(\w+)(:\w+)?}", lambda m: values[m.group(1)], route.path)


def test_every_route_refuses_an_anonymous_request_and_a_forged_token(client):
    routes = list(_paths())
    assert len(routes) == 12 and not [p for _, p in routes if p.endswith(("/docs", "/openapi.json"))]
    for method, path in routes:
        assert client.request(method, path).status_code == 401, (method, path)
        forged = client.request(method, path, headers={"Authorization": "Bearer not.a.token"})
        assert forged.status_code in (401, 403), (method, path)


def test_a_user_without_a_role_sees_no_benchmark(as_role):
    nobody = as_role(None)
    assert "you may read none of their DAGs" in page(nobody.get("/factorybench/")).text
    assert nobody.get("/factorybench/recipes/smoke").status_code == 403
    assert nobody.get(f"{RUN}/nightly-14").status_code == 403
    assert nobody.get(f"{RUN}/nightly-14/report").status_code == 403


def test_the_benchmarks_page_shows_the_databases_numbers(as_role, results, ui_history):
    html = page(as_role("viewer").get("/factorybench/"))
    (row,) = html.rows("recipes")
    assert row["Recipe"].startswith("smoke") and ui_history["dag_run_id"] in row["Last run"]
    assert "regression" in row["Last run"]  # the current run's verdict
    for metric in ("request_rate", "output_tokens_per_s", "ttft_p50_ms", "ttft_p99_ms"):
        series = [p for p in results.series("smoke", metric) if p.valid]
        unit = next(m["unit"] for m in results.metric_names("smoke") if m["name"] == metric)
        assert f"{metric} {fmt(series[-1].value, unit)}" in row["Primary metrics, last 30 runs"]
    sparks = html.find("svg", "spark")
    assert len(sparks) == 4
    assert len(html.find("circle", "regression")) >= 2  # the TTFT panels mark the current run


@pytest.mark.parametrize("query, shown", [("tag=smoke", True), ("tag=meluxina", False), ("cluster=dev", True),
                                          ("cluster=elsewhere", False)])
def test_filters_by_tag_and_cluster(as_role, query, shown):
    html = page(as_role("viewer").get(f"/factorybench/?{query}"))
    assert ("recipes" in html.tables) is shown


def test_the_trend_page_plots_every_run_and_marks_what_changed(as_role, results, ui_history):
    html = page(as_role("viewer").get("/factorybench/recipes/smoke?metric=ttft_p50_ms"))
    series = results.series("smoke", "ttft_p50_ms")
    points = [c for c in html.find("circle") if "pt" in c.get("class", "")]
    assert len(points) == len(series) == 15
    regressions = html.find("circle", "regression")
    assert len(regressions) == 2  # nightly-02 and the current run, each judged on TTFT
    links = [a["href"] for a in html.find("a", "pt-link")]
    assert links[-1] == f"{RUN}/{ui_history['dag_run_id']}" and len(links) == 15
    assert "accepted: new scheduler: TTFT +4 % accepted" in html.text
    runs = html.rows("runs")
    assert runs[0]["Run"] == ui_history["dag_run_id"]
    assert runs[0]["ttft_p50_ms"] == fmt(series[-1].value, "ms") and runs[0]["Verdict"] == "regression"
    assert html.find("select", None)[0]["name"] == "metric"


def test_accepting_a_change_needs_edit_permission_and_a_same_site_form(client, as_role, tokens, results):
    form = {"dag_run_id": "nightly-10", "reason": "tuned the scheduler, faster now", "metric": "ttft_p50_ms"}
    assert as_role("viewer").post("/factorybench/recipes/smoke/accept", data=form).status_code == 403
    cookie = {"_token": tokens["admin"]}
    # A form another site makes a logged-in browser post carries the cookie, but not this origin.
    foreign = client.post("/factorybench/recipes/smoke/accept", data=form, cookies=cookie,
                          headers={"Origin": "http://evil.example"}, follow_redirects=False)
    assert foreign.status_code == 403
    assert all(a.reason != form["reason"] for a in results.annotations("smoke"))
    own = client.post("/factorybench/recipes/smoke/accept", data=form, cookies=cookie,
                      headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert own.status_code == 303 and own.headers["location"].endswith("metric=ttft_p50_ms&accepted=nightly-10")
    (note,) = [a for a in results.annotations("smoke") if a.reason == form["reason"]]
    assert note.author == "admin" and note.dag_run_id == "nightly-10"
    assert "Accepted a change from run nightly-10" in page(client.get(own.headers["location"], cookies=cookie)).text


def test_the_run_tab_of_an_archived_run(as_role, results, ui_history):
    run_id = ui_history["dag_run_id"]
    html = page(as_role("viewer").get(f"{RUN}/{run_id}"))
    detail = results.run(run_id)
    assert detail.run.verdict_line in html.text
    assert " ".join(detail.run.job_ids) in html.text and "node1" in html.text
    summary = {r["Metric"]: r for r in html.rows("summary")}
    values = {m.name: m for m in detail.metrics if m.step_index is None}
    for name in ("request_rate", "ttft_p50_ms", "ttft_p99_ms", "e2e_p50_ms"):
        assert summary[name]["Value"] == fmt(values[name].value, values[name].unit)
    assert summary["ttft_p50_ms"]["Verdict"] == "regression" and "baseline" in summary["ttft_p50_ms"]["Evidence"]
    frames = html.find("iframe", "report")
    assert frames == [] and "draw it now" in html.text  # the synthetic archive holds no report.html
    assert [a["href"] for a in html.find("a") if "data-trigger-form" in a] == [
        f"/dags/factorybench_smoke/runs/{run_id}"]


def test_reports_and_files_of_a_run(as_role, ui_history):
    viewer = as_role("viewer")
    report = viewer.get(f"{RUN}/{ui_history['dag_run_id']}/report")
    assert report.status_code == 200 and report.headers["content-security-policy"] == ui.REPORT_CSP
    assert report.text.count("<svg") >= 4  # drawn afresh from the database and the archive
    recipe = viewer.get(f"{RUN}/nightly-03/files/recipe.yaml")
    assert recipe.status_code == 200 and recipe.text == "name: smoke\n"
    for name in ("load%2Fsamples.parquet", "..%2F..%2Fresults.db", "manifest.json"):
        assert viewer.get(f"{RUN}/nightly-03/files/{name}").status_code == 404
    assert viewer.get(f"{RUN}/no-such-run/report").status_code == 404


def test_the_run_tab_without_an_archived_result(as_role):
    viewer = as_role("viewer")
    assert "Airflow has no run nope of factorybench_smoke" in page(viewer.get(f"{RUN}/nope")).text
    other = page(viewer.get("/factorybench/runs/some_other_dag/manual__1"))
    assert "some_other_dag is not a factorybench DAG" in other.text


def test_compare_two_runs(as_role, results, ui_history):
    a, b = "nightly-05", ui_history["dag_run_id"]
    html = page(as_role("viewer").get(f"/factorybench/compare?a={a}&b={b}"))
    rows = {r["Primary metric"]: r for r in html.rows("compare")}
    ma = {m.name: m.value for m in results.run(a).metrics if m.step_index is None}
    mb = {m.name: m.value for m in results.run(b).metrics if m.step_index is None}
    ttft = rows["ttft_p50_ms"]
    assert (ttft["A"], ttft["B"]) == (fmt(ma["ttft_p50_ms"], "ms"), fmt(mb["ttft_p50_ms"], "ms"))
    assert ttft["B against A"] == f"{(mb['ttft_p50_ms'] - ma['ttft_p50_ms']) / ma['ttft_p50_ms'] * 100:+.1f}%"
    (frame,) = html.find("iframe", "report")
    assert frame["src"].startswith("/factorybench/compare/report?a=")


def test_the_cluster_view_reads_a_cluster_once_per_interval(as_role):
    before = ui.STATES.reads
    first = page(as_role("viewer").get("/factorybench/clusters?profile=local"))
    (node,) = first.rows("nodes")
    assert node["Node"] == socket.gethostname() and node["State"].startswith("idle")
    assert [r["Partition"] for r in first.rows("partitions")] == ["local (default)"]
    again = page(as_role("viewer").get("/factorybench/clusters?profile=local"))
    assert ui.STATES.reads == before + 1 and "(cached)" in again.text


def test_the_plugin_puts_the_views_inside_airflows_ui(as_role):
    plugins = as_role("admin").get("/api/v2/plugins").json()["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "factorybench"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/factorybench"
    views = {v["url_route"]: (v["destination"], v["href"]) for v in plugin["external_views"]}
    assert views == {"benchmarks": ("nav", "/factorybench/"), "slurm-clusters": ("nav", "/factorybench/clusters"),
                     "benchmark": ("dag_run", "/factorybench/runs/{DAG_ID}/{RUN_ID}"),
                     "benchmark-trends": ("dag", "/factorybench/dags/{DAG_ID}")}


def test_pages_carry_a_strict_csp_and_the_static_files_need_a_user(client, as_role):
    response = as_role("viewer").get("/factorybench/")
    assert response.headers["content-security-policy"] == ui.CSP and response.headers["cache-control"] == "no-store"
    css = as_role("viewer").get("/factorybench/static/ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/factorybench/static/ui.css").status_code == 401
    assert " style=" not in response.text  # the CSP forbids inline styles: classes only


def test_cancelling_needs_edit_permission(as_role):
    cancel = f"{RUN}/no-such-run/cancel"
    assert as_role("viewer").post(cancel).status_code == 403
    answer = as_role("user").post(cancel, follow_redirects=False)  # may edit: Airflow is asked, and knows no such run
    assert answer.status_code == 404 and "Airflow has no run 'no-such-run'" in Html(answer.text).text
