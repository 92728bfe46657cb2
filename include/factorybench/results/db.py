"""The results database: one row per run, its summary metrics in long form.

Long form (run, name, value, unit) lets later metrics (server-side, energy...) be
added without migrations, and lets the regression analysis query one metric's
history across runs. Any SQLAlchemy URL works: SQLite by default, Postgres in production.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "fb_runs"
    __table_args__ = (UniqueConstraint("dag_id", "dag_run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipe: Mapped[str] = mapped_column(String(120), index=True)
    recipe_hash: Mapped[str] = mapped_column(String(32), index=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    dag_run_id: Mapped[str] = mapped_column(String(250))
    cluster: Mapped[str] = mapped_column(String(120))
    transport: Mapped[str] = mapped_column(String(16))
    job_ids: Mapped[list] = mapped_column(JSON, default=list)
    nodes: Mapped[list] = mapped_column(JSON, default=list)
    service_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # success | failed | invalid
    message: Mapped[str] = mapped_column(Text, default="")
    archive_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[list["Metric"]] = relationship(back_populates="run", cascade="all, delete-orphan")


class Metric(Base):
    __tablename__ = "fb_run_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("fb_runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120), index=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(32), default="")
    run: Mapped[Run] = relationship(back_populates="metrics")


# The summary the foundation stores; the load engine's summary carries these names.
SUMMARY_UNITS = {
    "requests": "count", "errors": "count", "request_rate": "req/s",
    "output_tokens_per_s": "tok/s", "ttft_p50_ms": "ms", "ttft_p99_ms": "ms",
    "itl_p50_ms": "ms", "e2e_p50_ms": "ms",
}


def engine_for(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    Base.metadata.create_all(engine)
    return engine


def record_run(url: str, *, metrics: dict[str, Any], **fields: Any) -> int:
    """Insert (or replace, for a retried archive task) the run with this dag_id and dag_run_id."""
    engine = engine_for(url)
    with Session(engine) as session, session.begin():
        old = session.scalar(select(Run).where(Run.dag_id == fields["dag_id"],
                                               Run.dag_run_id == fields["dag_run_id"]))
        if old is not None:
            session.delete(old)
            session.flush()
        run = Run(**fields)
        run.metrics = [Metric(name=k, value=None if v is None else float(v), unit=SUMMARY_UNITS.get(k, ""))
                       for k, v in metrics.items() if v is None or isinstance(v, (int, float))]
        session.add(run)
        session.flush()
        run_id = run.id
    engine.dispose()
    return run_id


def recent_runs(url: str, recipe: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    engine = engine_for(url)
    with Session(engine) as session:
        q = select(Run).order_by(Run.id.desc()).limit(limit)
        if recipe:
            q = q.where(Run.recipe == recipe)
        rows = []
        for run in session.scalars(q):
            row = {c: getattr(run, c) for c in ("id", "recipe", "recipe_hash", "dag_run_id", "status",
                                                "job_ids", "nodes", "started_at", "finished_at",
                                                "message", "archive_path")}
            row.update({m.name: m.value for m in run.metrics})
            rows.append(row)
    engine.dispose()
    return rows


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
