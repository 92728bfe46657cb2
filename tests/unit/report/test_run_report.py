"""The run report: parsed back, it holds one element per plot and the numbers the database holds."""

from __future__ import annotations

import csv
import io
import json

import pytest

from factorybench.report import RunReportData, fetch_history, primary_metrics, render_run_report
from factorybench.report.page import fmt
from factorybench.report.synthetic import synthetic_run
from factorybench.results.query import Results

from .htmlscan import Page

SINGLE_STEP_PLOTS = {"plot-cdf", "plot-percentiles", "plot-timeline", "plot-trend"}


@pytest.fixture(scope="module")
def report(history):
    results = Results(history["url"])
    data = RunReportData.from_results(results, history["dag_run_id"])
    return results, data, Page(render_run_report(data))


def test_one_svg_per_plot_and_no_external_resource(report):
    _, _, page = report
    assert set(page.plots) == SINGLE_STEP_PLOTS and all(n == 1 for n in page.plots.values())
    assert page.tags["script"] == 0 and page.tags["img"] == 0 and page.tags["link"] == 0
    csp = next(m["content"] for m in page.meta if m.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp
    for link in page.links:  # only in-page anchors and data: downloads
        assert link["href"].startswith(("#", "data:")), link["href"]
    assert not [i for i, n in page.ids.items() if n > 1], "duplicate ids (clip paths of two SVGs would clash)"


def test_numbers_are_the_databases_as_displayed(report, history):
    results, _, page = report
    stored = {m.name: m.value for m in results.run(history["dag_run_id"]).metrics if m.step_index is None}
    ttft = next(r for r in page.rows("table-percentiles") if r["latency"] == "TTFT")
    assert ttft["p99 (ms)"] == fmt(stored["ttft_p99_ms"]) and ttft["p50 (ms)"] == fmt(stored["ttft_p50_ms"])
    text = "".join(page.text)
    assert f"{fmt(stored['request_rate'])}req/s" in text.replace(" ", "")  # the request-rate card
    rows = list(csv.DictReader(io.StringIO(page.download("percentiles"))))
    assert float(next(r for r in rows if r["latency"] == "TTFT")["p99"]) == stored["ttft_p99_ms"]


def test_verdicts_and_provenance(report, history):
    results, _, page = report
    verdicts = {r["metric"]: r for r in page.rows("table-verdicts")}
    assert verdicts["ttft_p50_ms"]["verdict"] == "regression"
    assert verdicts["request_rate"]["verdict"] in ("pass", "insufficient_data")
    stored = history["verdicts"]["metrics"]
    exported = json.loads(page.download("verdicts", "json"))
    assert {r["metric"] for r in exported} == {v["metric"] for v in stored}  # every metric, primary or not
    p50 = next(v for v in stored if v["metric"] == "ttft_p50_ms")["evidence"]
    assert verdicts["ttft_p50_ms"]["baseline median"].startswith(fmt(p50["baseline"]["median"]))
    prov = {r["field"]: r["value"] for r in page.rows("table-provenance")}
    run = history["run"]
    assert prov["recipe hash"] == run.recipe_hash and prov["git commit"] == run.git_commit
    assert prov["SLURM job ids"] == ", ".join(run.job_ids) and prov["nodes"] == ", ".join(run.nodes)
    assert prov["service version"] == run.service_version and prov["image"] == run.image
    notes = page.rows("table-annotations")
    assert [n["run"] for n in notes] == ["nightly-04"]
    assert "this run" in page.svg_text["plot-trend"] and "regression" in page.svg_text["plot-trend"]


def test_rendered_before_the_run_is_stored_matches_the_stored_one(history, report):
    """The archive task's path: pieces in memory, history from the database without this run."""
    results, stored, stored_page = report
    run = history["run"]
    names = primary_metrics(history["verdicts"], stored.metrics)
    past, notes = fetch_history(results, run.recipe, names, until=stored.history[names[0]][-2].at)
    data = RunReportData.from_parts(run, history["load"], history["samples"], history["verdicts"], history=past,
                                    annotations=notes)
    assert data.metrics == pytest.approx(stored.metrics)
    for m in names:
        assert data.history[m][-1].dag_run_id == run.dag_run_id  # the run joins its own trend
        assert [p.value for p in data.history[m]] == [p.value for p in stored.history[m]]
    page = Page(render_run_report(data))
    assert set(page.plots) == SINGLE_STEP_PLOTS
    assert page.rows("table-percentiles") == stored_page.rows("table-percentiles")


def test_sweep_report_marks_the_slo_and_the_knee():
    load, samples = synthetic_run(1400, sweep=True, slo={"ttft_ms": 150.0})
    data = RunReportData.from_parts({"recipe": "sweep", "dag_run_id": "manual__1", "status": "success"},
                                    load, samples)
    page = Page(render_run_report(data))
    assert set(page.plots) == SINGLE_STEP_PLOTS - {"plot-trend"} | {"plot-sweep"}
    steps = page.rows("table-steps")
    assert [r["label"] for r in steps] == [s["step"]["label"] for s in load["steps"]]
    knee = next(line for line in "".join(page.text).splitlines() if "knee:" in line)
    assert "the highest load meeting every p99 SLO" in knee
    assert "SLO (p99)" in page.svg_text["plot-sweep"] and "knee" in page.svg_text["plot-sweep"]
    exported = list(csv.DictReader(io.StringIO(page.download("steps"))))
    assert sum(r["knee"] == "True" for r in exported) == 1


def test_a_run_without_samples_or_history_still_renders():
    load, _ = synthetic_run(60)
    data = RunReportData.from_parts({"recipe": "x", "dag_run_id": "r", "status": "failed",
                                     "message": "3 of 60 requests failed"}, load)
    page = Page(render_run_report(data))
    assert set(page.plots) == {"plot-percentiles"}
    assert "3 of 60 requests failed" in "".join(page.text)
