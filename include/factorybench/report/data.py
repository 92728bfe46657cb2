"""What a report is made from: one plain object, built from in-memory pieces or from the results database.

The archive task renders a run's report before the run is in the database (the HTML goes into the
same archive transaction), so `RunReportData.from_parts` takes what that task holds: the load
result, the samples, the verdicts and the run's fields. `from_results` rebuilds the same object from
an archived run, so `factorybench report RUN` regenerates the report the archive holds.
`baseline` makes a pseudo-run out of a run's last N comparable runs, for `render_comparison`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from factorybench.analysis.config import DEFAULT_PRIMARY
from factorybench.errors import FactorybenchError
from factorybench.results import metrics as catalog
from factorybench.results.query import AnnotationRow, RunRow, SeriesPoint

if TYPE_CHECKING:
    import pyarrow as pa

    from factorybench.results.query import Results

LOAD_RESULT = "load/summary.json"
HISTORY_LIMIT = 60  # runs per trend panel


@dataclass
class RunReportData:
    """Everything one report shows about one run (or one baseline), and nothing it has to look up.

    run: the run's fields as `RunRecord`/`RunRow` name them, plus provenance (recipe_hash,
        fb_version, git_commit, trigger, ci_ref, cluster, job_ids, nodes, image, model,
        service_version, client_versions, recipe_text...); unknown keys are ignored.
    load: the LoadResult JSON (the archive's load/summary.json): config (with slo), summary,
        steps, capacity. None when the run never produced one.
    samples: the per-request samples (load/samples.parquet) as a pyarrow Table, or None.
    verdicts: `RunVerdict.to_dict()` ({"metrics": [...]}), or None before/without analysis.
    metrics: whole-run metrics by name, as the database stores them.
    history: per primary metric, the recipe's series oldest first, this run included.
    annotations: the recipe's accepted changes.
    """

    run: dict[str, Any]
    load: dict[str, Any] | None = None
    samples: pa.Table | None = None
    verdicts: dict[str, Any] | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    history: dict[str, list[SeriesPoint]] = field(default_factory=dict)
    annotations: list[AnnotationRow] = field(default_factory=list)
    label: str = ""

    # --- constructors -----------------------------------------------------------------

    @classmethod
    def from_parts(cls, run: Mapping[str, Any] | Any, load: Mapping[str, Any] | bytes | str | None = None,
                   samples: pa.Table | bytes | None = None, verdicts: Mapping[str, Any] | None = None, *,
                   history: Mapping[str, list[SeriesPoint]] | None = None,
                   annotations: Iterable[AnnotationRow] = (),
                   metrics: Mapping[str, float | None] | None = None) -> RunReportData:
        """From what the archive task holds. `run` may be a dict or a `RunRecord`; `load` the
        summary.json text or dict; `samples` the parquet bytes or a Table; `history` and
        `annotations` as `fetch_history` returns them. The run itself joins its trend series."""
        meta = _run_dict(run)
        result = json.loads(load) if isinstance(load, (bytes, str)) else (dict(load) if load else None)
        if metrics is None:
            summary = (result or {}).get("summary")
            metrics = {m.name: m.value for m in catalog.from_summary(summary)} if summary else {}
        data = cls(run=meta, load=result, samples=_table(samples), verdicts=dict(verdicts) if verdicts else None,
                   metrics=dict(metrics), annotations=list(annotations),
                   label=str(meta.get("dag_run_id") or meta.get("label") or "run"))
        data.history = {name: _with_run(list(points), history_point(data, name))
                        for name, points in (history or {}).items()}
        return data

    @classmethod
    def from_results(cls, results: Results, ref: int | str, *, history_limit: int = HISTORY_LIMIT) -> RunReportData:
        """An archived run, with its trend up to (and including) itself, so a regenerated report
        shows what the one rendered at archive time showed."""
        detail = results.run(ref)
        row = detail.run
        meta = {**row.to_dict(), **{k: v for k, v in detail.provenance.items()}}
        load = samples = None
        if row.archive_url:
            try:
                load = json.loads(results.artifact(row.id, LOAD_RESULT))
            except FactorybenchError:
                load = None
            samples = results.samples(row.id)
        metrics = {m.name: m.value for m in detail.metrics if m.step_index is None}
        names = primary_metrics(detail.verdicts, metrics)
        history, notes = fetch_history(results, row.recipe, names, until=row.started_at or row.finished_at,
                                       limit=history_limit)
        return cls.from_parts(meta, load, samples, detail.verdicts, history=history, annotations=notes,
                              metrics=metrics)

    @classmethod
    def baseline(cls, results: Results, ref: int | str, *, n: int = 10) -> RunReportData:
        """The run's baseline as a pseudo-run: each metric the median over the last `n` successful
        runs with the same recipe hash before it (since the latest accepted change), and their
        samples pooled."""
        import pyarrow as pa

        detail = results.run(ref)
        row = detail.run
        until = row.started_at or row.finished_at
        since = max((a.at for a in results.annotations(row.recipe) if a.at and (until is None or a.at <= until)),
                    default=None)
        def before(r: RunRow) -> bool:
            at = r.started_at or r.finished_at
            return until is None or at is None or at <= until

        rows = [r for r in results.runs(row.recipe, status="success", limit=max(200, 20 * n), since=since)
                if r.recipe_hash == row.recipe_hash and r.id != row.id and before(r)][:n]
        if not rows:
            raise FactorybenchError(f"run {row.dag_run_id}: no earlier successful run of recipe {row.recipe!r} "
                                    f"with recipe hash {row.recipe_hash} to form a baseline")
        names = {k for r in rows for k in r.metrics}
        metrics = {k: statistics.median(v) if (v := [r.metrics[k] for r in rows if r.metrics.get(k) is not None])
                   else None for k in sorted(names)}
        tables = [t for r in rows if r.archive_url and (t := results.samples(r.id)) is not None]
        pooled = pa.concat_tables(tables, promote_options="default") if tables else None
        first, last = rows[-1].dag_run_id, rows[0].dag_run_id
        label = f"baseline: median of {len(rows)} runs ({first} .. {last})" if len(rows) > 1 else \
            f"baseline: run {last}"
        meta = {"label": label, "recipe": row.recipe, "recipe_hash": row.recipe_hash, "status": "success",
                "message": "", "baseline_runs": [r.dag_run_id for r in reversed(rows)],
                "started_at": rows[-1].started_at, "finished_at": rows[0].finished_at}
        return cls(run=meta, metrics=metrics, samples=pooled, label=label)

    # --- what the sections read ---------------------------------------------------------

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list((self.load or {}).get("steps") or [])

    @property
    def slo(self) -> dict[str, float]:
        slo = ((self.load or {}).get("config") or {}).get("slo") or {}
        return {k: float(v) for k, v in slo.items() if v is not None}

    @property
    def summary(self) -> dict[str, Any]:
        return dict((self.load or {}).get("summary") or {})

    def verdict_rows(self) -> list[dict[str, Any]]:
        return list((self.verdicts or {}).get("metrics") or [])


def primary_metrics(verdicts: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None = None) -> list[str]:
    """The metrics that can fail the run: those the verdicts mark primary, else the analysis defaults
    the run carries."""
    marked = [v["metric"] for v in (verdicts or {}).get("metrics") or [] if v.get("primary")]
    if marked:
        return marked
    return [m for m in DEFAULT_PRIMARY if metrics is None or m in metrics]


def fetch_history(results: Results, recipe: str, metrics: Iterable[str], *, until: datetime | None = None,
                  limit: int = HISTORY_LIMIT) -> tuple[dict[str, list[SeriesPoint]], list[AnnotationRow]]:
    """The recipe's series of each metric (the newest `limit` runs up to `until`, oldest first) and
    its accepted changes up to `until`: the `history` and `annotations` of `from_parts`."""
    history = {m: results.series(recipe, m, until=until, limit=limit) for m in metrics}
    notes = [a for a in results.annotations(recipe) if until is None or a.at is None or a.at <= until]
    return _metric_verdicts(results, history), notes


def _metric_verdicts(results: Results, history: dict[str, list[SeriesPoint]]) -> dict[str, list[SeriesPoint]]:
    """Series points carry their run's verdict; where the run stored per-metric verdicts, each
    point gets its own metric's instead (None if that metric was not judged), so a TTFT
    regression does not mark the throughput panel."""
    flagged = {p.run_id for points in history.values() for p in points if p.verdict not in (None, "pass")}
    own = {rid: {v.get("metric"): v.get("verdict") for v in (results.run(rid).verdicts or {}).get("metrics") or []}
           for rid in flagged}
    return {m: [dataclasses.replace(p, verdict=own[p.run_id].get(m)) if own.get(p.run_id) else p
                for p in points] for m, points in history.items()}


def run_time(run: Mapping[str, Any]) -> datetime | None:
    value = run.get("started_at") or run.get("finished_at")
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def _run_dict(run: Mapping[str, Any] | Any) -> dict[str, Any]:
    if isinstance(run, Mapping):
        return dict(run)
    if dataclasses.is_dataclass(run):
        return {f.name: getattr(run, f.name) for f in dataclasses.fields(run)
                if f.name not in ("metrics", "steps", "artifacts")}
    raise TypeError(f"run metadata must be a dict or a RunRecord, not {type(run).__name__}")


def _table(samples: pa.Table | bytes | None) -> pa.Table | None:
    if samples is None or not isinstance(samples, (bytes, bytearray)):
        return samples
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(samples))


def _with_run(points: list[SeriesPoint], point: SeriesPoint | None) -> list[SeriesPoint]:
    """The series with this run as its last point, when the database does not hold it yet."""
    if point is None or any(p.dag_run_id == point.dag_run_id for p in points):
        return points
    return [*points, point]


def history_point(data: RunReportData, metric: str) -> SeriesPoint | None:
    """This run as a point of its own series (None when it has no value for the metric)."""
    value = data.metrics.get(metric)
    if value is None:
        return None
    run = data.run
    return SeriesPoint(run_id=int(run.get("id") or 0), dag_run_id=str(run.get("dag_run_id") or data.label),
                       at=run_time(run), value=value, valid=run.get("status") == "success",
                       verdict=next((v.get("verdict") for v in data.verdict_rows() if v.get("metric") == metric),
                                    run.get("verdict")), recipe_hash=str(run.get("recipe_hash") or ""))
