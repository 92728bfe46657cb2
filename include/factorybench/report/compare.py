"""Two runs side by side, or a run against its baseline: one self-contained HTML page.

`a` is the reference (the older run, or `RunReportData.baseline(...)`), `b` the candidate; every
delta is b - a, and is coloured by the metric's direction (lower or higher is better).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from factorybench.report import figures, measures
from factorybench.report.data import RunReportData, run_time
from factorybench.report.page import Column, Table, document, esc, figure, fmt, fmt_rel
from factorybench.report.run import generator, percentile_rows, percentile_values
from factorybench.results import metrics as catalog

if TYPE_CHECKING:
    from factorybench.results.query import Results

MIN_EFFECT = 0.05  # a change below this is shown in normal weight (the analysis' default min_effect)
MAX_MW = 200_000  # values per side for Mann-Whitney (ITL has one per chunk); evenly thinned beyond
RUN_FIELDS = (("status", "status"), ("started_at", "started"), ("recipe_hash", "recipe hash"),
              ("git_commit", "git commit"), ("service_version", "service version"), ("model", "model"),
              ("image", "image"), ("cluster", "cluster"), ("nodes", "nodes"), ("job_ids", "SLURM job ids"),
              ("baseline_runs", "baseline runs"))


def assess(direction: str, delta: float | None) -> str:
    """better | worse | same, or "" when the metric has no good direction or a side is missing."""
    if direction not in ("higher", "lower") or delta is None:
        return ""
    if delta == 0:
        return "same"
    return "better" if (delta < 0) == (direction == "lower") else "worse"


def metric_rows(a: RunReportData, b: RunReportData) -> list[dict[str, Any]]:
    """Every whole-run metric either side has, in catalog order, with delta and assessment."""
    known = catalog.names()
    names = [n for n in known if n in a.metrics or n in b.metrics]
    names += sorted((set(a.metrics) | set(b.metrics)) - set(known))
    rows = []
    for name in names:
        d = catalog.define(name)
        va, vb = a.metrics.get(name), b.metrics.get(name)
        delta = None if va is None or vb is None else vb - va
        rel = delta / abs(va) if delta is not None and va else None
        rows.append({"metric": name, "unit": d.unit, "direction": d.direction, "a": va, "b": vb, "delta": delta,
                     "delta_rel": rel, "assessment": assess(d.direction, delta)})
    return rows


def _thin(x: np.ndarray) -> np.ndarray:
    return x if x.size <= MAX_MW else x[np.linspace(0, x.size - 1, MAX_MW).astype(int)]


def sample_rows(a: RunReportData, b: RunReportData) -> list[dict[str, Any]]:
    """Per latency: medians of both sides' raw samples and the Mann-Whitney test between them."""
    from factorybench.analysis.stats import mann_whitney

    va, vb = measures.latency_values(a.samples), measures.latency_values(b.samples)
    rows = []
    for short, title in measures.LATENCIES:
        x, y = va[short], vb[short]
        if not x.size or not y.size:
            continue
        test = mann_whitney(_thin(y), _thin(x))
        rows.append({"latency": title, "n_a": int(x.size), "n_b": int(y.size), "median_a": float(np.median(x)),
                     "median_b": float(np.median(y)), "median_shift": test.median_shift,
                     "cliffs_delta": test.cliffs_delta, "p_value": test.p_value,
                     "assessment": assess("lower", float(np.median(y) - np.median(x)))})
    return rows


def fmt_delta(delta: float | None, unit: str) -> str:
    """A signed difference: ratios in percentage points, counts whole."""
    if delta is None:
        return "\u2013"
    if unit == "ratio":
        return f"{delta * 100:+.2f} pp"
    text = fmt(int(delta) if unit == "count" else delta, unit)
    return text if text.startswith("-") or delta == 0 else "+" + text


def _delta_css(row: dict[str, Any]) -> str:
    rel = row.get("delta_rel", row.get("median_shift"))
    small = rel is not None and math.isfinite(rel) and abs(rel) < MIN_EFFECT
    return " ".join(x for x in (row["assessment"] if row["assessment"] != "same" else "", "small" if small else "")
                    if x)


def render_comparison(a: RunReportData, b: RunReportData) -> str:
    """b against a, as one HTML document (a str) with no external resources."""
    recipe = b.run.get("recipe") or a.run.get("recipe") or ""
    header = (f"<h1>{esc(str(recipe))}: {esc(b.label)} vs {esc(a.label)}</h1>"
              f'<p class="sub">Comparison \u00b7 A = {esc(a.label)} (reference) \u00b7 B = {esc(b.label)}; '
              f"deltas are B \u2212 A, green is better, red is worse, bold is at least {MIN_EFFECT:.0%}.</p>")
    sections = [("runs", "Runs", _runs(a, b)), ("metrics", "Metrics", _metrics(a, b)),
                ("latency", "Latency", _latency(a, b))]
    return document(f"{recipe}: {b.label} vs {a.label} \u2014 factorybench comparison", header, sections, generator())


def _runs(a: RunReportData, b: RunReportData) -> str:
    rows = []
    for key, title in RUN_FIELDS:
        va, vb = (run_time(x.run) if key == "started_at" else x.run.get(key) for x in (a, b))
        if va in (None, "", []) and vb in (None, "", []):
            continue
        rows.append({"field": title, "a": _text(va), "b": _text(vb)})
    cols = [Column("field", "field"), Column("a", f"A: {a.label}"), Column("b", f"B: {b.label}")]
    return Table("runs", cols, rows).html()


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return value if isinstance(value, str) else fmt(value)


def _metrics(a: RunReportData, b: RunReportData) -> str:
    cols = [Column("metric", "metric"), Column("unit", "unit"), Column("direction", "better"),
            Column("a", "A", numeric=True, render=lambda r: esc(fmt(r["a"], r["unit"]))),
            Column("b", "B", numeric=True, render=lambda r: esc(fmt(r["b"], r["unit"]))),
            Column("delta", "B \u2212 A", numeric=True, css=_delta_css,
                   render=lambda r: esc(fmt_delta(r["delta"], r["unit"]))),
            Column("delta_rel", "change", numeric=True, render=lambda r: esc(fmt_rel(r["delta_rel"])), css=_delta_css)]
    return Table("metrics", cols, metric_rows(a, b)).html()


def _latency(a: RunReportData, b: RunReportData) -> str:
    out = []
    if a.samples is not None and b.samples is not None:
        series = [(f"A: {a.label}", measures.latency_values(a.samples)),
                  (f"B: {b.label}", measures.latency_values(b.samples))]
        out.append(figure("cdf", figures.cdf_svg(series), "Latency CDFs of both sides' successful, non-warm-up "
                                                          "requests (a baseline pools its runs' samples)."))
        rows = sample_rows(a, b)
        cols = [Column("latency", "latency"), Column("n_a", "n A", "count", numeric=True),
                Column("n_b", "n B", "count", numeric=True), Column("median_a", "median A", "ms", numeric=True),
                Column("median_b", "median B", "ms", numeric=True),
                Column("median_shift", "shift", numeric=True, render=lambda r: esc(fmt_rel(r["median_shift"])),
                       css=_delta_css),
                Column("cliffs_delta", "Cliff's delta", numeric=True, render=lambda r: f"{r['cliffs_delta']:+.2f}"),
                Column("p_value", "Mann-Whitney p", numeric=True, render=lambda r: f"{r['p_value']:.2g}")]
        out.append("<h3>Samples</h3>")
        out.append(Table("samples", cols, rows, caption="Raw samples compared; with thousands of samples a tiny "
                                                        "shift is significant, so read the shift first.").html())
    else:
        out.append('<p class="empty">One side has no per-request samples: no CDFs.</p>')
    pa_rows, pb_rows = percentile_rows(a.metrics), percentile_rows(b.metrics)
    if any(r[s] is not None for r in pa_rows + pb_rows for s, _ in measures.STATS):
        svg = figures.percentiles_svg(percentile_values(pa_rows), labels=[f"A: {a.label}", f"B: {b.label}"],
                                      groups=[percentile_values(pb_rows)])
        out.append(figure("percentiles", svg, "Percentiles, ms."))
    return "".join(out)


def render_comparison_from(results: Results, a: int | str, b: int | str | None = None, *,
                           baseline_runs: int = 10) -> str:
    """Two stored runs, B against A (`factorybench compare A B --html`); with no B, run `a`
    against its baseline (the median of its last `baseline_runs` comparable runs)."""
    if b is None:
        return render_comparison(RunReportData.baseline(results, a, n=baseline_runs),
                                 RunReportData.from_results(results, a))
    return render_comparison(RunReportData.from_results(results, a), RunReportData.from_results(results, b))
