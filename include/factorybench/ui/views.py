"""What each page shows, built from the results read API (`Results`) and the recipe files.
No FastAPI and no Airflow here: the routes in app.py render these into templates."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from markupsafe import Markup

from factorybench import settings
from factorybench.analysis.config import DEFAULT_PRIMARY, ChecksConfig
from factorybench.errors import FactorybenchError
from factorybench.recipe import load_recipe, recipe_files
from factorybench.recipe.schema import dag_id_for
from factorybench.results import metrics as catalog
from factorybench.results.query import RecipeRow, Results, RunDetail, SeriesPoint
from factorybench.ui import svg

SPARK_RUNS = 30  # runs per sparkline
SPARK_METRICS = 4  # sparklines per recipe
TEXT_FILES = ("service.out", "service.err", "client.out", "client.err", "job.sh", "recipe.yaml", "endpoint.json",
              "job.json", "verdict.json", "plan.json")
LOG_TAIL = 12_000  # characters of each job log shown inline


@dataclass(frozen=True)
class RecipeInfo:
    """What the UI needs of a recipe file (tags, DAG id, checks): read once per file change."""

    name: str
    dag_id: str
    tags: tuple[str, ...]
    description: str
    profile: str
    checks: ChecksConfig


_catalog: dict[str, Any] = {}


def recipe_catalog(directory: Path | None = None) -> dict[str, RecipeInfo]:
    """Every valid recipe by name; re-read only when a file is added, removed or changed."""
    directory = Path(directory or settings.recipes_dir())
    files = recipe_files(directory) if directory.is_dir() else []
    key = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    if _catalog.get("key") != key:
        found = {}
        for path in files:
            try:
                r = load_recipe(path)
            except FactorybenchError:
                continue  # a broken recipe has a DAG of its own that says why
            found[r.name] = RecipeInfo(r.name, r.dag_id, tuple(r.tags), r.description, r.cluster.profile, r.checks)
        _catalog.update(key=key, recipes=found)
    return _catalog["recipes"]


def dag_id_of(recipe: str) -> str:
    return dag_id_for(recipe)


# --- the Benchmarks page ----------------------------------------------------------------

@dataclass
class MetricTrend:
    name: str
    unit: str
    direction: str
    last: float | None
    change_pct: float | None  # last against the valid run before it
    verdict: str | None  # the last run's verdict of this metric
    spark: Markup

    @property
    def worse(self) -> bool:
        """The change goes the bad way (by the metric's direction)."""
        if self.change_pct is None or self.direction == "none":
            return False
        return self.change_pct < 0 if self.direction == "higher" else self.change_pct > 0


@dataclass
class RecipeCard:
    recipe: str
    dag_id: str
    tags: tuple[str, ...]
    description: str
    clusters: list[str]
    runs: int
    last: RecipeRow | None
    metrics: list[MetricTrend] = field(default_factory=list)


def points_of(series: list[SeriesPoint], href: Callable[[SeriesPoint], str | None] = lambda p: None) -> list[svg.Point]:
    return [svg.Point(p.value, p.valid, p.verdict, p.dag_run_id, p.at, href(p)) for p in series]


def _metric_trend(name: str, series: list[SeriesPoint]) -> MetricTrend:
    d = catalog.define(name)
    valid = [p for p in series if p.valid and p.value is not None]
    last, before = (valid[-1].value if valid else None), (valid[-2].value if len(valid) > 1 else None)
    change = (last - before) / abs(before) * 100 if last is not None and before else None
    return MetricTrend(name, d.unit, d.direction, last, change, series[-1].verdict if series else None,
                       svg.sparkline(points_of(series)))


def primary_of(results: Results, recipe: str, info: RecipeInfo | None) -> list[str]:
    """The recipe's primary metrics that its runs carry, in the recipe's order."""
    have = {m["name"] for m in results.metric_names(recipe)}
    wanted = list(info.checks.primary) if info else list(DEFAULT_PRIMARY)
    return [m for m in wanted if m in have]


def overview(results: Results, allowed: Callable[[str], bool], tag: str | None = None,
             cluster: str | None = None) -> tuple[list[RecipeCard], list[str], list[str]]:
    """One card per recipe the user may read (with results, or only a recipe file), filtered by
    tag and cluster; and every tag and cluster there is to filter by."""
    from factorybench.report.data import fetch_history

    recipes = recipe_catalog()
    rows = {r.recipe: r for r in results.recipes()}
    tags = sorted({t for info in recipes.values() for t in info.tags})
    clusters = sorted({c for r in rows.values() for c in r.clusters})
    if cluster:
        rows = {r.recipe: r for r in results.recipes(cluster=cluster)}
    names = sorted(set(rows) | (set() if cluster else set(recipes)))
    cards = []
    for name in names:
        info = recipes.get(name)
        if tag and (info is None or tag not in info.tags):
            continue
        if not allowed(dag_id_of(name)):
            continue
        row = rows.get(name)
        card = RecipeCard(name, dag_id_of(name), info.tags if info else (), info.description if info else "",
                          row.clusters if row else [], row.runs if row else 0, row)
        if row is not None:
            history, _ = fetch_history(results, name, primary_of(results, name, info)[:SPARK_METRICS], limit=SPARK_RUNS)
            card.metrics = [_metric_trend(m, points) for m, points in history.items()]
        cards.append(card)
    return cards, tags, clusters


# --- the trend page ----------------------------------------------------------------------

@dataclass
class TrendView:
    recipe: str
    dag_id: str
    metric: str
    unit: str
    direction: str
    metrics: list[dict[str, Any]]  # every metric the recipe's runs carry, for the picker
    points: list[SeriesPoint]
    plot: Markup
    change_points: list[dict[str, Any]]
    annotations: list[Any]


def trend_view(results: Results, recipe: str, metric: str | None, run_href: Callable[[SeriesPoint], str]) -> TrendView:
    from factorybench.regression import series_report
    from factorybench.report.data import fetch_history

    info = recipe_catalog().get(recipe)
    names = results.metric_names(recipe)
    if not names:
        raise FactorybenchError(f"recipe {recipe!r} has no results yet")
    primary = primary_of(results, recipe, info)
    metric = metric if metric in {m["name"] for m in names} else (primary or [names[0]["name"]])[0]
    history, notes = fetch_history(results, recipe, [metric], limit=None)
    points = history[metric]
    report = series_report(results, recipe, metric, info.checks if info else ChecksConfig())
    index = {p.dag_run_id: i for i, p in enumerate(points)}
    markers = [svg.Marker(index[a.dag_run_id] if a.dag_run_id in index else _index_at(points, a.at), "accepted",
                          f"accepted: {a.reason}") for a in notes]
    markers += [svg.Marker(index[c["run"]], "change",
                           f"change point {(c['magnitude'] or 0) * 100:+.1f}%") for c in report["change_points"]
                if c["run"] in index]
    d = catalog.define(metric)
    # Primary metrics first, then the rest by name: the picker's order.
    ordered = sorted(names, key=lambda m: (m["name"] not in primary, primary.index(m["name"]) if m["name"] in primary
                                           else 0, m["name"]))
    return TrendView(recipe, dag_id_of(recipe), metric, d.unit, d.direction, ordered, points,
                     svg.trend(points_of(points, run_href), [m for m in markers if m.index is not None], d.unit),
                     report["change_points"], notes)


def _index_at(points: list[SeriesPoint], at) -> int | None:
    """The first point at or after a time (where an accepted change without a run begins)."""
    return next((i for i, p in enumerate(points) if at is not None and p.at is not None and p.at >= at), None)


# --- one run -------------------------------------------------------------------------------

@dataclass
class RunView:
    detail: RunDetail
    primary: list[dict[str, Any]]  # name, unit, value, verdict, message: the judged metrics
    others: list[Any]  # the remaining whole-run metrics
    logs: dict[str, tuple[str, bool]]  # job log by file name: (its last LOG_TAIL characters, cut?)
    files: list[str]  # text files of the archive that can be opened
    has_report: bool


def run_view(results: Results, detail: RunDetail) -> RunView:
    verdicts = {v.get("metric"): v for v in (detail.verdicts or {}).get("metrics") or []}
    whole = [m for m in detail.metrics if m.step_index is None]
    wanted = [v["metric"] for v in verdicts.values() if v.get("primary")] or list(DEFAULT_PRIMARY)
    by_name = {m.name: m for m in whole}
    primary = [{"name": n, "unit": by_name[n].unit, "value": by_name[n].value, "direction": by_name[n].direction,
                "verdict": (verdicts.get(n) or {}).get("verdict"), "message": (verdicts.get(n) or {}).get("message")}
               for n in wanted if n in by_name]
    others = [m for m in whole if m.name not in {p["name"] for p in primary}]
    names = {a["name"] for a in detail.artifacts}
    logs = {}
    for name in ("service.out", "service.err", "client.out", "client.err"):
        if name in names:
            try:
                text = results.artifact(detail.run.id, name).decode(errors="replace")
            except (FactorybenchError, OSError) as exc:
                text = f"(cannot read {name}: {exc})"
            logs[name] = (text[-LOG_TAIL:], len(text) > LOG_TAIL)
    return RunView(detail, primary, others, logs, [n for n in TEXT_FILES if n in names], "report.html" in names)


def live_view(progress: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """The live figures with their age, or None."""
    if not progress:
        return None
    return {**progress, "age_s": max(now - float(progress.get("updated_at") or now), 0.0)}


# --- compare -------------------------------------------------------------------------------

def compare_rows(a: RunDetail, b: RunDetail) -> list[dict[str, Any]]:
    """Whole-run metrics of both runs side by side, with B's change against A and whether it is
    better or worse by the metric's direction."""
    ma = {m.name: m for m in a.metrics if m.step_index is None}
    mb = {m.name: m for m in b.metrics if m.step_index is None}
    primary = [m for m in DEFAULT_PRIMARY if m in ma or m in mb]
    rows = []
    for name in primary + sorted((set(ma) | set(mb)) - set(primary)):
        x, y = ma.get(name), mb.get(name)
        ref = x or y
        va, vb = (x.value if x else None), (y.value if y else None)
        change = (vb - va) / abs(va) * 100 if va not in (None, 0) and vb is not None else None
        better = None
        if change is not None and ref.direction != "none" and abs(change) >= 0.05:
            better = (change > 0) == (ref.direction == "higher")
        if va is None and vb is None:
            continue  # a metric neither run's workload has (embeddings of a chat server, say)
        rows.append({"name": name, "unit": ref.unit, "a": va, "b": vb, "change_pct": change, "better": better,
                     "primary": name in primary})
    return rows


def pretty_json(raw: bytes) -> str:
    try:
        return json.dumps(json.loads(raw), indent=2, sort_keys=True)
    except ValueError:
        return raw.decode(errors="replace")
