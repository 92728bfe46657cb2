"""The report of one run: one self-contained HTML page (see docs/REPORTS.md for what each part means)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from factorybench import provenance
from factorybench.report import figures, measures
from factorybench.report.data import RunReportData, primary_metrics, run_time
from factorybench.report.page import Column, Table, cards, document, esc, figure, fmt, fmt_rel
from factorybench.results import metrics as catalog

if TYPE_CHECKING:
    from factorybench.results.query import Results

# The provenance table, in this order: (key, title).
PROVENANCE = (
    ("recipe", "recipe"), ("recipe_hash", "recipe hash"), ("dag_id", "DAG"), ("dag_run_id", "DAG run"),
    ("trigger", "trigger"), ("triggered_by", "triggered by"), ("ci_ref", "CI ref"), ("cluster", "cluster"),
    ("transport", "transport"), ("partition", "partition"), ("job_ids", "SLURM job ids"), ("nodes", "nodes"),
    ("service_state", "final job state"), ("image", "image"), ("model", "model"), ("service_kind", "service"),
    ("service_version", "service version"), ("fb_version", "factorybench version"), ("git_commit", "git commit"),
    ("client_versions", "client versions"), ("started_at", "started"), ("finished_at", "finished"),
    ("archive_url", "archive"),
)
SUMMARY_CARDS = {"requests": "requests", "errors": "errors", "request_rate": "request rate",
                 "output_tokens_per_s": "output tokens", "goodput_fraction": "meets every SLO",
                 "ttft_p50_ms": "TTFT p50", "ttft_p99_ms": "TTFT p99", "itl_p50_ms": "ITL p50",
                 "tpot_p50_ms": "TPOT p50", "e2e_p50_ms": "E2E p50"}


def generator() -> str:
    return f"factorybench {provenance.fb_version() or ''}".strip()


def render_run_report(data: RunReportData) -> str:
    """The run's report as one HTML document (a str), with no external resources."""
    run = data.run
    title = f"{run.get('recipe', 'run')} \u00b7 {data.label}"
    sections = [
        ("summary", "Summary", _summary(data)),
        ("verdicts", "Verdicts", _verdicts(data)),
        ("latency", "Latency", _latency(data)),
    ]
    if len(data.steps) > 1:
        sections.append(("sweep", "Load sweep", _sweep(data)))
    sections += [
        ("timeline", "Over time", _timeline(data)),
        ("trend", "Nightly trend", _trend(data)),
        ("provenance", "Provenance", _provenance(data)),
    ]
    return document(f"{title} \u2014 factorybench report", header(data, "Run report"), sections, generator())


def header(data: RunReportData, kind: str) -> str:
    run = data.run
    status = str(run.get("status") or "unknown")
    when = run_time(run)
    where = ", ".join(str(x) for x in (run.get("cluster"), run.get("transport")) if x)
    sub = " \u00b7 ".join(x for x in (kind, where, fmt(when) if when else "") if x)
    message = f": {esc(run['message'])}" if run.get("message") else ""
    verdict = str(run.get("verdict") or "")
    line = (f'<div class="banner {esc(verdict)}"><b>verdict</b> {esc(run.get("verdict_line") or verdict)}</div>'
            if verdict or run.get("verdict_line") else "")
    return (f"<h1>{esc(str(run.get('recipe', '')))} \u00b7 {esc(data.label)}</h1><p class=\"sub\">{esc(sub)}</p>"
            f'<div class="banner {esc(status)}" id="status"><b>status</b> {esc(status)}{message}</div>{line}')


def _summary(data: RunReportData) -> str:
    items = [(title, data.metrics.get(name), catalog.define(name).unit) for name, title in SUMMARY_CARDS.items()
             if data.metrics.get(name) is not None or name in ("requests", "errors")]
    invalid = data.summary.get("invalid_reasons") or []
    note = f'<p class="banner invalid">client could not keep up: {esc("; ".join(invalid))}</p>' if invalid else ""
    return cards(items) + note


# --- verdicts ------------------------------------------------------------------------------

def verdict_rows(data: RunReportData) -> list[dict[str, Any]]:
    """One flat row per judged metric: what the table shows and the downloads hold."""
    out = []
    for v in data.verdict_rows():
        ev = v.get("evidence") or {}
        base, change, mw = ev.get("baseline") or {}, ev.get("change") or {}, ev.get("samples") or {}
        out.append({
            "metric": v.get("metric"), "primary": v.get("primary"), "verdict": v.get("verdict"),
            "value": ev.get("value"), "unit": catalog.define(str(v.get("metric"))).unit,
            "baseline_median": base.get("median"), "baseline_runs": base.get("n"),
            "delta": ev.get("delta"), "delta_rel": ev.get("delta_rel"), "z": ev.get("z"),
            "p_adjusted": ev.get("point_p_adjusted"), "mannwhitney_p_adjusted": mw.get("p_adjusted"),
            "change_run": change.get("key") if change.get("significant") else None,
            "change_magnitude": change.get("magnitude") if change.get("significant") else None,
            "decided_by": ", ".join(v.get("decided_by") or []), "message": v.get("message")})
    order = {"regression": 0, "improvement": 1, "insufficient_data": 2, "pass": 3}
    return sorted(out, key=lambda r: (not r["primary"], order.get(str(r["verdict"]), 4), str(r["metric"])))


def _p(value: Any) -> str:
    return "\u2013" if value is None else f"{value:.2g}"


def _message(row: dict[str, Any]) -> str:
    """The verdict's message without its leading "metric verdict: ", which the row already shows."""
    text, head = str(row["message"] or ""), f"{row['metric']} {row['verdict']}: "
    return esc(text.removeprefix(head))


def _verdicts(data: RunReportData) -> str:
    rows = verdict_rows(data)
    if not rows:
        return ('<p class="empty">This run has no verdicts: it was not judged against its history '
                "(no checks, or not a valid measurement).</p>")
    cols = [
        Column("metric", "metric"),
        Column("verdict", "verdict", render=lambda r: f'<span class="v-{esc(str(r["verdict"]))}">'
                                                      f'{esc(str(r["verdict"]))}</span>'),
        Column("value", "value", numeric=True, render=lambda r: esc(f"{fmt(r['value'])} {r['unit']}".strip())),
        Column("baseline_median", "baseline median", numeric=True,
               render=lambda r: esc(fmt(r["baseline_median"]) + (f" ({r['baseline_runs']} runs)"
                                                                 if r["baseline_runs"] else ""))),
        Column("delta_rel", "delta", numeric=True, render=lambda r: esc(fmt_rel(r["delta_rel"]))),
        Column("p_adjusted", "p (adj.)", numeric=True, render=lambda r: esc(_p(r["p_adjusted"]))),
        Column("mannwhitney_p_adjusted", "samples p (adj.)", numeric=True,
               render=lambda r: esc(_p(r["mannwhitney_p_adjusted"]))),
        Column("change_run", "change point",
               render=lambda r: esc("\u2013" if r["change_run"] is None else
                                    f"run {r['change_run']} ({fmt_rel(r['change_magnitude'])})")),
    ]
    primary = [r for r in rows if r["primary"]]
    others = [r for r in rows if not r["primary"]]
    out = [Table("verdicts", cols, primary, caption="Primary metrics: these decide the run's verdict.",
                 export_rows=rows, detail=_message).html()]
    if others:
        flagged = sum(r["verdict"] != "pass" for r in others)
        out.append(f"<details><summary>{len(others)} more metrics, reported only ({flagged} not pass)</summary>"
                   f"{Table('verdicts-reported', cols, others, detail=_message).html()}</details>")
    return "".join(out)


# --- latency -------------------------------------------------------------------------------

def percentile_rows(metrics: dict[str, float | None], summary: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """TTFT, ITL, TPOT and E2E: count, mean and p50..p99.9 in ms, as the database stores them."""
    rows = []
    for short, title in measures.LATENCIES:
        row: dict[str, Any] = {"latency": title,
                               "count": ((summary or {}).get(f"{short}_ms") or {}).get("count"),
                               "mean": metrics.get(f"{short}_mean_ms")}
        row.update({stat: metrics.get(f"{short}_{stat}_ms") for stat, _ in measures.STATS})
        rows.append(row)
    return rows


def percentile_columns() -> list[Column]:
    return [Column("latency", "latency"), Column("count", "count", "count", numeric=True),
            Column("mean", "mean", "ms", numeric=True),
            *[Column(stat, title, "ms", numeric=True) for stat, title in measures.STATS]]


def percentile_values(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    return {short: {s: r[s] for s, _ in measures.STATS} for (short, _), r in zip(measures.LATENCIES, rows)}


def _latency(data: RunReportData) -> str:
    out = []
    if data.samples is not None and data.samples.num_rows:
        steps = data.steps
        if len(steps) > 1:
            series = [(str((s.get("step") or {}).get("label", s.get("index"))),
                       measures.latency_values(data.samples, s.get("index"))) for s in steps]
            caption = "Latency CDFs per step (successful, non-warm-up requests)."
        else:
            series = [("all requests", measures.latency_values(data.samples))]
            caption = "Latency CDFs of the successful, non-warm-up requests."
        out.append(figure("cdf", figures.cdf_svg(series), caption + " Dotted lines: p50, p90, p99."))
    else:
        out.append('<p class="empty">No per-request samples in this run: no CDFs.</p>')
    rows = percentile_rows(data.metrics, data.summary)
    out.append("<h3>Percentiles</h3>")
    out.append(Table("percentiles", percentile_columns(), rows).html())
    if any(r[s] is not None for r in rows for s, _ in measures.STATS):
        scope = "all steps together" if len(data.steps) > 1 else "the whole run"
        svg = figures.percentiles_svg(percentile_values(rows))
        out.append(figure("percentiles", svg, f"Percentiles of {scope}, ms."))
    errors = data.summary.get("errors_by_class") or {}
    if errors:
        out.append("<h3>Errors by class</h3>")
        out.append(Table("errors", [Column("class", "class"), Column("count", "count", "count", numeric=True)],
                         [{"class": k, "count": n} for k, n in sorted(errors.items())]).html())
    return "".join(out)


# --- sweep ---------------------------------------------------------------------------------

def _sweep(data: RunReportData) -> str:
    rows = measures.step_rows(data.load)
    axis = measures.sweep_axis(rows)
    knee = measures.knee(data.load)
    slo = data.slo
    out = []
    slo_text = ", ".join(f"{k} \u2264 {v:g} ms" for k, v in slo.items()) or "none set"
    knee_text = knee.text if knee else ("no step meets every p99 SLO" if slo else "no knee: too few valid steps")
    out.append(f'<p id="knee">SLO (p99): {esc(slo_text)}. <b>{esc(knee_text)}</b>.</p>')
    cap = (data.load or {}).get("capacity")
    if cap:
        bracket = f"between {fmt(cap.get('last_pass'))} and {fmt(cap.get('first_fail'))} req/s"
        out.append(f"<p>Capacity search: {esc(fmt(cap.get('rate')))} req/s, the true capacity lies {esc(bracket)} "
                   f"({'converged' if cap.get('converged') else 'not converged'}).</p>")
    out.append(figure("sweep", figures.sweep_svg(rows, axis, slo, knee),
                      f"Throughput and latency against {axis[1]}; dashed red: SLO; dash-dot: the knee."))
    cols = [Column("index", "step", numeric=True), Column("label", "label"),
            Column("request_rate", "achieved", "req/s", numeric=True),
            Column("output_tokens_per_s", "output", "tok/s", numeric=True),
            Column("goodput_rate", "goodput", "req/s", numeric=True),
            Column("error_rate", "errors", "ratio", numeric=True),
            *[Column(f"{s}_p50_ms", f"{t} p50 / p99", "ms", numeric=True,
                     render=lambda r, s=s: esc(f"{fmt(r[f'{s}_p50_ms'])} / {fmt(r[f'{s}_p99_ms'])}"))
              for s, t in measures.LATENCIES if s != "itl"],
            Column("valid", "valid")]
    for r in rows:
        r["knee"] = knee is not None and r["index"] == knee.index
    table = Table("steps", cols, rows, caption="Steps in the order they ran; the knee is highlighted.",
                  row_css=lambda r: "knee" if r["knee"] else "")
    return "".join(out) + table.html()


# --- over time -----------------------------------------------------------------------------

def _timeline(data: RunReportData) -> str:
    labels = {int(s.get("index", 0)): str((s.get("step") or {}).get("label", "")) for s in data.steps}
    tl = measures.timeline(data.samples, labels)
    if tl is None:
        return '<p class="empty">No per-request samples in this run: no timeline.</p>'
    return figure("timeline", figures.timeline_svg(tl),
                  "Requests completed per second (errors in red) and requests in flight, warm-up included.")


def _trend(data: RunReportData) -> str:
    if not any(data.history.values()):
        return '<p class="empty">No history for this recipe yet.</p>'
    baselines = {v["metric"]: v["baseline_median"] for v in verdict_rows(data) if v["baseline_median"] is not None}
    names = primary_metrics(data.verdicts, data.metrics)
    history = {m: data.history[m] for m in names if m in data.history} or data.history
    svg = figures.trend_svg(history, data.annotations, str(data.run.get("dag_run_id") or ""),
                            str(data.run.get("recipe_hash") or ""), baselines)
    out = [figure("trend", svg, "Primary metrics over the recipe's runs, newest on the right. Red/green "
                                "triangles: the metric's verdict in that run was regression/improvement (the run's "
                                "verdict where the metric's is not stored); purple dashed: accepted changes (the "
                                "baseline restarts there).")]
    notes = [a.to_dict() for a in data.annotations]
    if notes:
        out.append("<h3>Accepted changes</h3>")
        out.append(Table("annotations", [Column("at", "from", render=lambda r: esc(str(r["at"] or ""))),
                                         Column("dag_run_id", "run"), Column("author", "author"),
                                         Column("reason", "reason")], notes).html())
    return "".join(out)


# --- provenance ----------------------------------------------------------------------------

def _provenance(data: RunReportData) -> str:
    run = data.run
    rows = [{"field": title, "value": _plain(run.get(key))} for key, title in PROVENANCE if run.get(key) not in
            (None, "", [], {})]
    out = [Table("provenance", [Column("field", "field"), Column("value", "value")], rows).html()]
    metrics = [{"name": k, "value": v, "unit": catalog.define(k).unit, "direction": catalog.define(k).direction}
               for k, v in data.metrics.items()]
    out.append("<details><summary>All whole-run metrics</summary>")
    out.append(Table("metrics", [Column("name", "metric"), Column("value", "value", numeric=True),
                                 Column("unit", "unit"), Column("direction", "better")], metrics).html())
    out.append("</details>")
    if run.get("recipe_text"):
        out.append(f"<details><summary>Recipe as run</summary><pre>{esc(str(run['recipe_text']))}</pre></details>")
    return "".join(out)


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return fmt(value) if not isinstance(value, str) else value


def render_run_report_from(results: Results, ref: int | str) -> str:
    """A stored run's report, regenerated from the database and its archive (`factorybench report RUN`)."""
    return render_run_report(RunReportData.from_results(results, ref))
