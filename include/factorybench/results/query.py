"""The one read API over the results database and the run archives.

The analysis, the reports, the CLI, the UI and the CI trigger all read through `Results`;
none of them opens a table or an archive file directly. Everything returned is a plain
dataclass with `to_dict()`, so it serialises to JSON and CSV unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from factorybench import settings
from factorybench.errors import FactorybenchError
from factorybench.results.archive import RunArchive
from factorybench.results.database import engine_for
from factorybench.results.schema import Annotation, Metric, Run

SAMPLES = "load/samples.parquet"
LIVE_PROGRESS = "live/progress.json"  # in a run's spool while its load runs (factorybench.ui.progress)
_TS = func.coalesce(Run.started_at, Run.finished_at)


def _utc(value: datetime | None) -> datetime | None:
    """Times are stored in UTC; SQLite hands them back without a zone."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _utc(value).isoformat()


class _Row:
    def to_dict(self) -> dict[str, Any]:
        return {k: _iso(v) if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass
class RunRow(_Row):
    id: int
    recipe: str
    recipe_hash: str
    dag_id: str
    dag_run_id: str
    trigger: str
    ci_ref: str | None
    cluster: str
    transport: str
    status: str
    message: str
    verdict: str | None
    verdict_line: str | None
    started_at: datetime | None
    finished_at: datetime | None
    job_ids: list[str]
    nodes: list[str]
    archive_url: str | None
    metrics: dict[str, float | None] = field(default_factory=dict)  # whole-run metrics


@dataclass
class MetricRow(_Row):
    name: str
    step_index: int | None
    value: float | None
    unit: str
    direction: str
    source: str


@dataclass
class StepRow(_Row):
    index: int
    label: str
    mode: str | None
    streams: int | None
    rate: float | None
    valid: bool
    params: dict[str, Any]


@dataclass
class RunDetail(_Row):
    run: RunRow
    provenance: dict[str, Any]
    steps: list[StepRow]
    metrics: list[MetricRow]
    artifacts: list[dict[str, Any]]
    verdicts: dict[str, Any] | None


@dataclass
class SeriesPoint(_Row):
    run_id: int
    dag_run_id: str
    at: datetime | None
    value: float | None
    valid: bool
    verdict: str | None
    recipe_hash: str


@dataclass
class AnnotationRow(_Row):
    id: int
    recipe: str
    dag_run_id: str | None
    at: datetime | None
    kind: str
    author: str
    reason: str
    created_at: datetime | None


@dataclass
class RecipeRow(_Row):
    recipe: str
    runs: int
    clusters: list[str]
    last_run_id: int
    last_dag_run_id: str
    last_at: datetime | None
    last_status: str
    last_verdict: str | None
    last_verdict_line: str | None


def _run_row(run: Run) -> RunRow:
    return RunRow(id=run.id, recipe=run.recipe, recipe_hash=run.recipe_hash, dag_id=run.dag_id,
                  dag_run_id=run.dag_run_id, trigger=run.trigger, ci_ref=run.ci_ref, cluster=run.cluster,
                  transport=run.transport, status=run.status, message=run.message, verdict=run.verdict,
                  verdict_line=run.verdict_line, started_at=_utc(run.started_at), finished_at=_utc(run.finished_at),
                  job_ids=list(run.job_ids or []), nodes=list(run.nodes or []), archive_url=run.archive_url,
                  metrics={m.name: m.value for m in run.metrics if m.step_index is None})


_PROVENANCE = ("recipe_text", "triggered_by", "fb_version", "git_commit", "partition", "image", "model",
               "service_kind", "service_version", "client_versions", "service_state")


class Results:
    """Read access to one results database and its archives."""

    def __init__(self, url: str | None = None):
        self.url = url or settings.results_url()
        self.engine = engine_for(self.url)

    # --- runs ---------------------------------------------------------------------

    def runs(self, recipe: str | None = None, *, limit: int = 20, status: str | None = None,
             cluster: str | None = None, since: datetime | None = None) -> list[RunRow]:
        """The newest runs first."""
        q = select(Run).options(selectinload(Run.metrics)).order_by(_TS.desc(), Run.id.desc()).limit(limit)
        for column, value in ((Run.recipe, recipe), (Run.status, status), (Run.cluster, cluster)):
            if value is not None:
                q = q.where(column == value)
        if since is not None:
            q = q.where(_TS >= since)
        with Session(self.engine) as s:
            return [_run_row(r) for r in s.scalars(q)]

    def _find(self, s: Session, ref: int | str, recipe: str | None = None) -> Run:
        """A run by row id, by DAG run id (optionally within a recipe), or 'latest:<recipe>'."""
        q = select(Run).options(selectinload(Run.metrics), selectinload(Run.steps), selectinload(Run.artifacts))
        if recipe is not None:
            q = q.where(Run.recipe == recipe)
        text = str(ref)
        if text.startswith("latest:"):
            q = q.where(Run.recipe == text.removeprefix("latest:"))
        elif isinstance(ref, int):
            q = q.where(Run.id == ref)
        else:  # a DAG run id; a bare number may also be a row id
            q = q.where(or_(Run.dag_run_id == text, Run.id == int(text)) if text.isdigit() else Run.dag_run_id == text)
        run = s.scalars(q.order_by(_TS.desc(), Run.id.desc()).limit(1)).first()
        if run is None:
            raise FactorybenchError(f"no run {text!r}" + (f" of recipe {recipe!r}" if recipe else "")
                                    + " in the results database")
        return run

    def run(self, ref: int | str, recipe: str | None = None) -> RunDetail:
        with Session(self.engine) as s:
            run = self._find(s, ref, recipe)
            return RunDetail(
                run=_run_row(run),
                provenance={k: getattr(run, k) for k in _PROVENANCE},
                steps=[StepRow(st.index, st.label, st.mode, st.streams, st.rate, st.valid, dict(st.params or {}))
                       for st in run.steps],
                metrics=[MetricRow(m.name, m.step_index, m.value, m.unit, m.direction, m.source)
                         for m in sorted(run.metrics, key=lambda m: (m.step_index is not None, m.step_index or 0,
                                                                     m.name))],
                artifacts=[{"name": a.name, "kind": a.kind, "size": a.size, "sha256": a.sha256}
                           for a in sorted(run.artifacts, key=lambda a: a.name)],
                verdicts=run.verdicts)

    def run_by_dag_run(self, dag_id: str, dag_run_id: str) -> RunDetail | None:
        with Session(self.engine) as s:
            run_id = s.scalar(select(Run.id).where(Run.dag_id == dag_id, Run.dag_run_id == dag_run_id))
        return None if run_id is None else self.run(run_id)

    # --- history --------------------------------------------------------------------

    def series(self, recipe: str, metric: str, *, step: int | None = None, recipe_hash: str | None = None,
               workload_hash: str | None = None, since: datetime | None = None, until: datetime | None = None,
               limit: int | None = None) -> list[SeriesPoint]:
        """One metric of a recipe's runs, oldest first. `recipe_hash` keeps only runs of the same
        effective recipe; `workload_hash` only runs of the same workload, and imported history
        (which has none). Invalid and failed runs are included with valid=False: callers decide."""
        step_cond = Metric.step_index.is_(None) if step is None else Metric.step_index == step
        q = (select(Run.id, Run.dag_run_id, _TS, Metric.value, Run.status, Run.verdict, Run.recipe_hash)
             .join(Metric, and_(Metric.run_id == Run.id, Metric.name == metric, step_cond)))
        if recipe_hash is not None:
            q = q.where(Run.recipe_hash == recipe_hash)
        if workload_hash is not None:
            q = q.where(or_(Run.workload_hash == workload_hash, Run.workload_hash.is_(None)))
        q = q.where(Run.recipe == recipe)
        if since is not None:
            q = q.where(_TS >= since)
        if until is not None:
            q = q.where(_TS <= until)
        q = q.order_by(_TS.desc(), Run.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with Session(self.engine) as s:
            rows = s.execute(q).all()
        return [SeriesPoint(run_id=r[0], dag_run_id=r[1], at=_utc(r[2]), value=r[3], valid=r[4] == "success",
                            verdict=r[5], recipe_hash=r[6]) for r in reversed(rows)]

    def metric_names(self, recipe: str) -> list[dict[str, Any]]:
        """Every whole-run metric the recipe's runs carry, with unit and direction."""
        q = (select(Metric.name, Metric.unit, Metric.direction, Metric.source).join(Run, Run.id == Metric.run_id)
             .where(Run.recipe == recipe, Metric.step_index.is_(None)).distinct().order_by(Metric.name))
        with Session(self.engine) as s:
            return [{"name": n, "unit": u, "direction": d, "source": src} for n, u, d, src in s.execute(q)]

    def annotations(self, recipe: str) -> list[AnnotationRow]:
        q = select(Annotation).where(Annotation.recipe == recipe).order_by(Annotation.at)
        with Session(self.engine) as s:
            return [AnnotationRow(a.id, a.recipe, a.dag_run_id, _utc(a.at), a.kind, a.author, a.reason,
                                  _utc(a.created_at))
                    for a in s.scalars(q)]

    def recipes(self, cluster: str | None = None) -> list[RecipeRow]:
        """Every recipe with results: its run count, clusters and last run's verdict."""
        newest = (select(Run.recipe, func.max(Run.id).label("last_id"), func.count(Run.id).label("n"))
                  .group_by(Run.recipe))
        if cluster is not None:
            newest = newest.where(Run.cluster == cluster)
        newest = newest.subquery()
        q = select(Run, newest.c.n).join(newest, Run.id == newest.c.last_id).order_by(Run.recipe)
        with Session(self.engine) as s:
            clusters: dict[str, set[str]] = {}
            for recipe, c in s.execute(select(Run.recipe, Run.cluster).distinct()):
                clusters.setdefault(recipe, set()).add(c)
            return [RecipeRow(recipe=r.recipe, runs=n, clusters=sorted(clusters.get(r.recipe, ())),
                              last_run_id=r.id, last_dag_run_id=r.dag_run_id,
                              last_at=_utc(r.started_at or r.finished_at), last_status=r.status,
                              last_verdict=r.verdict, last_verdict_line=r.verdict_line)
                    for r, n in s.execute(q)]

    # --- archive --------------------------------------------------------------------

    def archive(self, ref: int | str) -> RunArchive:
        with Session(self.engine) as s:
            run = self._find(s, ref)
            if not run.archive_url:
                raise FactorybenchError(f"run {run.id} ({run.dag_run_id}) has no archive")
            return RunArchive.at(run.archive_url)

    def artifact(self, ref: int | str, name: str) -> bytes:
        archive = self.archive(ref)
        manifest = archive.manifest() or {}
        if name not in manifest.get("files", {}):
            raise FactorybenchError(f"run {ref}: the archive has no file {name!r}")
        return archive.read(name)

    def live(self, dag_id: str, dag_run_id: str, archive_url: str | None = None) -> dict[str, Any] | None:
        """An in-flight run's latest progress (requests done, errors, rate and latency percentiles of
        the last few seconds, `updated_at` in epoch seconds), or None: the load is not running in
        this process's reach, or the run is archived (the archive then holds the result)."""
        import json

        from factorybench.results.archive import Spool

        raw = Spool(archive_url or settings.archive_url(), dag_id, dag_run_id).get(LIVE_PROGRESS)
        return json.loads(raw) if raw else None

    def samples(self, ref: int | str, step: int | None = None):
        """The run's per-request samples as a pyarrow Table (optionally one step), or None."""
        import pyarrow.parquet as pq

        archive = self.archive(ref)
        if not archive.exists(SAMPLES):
            return None
        with archive.open(SAMPLES) as f:
            table = pq.read_table(f)
        if step is not None:
            import pyarrow.compute as pc
            table = table.filter(pc.equal(table["step"], step))
        return table

    def sample_values(self, ref: int | str, column: str, step: int | None = None):
        """One sample column of the run's measured requests (see `measured_values`)."""
        return measured_values(self.samples(ref, step), column)


def measured_values(table, column: str):
    """One column of a samples table, for the successful non-warm-up requests only, as a float
    numpy array; list columns (itl_ms) are flattened. Empty when the column is absent."""
    import numpy as np
    import pyarrow.compute as pc

    if table is None or column not in table.column_names:
        return np.empty(0)
    keep = pc.and_(pc.invert(table["warmup"]), pc.is_null(table["error"]))
    col = table.filter(keep)[column]
    if str(col.type).startswith("list"):
        col = pc.list_flatten(col)
    return np.asarray(col.drop_null().to_numpy(zero_copy_only=False), dtype=float)
