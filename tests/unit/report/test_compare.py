"""The comparison report: two runs, or a run against its baseline (medians, pooled samples)."""

from __future__ import annotations

import statistics

import pytest

from factorybench.errors import FactorybenchError
from factorybench.report import RunReportData, render_comparison
from factorybench.report.compare import assess
from factorybench.report.page import fmt
from factorybench.results.query import Results

from .htmlscan import Page


def test_run_against_its_baseline(history):
    results = Results(history["url"])
    current = RunReportData.from_results(results, history["dag_run_id"])
    base = RunReportData.baseline(results, history["dag_run_id"], n=5)
    past = [r for r in results.runs("smoke", limit=6) if r.dag_run_id != history["dag_run_id"]][:5]
    assert base.run["baseline_runs"] == [r.dag_run_id for r in reversed(past)]
    assert base.metrics["ttft_p50_ms"] == statistics.median(r.metrics["ttft_p50_ms"] for r in past)
    assert base.samples.num_rows == sum(results.samples(r.id).num_rows for r in past)  # pooled
    page = Page(render_comparison(base, current))
    assert set(page.plots) == {"plot-cdf", "plot-percentiles"} and all(n == 1 for n in page.plots.values())
    rows = {r["metric"]: r for r in page.rows("table-metrics")}
    ttft = rows["ttft_p50_ms"]
    assert ttft["A"] == fmt(base.metrics["ttft_p50_ms"], "ms") and ttft["B"] == fmt(current.metrics["ttft_p50_ms"])
    legend = " ".join(page.svg_text["plot-cdf"])
    assert base.label in legend and current.label in legend
    samples = {r["latency"]: r for r in page.rows("table-samples")}
    assert samples["TTFT"]["shift"].startswith("+") and float(samples["TTFT"]["Mann-Whitney p"]) < 1e-6


def test_deltas_are_coloured_by_direction(history):
    results = Results(history["url"])
    a = RunReportData.from_results(results, "nightly-13")
    b = RunReportData.from_results(results, history["dag_run_id"])
    html = render_comparison(a, b)
    ttft_row = html[html.index("<td>ttft_p50_ms</td>"):].split("</tr>", 1)[0]
    assert 'class="num worse"' in ttft_row  # lower is better and B is 50 % slower: bold red
    assert assess("higher", 1.0) == "better" and assess("higher", -1.0) == "worse"
    assert assess("lower", -1.0) == "better" and assess("none", 1.0) == "" and assess("lower", None) == ""


def test_a_baseline_needs_earlier_runs(history):
    with pytest.raises(FactorybenchError, match="no earlier successful run"):
        RunReportData.baseline(Results(history["url"]), "nightly-00")


def test_from_the_database_by_reference(history):
    """What `factorybench compare A B --html` and `factorybench report RUN` call."""
    from factorybench.report import render_comparison_from, render_run_report_from

    results = Results(history["url"])
    two = Page(render_comparison_from(results, "nightly-13", history["dag_run_id"]))
    assert "A: nightly-13" in " ".join(two.svg_text["plot-cdf"])
    alone = Page(render_comparison_from(results, history["dag_run_id"], baseline_runs=3))
    assert "A: baseline: median of 3 runs (nightly-11 .. nightly-13)" in " ".join(alone.svg_text["plot-cdf"])
    report = Page(render_run_report_from(results, f"latest:{history['run'].recipe}"))
    assert "plot-trend" in report.plots
