"""Reading results: `results`, `history`, `compare`, `report`; writing history: `import`, `annotate`.

Everything reads through `factorybench.results.query.Results` and writes through
`factorybench.results.store`.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from factorybench import settings
from factorybench.cli.output import add_format, emit
from factorybench.errors import FactorybenchError

RUN_HELP = "a run: its row id, its DAG run id, or latest:<recipe>"


def _results(args) -> int:
    from factorybench.results.query import Results

    runs = Results(args.url).runs(args.recipe, limit=args.limit, status=args.status)
    rows = [{**r.to_dict(), **r.metrics} for r in runs]
    emit(rows, ["id", "recipe", "dag_run_id", "status", "verdict", "requests", "errors", "request_rate",
                "output_tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms"], args.format,
         [r.to_dict() for r in runs])
    return 0


def _checks_of(recipe: str):
    """The recipe's checks section when its file is in the recipes directory, else the defaults."""
    from factorybench.analysis.config import ChecksConfig
    from factorybench.recipe import load_recipe, recipe_files

    for path in recipe_files(settings.recipes_dir()):
        candidate = load_recipe(path)
        if candidate.name == recipe:
            return candidate.checks
    return ChecksConfig()


def _history(args) -> int:
    from factorybench.regression import series_report
    from factorybench.results.query import Results

    results, checks = Results(args.url), _checks_of(args.recipe)
    metrics = args.metric or [m for m in checks.primary if m in {x["name"] for x in results.metric_names(args.recipe)}]
    if not metrics:
        raise FactorybenchError(f"recipe {args.recipe!r} has no stored results")
    reports = [series_report(results, args.recipe, m, checks) for m in metrics]
    notes = {a.dag_run_id: a.reason for a in results.annotations(args.recipe)}
    rows = []
    for rep in reports:
        changes = {c["run"]: c for c in rep["change_points"]}
        for p in rep["points"]:
            mark = []
            if p["dag_run_id"] in changes:
                c = changes[p["dag_run_id"]]
                shift = "" if c["magnitude"] is None else f" {c['magnitude']:+.1%}"
                mark.append(f"change point{shift}: {c['mean_before']:.4g} -> {c['mean_after']:.4g} "
                            f"(p={c['p_value']:.2g})")
            if p["dag_run_id"] in rep["accepted_changes"]:
                mark.append(f"accepted: {notes.get(p['dag_run_id'], '')}".rstrip(": "))
            rows.append({"metric": rep["metric"], "at": p["at"], "run": p["dag_run_id"], "value": p["value"],
                         "unit": rep["unit"], "valid": p["valid"], "verdict": p["verdict"], "mark": "; ".join(mark)})
    emit(rows, ["metric", "at", "run", "value", "unit", "valid", "verdict", "mark"], args.format, reports)
    return 0


def _compare(args) -> int:
    from factorybench.results.query import Results

    results = Results(args.url)
    a, b = results.run(args.run_a), results.run(args.run_b)
    va = {m.name: m for m in a.metrics if m.step_index is None}
    vb = {m.name: m for m in b.metrics if m.step_index is None}
    rows = []
    for name in sorted(set(va) | set(vb)):
        ma, mb = va.get(name), vb.get(name)
        x, y = (ma.value if ma else None), (mb.value if mb else None)
        direction = (ma or mb).direction
        delta = (y - x) / abs(x) if x not in (None, 0) and y is not None else None
        better = None
        if delta is not None and direction != "none" and delta != 0:
            better = "better" if (delta > 0) == (direction == "higher") else "worse"
        rows.append({"metric": name, "unit": (ma or mb).unit, "direction": direction, "a": x, "b": y,
                     "delta_pct": None if delta is None else round(100 * delta, 2), "b_is": better})
    if args.html:
        from factorybench.report import render_comparison_from
        Path(args.html).write_text(render_comparison_from(results, a.run.id, b.run.id))
        print(f"comparison report: {args.html}")
    if args.format == "table":
        print(f"A = run {a.run.id} ({a.run.dag_run_id}, {a.run.status}), "
              f"B = run {b.run.id} ({b.run.dag_run_id}, {b.run.status})")
    emit(rows, ["metric", "unit", "direction", "a", "b", "delta_pct", "b_is"], args.format,
         {"a": a.run.to_dict(), "b": b.run.to_dict(), "metrics": rows})
    return 0


def _report(args) -> int:
    from factorybench.report import render_run_report_from
    from factorybench.results.query import Results

    html = render_run_report_from(Results(args.url), args.run)
    out = Path(args.out or f"report-{args.run.replace(':', '_')}.html")
    out.write_text(html)
    print(f"report: {out} ({len(html) // 1024} KiB)")
    return 0


_COLUMNS = ("recipe", "time", "metric", "value", "unit", "direction")


def read_history(path: Path) -> list:
    """CSV or JSON history rows; every problem names the file, the row and the field."""
    from factorybench.results.store import HistoryRow

    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            records = json.loads(text)
        except ValueError as exc:
            raise FactorybenchError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(records, list):
            raise FactorybenchError(f"{path}: must hold a list of objects with {', '.join(_COLUMNS)}")
    else:
        records = list(csv.DictReader(io.StringIO(text)))
    rows, problems = [], []
    for n, rec in enumerate(records, start=2 if path.suffix.lower() != ".json" else 1):
        where = f"{path}: {'line' if path.suffix.lower() != '.json' else 'item'} {n}"
        if not isinstance(rec, dict):
            problems.append(f"{where}: must be an object")
            continue
        missing = [c for c in ("recipe", "time", "metric", "value") if rec.get(c) in (None, "")]
        if missing:
            problems.append(f"{where}: {', '.join(missing)}: required field missing")
            continue
        try:
            when = datetime.fromisoformat(str(rec["time"]).replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{where}: time: {rec['time']!r} is not an ISO 8601 date or time")
            continue
        try:
            value = float(rec["value"])
        except (TypeError, ValueError):
            problems.append(f"{where}: value: {rec['value']!r} is not a number")
            continue
        direction = (rec.get("direction") or "none").strip().lower()
        if direction not in ("higher", "lower", "none"):
            problems.append(f"{where}: direction: {direction!r} must be higher, lower or none")
            continue
        rows.append(HistoryRow(str(rec["recipe"]), when if when.tzinfo else when.replace(tzinfo=timezone.utc),
                               str(rec["metric"]), value, str(rec.get("unit") or ""), direction))
    if problems:
        raise FactorybenchError("\n".join(problems))
    return rows


def _import(args) -> int:
    from factorybench.results.store import import_history

    path = Path(args.file)
    if not path.exists():
        raise FactorybenchError(f"{path}: no such file")
    rows = read_history(path)
    n = import_history(args.url or settings.results_url(), rows, path.name)
    print(f"imported {len(rows)} values as {n} runs of {len({r.recipe for r in rows})} recipe(s) from {path}")
    return 0


def _annotate(args) -> int:
    from factorybench.results.query import Results
    from factorybench.results.store import annotate

    run = Results(args.url).run(args.run).run
    note = annotate(args.url or settings.results_url(), run.recipe, args.author, args.accept, dag_run_id=run.dag_run_id)
    print(f"accepted change {note} on {run.recipe} from run {run.id} ({run.dag_run_id}): the baseline restarts there")
    return 0


def register(sub) -> None:
    def db(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help="results database URL (default: $FB_RESULTS_URL or results/factorybench.db)")

    p = sub.add_parser("results", help="the latest runs", description="The latest runs, newest first.")
    p.add_argument("--recipe", help="only this recipe's runs")
    p.add_argument("--status", choices=("success", "failed", "invalid"), help="only runs with this status")
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    db(p)
    add_format(p)
    p.set_defaults(func=_results)

    p = sub.add_parser("history", help="a recipe's series with verdicts and change points",
                       description="Each metric's series of the recipe's runs, oldest first, with each run's "
                                   "verdict, the change points found over the series and accepted changes.")
    p.add_argument("recipe", help="recipe name")
    p.add_argument("--metric", action="append", help="a metric (repeatable; default: the recipe's primary metrics)")
    db(p)
    add_format(p)
    p.set_defaults(func=_history)

    p = sub.add_parser("compare", help="two runs side by side", description="Two runs' metrics side by side, "
                       "with the change from A to B and whether it is better or worse.")
    p.add_argument("run_a", metavar="RUN_A", help=RUN_HELP)
    p.add_argument("run_b", metavar="RUN_B", help=RUN_HELP)
    p.add_argument("--html", metavar="FILE", help="also write the comparison report (HTML) to FILE")
    db(p)
    add_format(p)
    p.set_defaults(func=_compare)

    p = sub.add_parser("report", help="write a run's HTML report", description="Render a stored run's "
                       "self-contained HTML report from the archive and the database.")
    p.add_argument("run", metavar="RUN", help=RUN_HELP)
    p.add_argument("--out", help="output file (default: report-RUN.html)")
    db(p)
    p.set_defaults(func=_report)

    p = sub.add_parser("import", help="import history from CSV or JSON",
                       description="Import a metric history kept by another tool: CSV with a header, or a JSON "
                                   "list of objects, with the columns recipe, time, metric, value, unit and "
                                   "direction (higher, lower or none). Rows of one recipe and time form one run; "
                                   "importing the same file again replaces them.")
    p.add_argument("file", help="a .csv or .json file")
    db(p)
    p.set_defaults(func=_import)

    p = sub.add_parser("annotate", help="mark an accepted change", description="Mark a run as an accepted "
                       "change (a new normal): the recipe's baseline restarts at this run.")
    p.add_argument("run", metavar="RUN", help=RUN_HELP)
    p.add_argument("--accept", required=True, metavar="WHY", help="why the change is accepted")
    p.add_argument("--author", default=os.environ.get("FB_AUTHOR") or getpass.getuser(),
                   help="who accepts it (default: $FB_AUTHOR or the current user)")
    db(p)
    p.set_defaults(func=_annotate)
