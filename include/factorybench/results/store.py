"""The only code that writes to the results database.

A run goes in as one `RunRecord` inside one transaction. Recording a run whose (dag_id,
dag_run_id) already exists replaces it, so re-running an archive task is idempotent.
Annotations ("accepted change") and imported history are written here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from factorybench.errors import FactorybenchError
from factorybench.results.archive import Entry
from factorybench.results.database import engine_for
from factorybench.results.metrics import MetricValue, value_of
from factorybench.results.schema import Annotation, Artifact, Metric, Run, Step


@dataclass
class StepRecord:
    index: int
    label: str
    mode: str | None = None
    streams: int | None = None
    rate: float | None = None
    valid: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[MetricValue] = field(default_factory=list)


@dataclass
class RunRecord:
    recipe: str
    recipe_hash: str
    workload_hash: str | None
    dag_id: str
    dag_run_id: str
    cluster: str
    transport: str
    status: str  # success | failed | invalid
    message: str = ""
    recipe_text: str | None = None
    trigger: str = "unknown"
    triggered_by: str | None = None
    ci_ref: str | None = None
    fb_version: str | None = None
    git_commit: str | None = None
    job_ids: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    partition: str | None = None
    image: str | None = None
    model: str | None = None
    service_kind: str | None = None
    service_version: str | None = None
    client_versions: dict[str, str] = field(default_factory=dict)
    service_state: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    verdict: str | None = None
    verdict_line: str | None = None
    verdicts: dict[str, Any] | None = None
    archive_url: str | None = None
    metrics: list[MetricValue] = field(default_factory=list)  # the whole run
    steps: list[StepRecord] = field(default_factory=list)
    artifacts: list[Entry] = field(default_factory=list)


_RUN_FIELDS = [f for f in RunRecord.__dataclass_fields__ if f not in ("metrics", "steps", "artifacts")]


def _metric_rows(values: Iterable[MetricValue], step_index: int | None) -> list[Metric]:
    return [Metric(step_index=step_index, name=m.name, value=m.value, unit=m.unit, direction=m.direction,
                   source=m.source) for m in values]


def record_run(url: str, record: RunRecord) -> int:
    """Insert the run, or replace the one with the same dag_id and dag_run_id; return its row id."""
    with Session(engine_for(url)) as session, session.begin():
        old = session.scalar(select(Run).where(Run.dag_id == record.dag_id, Run.dag_run_id == record.dag_run_id))
        if old is not None:
            session.delete(old)
            session.flush()
        run = Run(**{f: getattr(record, f) for f in _RUN_FIELDS})
        run.metrics = _metric_rows(record.metrics, None)
        for s in record.steps:
            run.steps.append(Step(index=s.index, label=s.label, mode=s.mode, streams=s.streams, rate=s.rate,
                                  valid=s.valid, params=s.params))
            run.metrics += _metric_rows(s.metrics, s.index)
        run.artifacts = [Artifact(name=e.name, kind=e.kind, size=e.size, sha256=e.sha256) for e in record.artifacts]
        session.add(run)
        session.flush()
        return run.id


def annotate(url: str, recipe: str, author: str, reason: str, dag_run_id: str | None = None,
             at: datetime | None = None) -> int:
    """An accepted change from `dag_run_id` (or from `at`, or from now) on: the baseline resets there."""
    if not reason.strip():
        raise FactorybenchError("an accepted change needs a reason")
    with Session(engine_for(url)) as session, session.begin():
        if dag_run_id is not None:
            run = session.scalar(select(Run).where(Run.recipe == recipe, Run.dag_run_id == dag_run_id))
            if run is None:
                raise FactorybenchError(f"recipe {recipe!r} has no run {dag_run_id!r}")
            at = run.started_at or run.finished_at
        now = datetime.now(timezone.utc)
        note = Annotation(recipe=recipe, dag_run_id=dag_run_id, at=at or now, author=author, reason=reason,
                          created_at=now)
        session.add(note)
        session.flush()
        return note.id


@dataclass(frozen=True)
class HistoryRow:
    """One line of an imported history file."""

    recipe: str
    time: datetime
    metric: str
    value: float
    unit: str = ""
    direction: str = "none"


def import_history(url: str, rows: list[HistoryRow], source: str) -> int:
    """Rows grouped by (recipe, time) become imported runs; importing the same file again replaces them."""
    runs: dict[tuple[str, datetime], list[HistoryRow]] = {}
    for row in rows:
        runs.setdefault((row.recipe, row.time), []).append(row)
    with Session(engine_for(url)) as session, session.begin():
        for (recipe, time), group in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            dag_run_id = f"import__{time.isoformat()}"
            old = session.scalar(select(Run).where(Run.dag_id == f"import:{recipe}", Run.dag_run_id == dag_run_id))
            if old is not None:
                session.delete(old)
                session.flush()
            run = Run(recipe=recipe, recipe_hash="imported", workload_hash=None, dag_id=f"import:{recipe}", dag_run_id=dag_run_id,
                      trigger="import", triggered_by=source, cluster="imported", transport="none",
                      job_ids=[], nodes=[], client_versions={}, started_at=time, finished_at=time,
                      status="success", message=f"imported from {source}")
            run.metrics = _metric_rows(
                [value_of(r.metric, r.value, unit=r.unit, direction=r.direction) for r in group], None)
            # An imported unit or direction wins over the catalog's: it is what the user measured.
            for m, r in zip(run.metrics, group):
                m.unit = r.unit or m.unit
                m.direction = r.direction if r.direction != "none" else m.direction
            session.add(run)
    return len(runs)
