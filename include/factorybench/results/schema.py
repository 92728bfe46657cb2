"""The results database's tables. Alembic migrations (results/migrations) create and evolve them.

- fb_runs: one row per benchmark run, with its full provenance, status and verdict;
- fb_steps: one per load level of a sweep or probe of a capacity search;
- fb_metrics: long form (run, step or NULL for the whole run, name, value, unit, direction, source);
- fb_artifacts: the files of the run's archive (samples, scripts, logs, report) by name;
- fb_annotations: "accepted change" marks that reset a recipe's baseline. They reference the run
  by its DAG run id, not the row id, so re-archiving a run (which replaces its rows) keeps them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "fb_runs"
    __table_args__ = (UniqueConstraint("dag_id", "dag_run_id"),
                      Index("ix_fb_runs_recipe_started", "recipe", "started_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipe: Mapped[str] = mapped_column(String(120), index=True)
    recipe_hash: Mapped[str] = mapped_column(String(32), index=True)
    workload_hash: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)  # NULL: imported
    recipe_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    dag_run_id: Mapped[str] = mapped_column(String(250))
    trigger: Mapped[str] = mapped_column(String(16), default="unknown")  # ui|schedule|rest|ci|cli|import|...
    triggered_by: Mapped[str | None] = mapped_column(String(250), nullable=True)
    ci_ref: Mapped[str | None] = mapped_column(String(250), nullable=True)
    fb_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    git_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cluster: Mapped[str] = mapped_column(String(120))
    transport: Mapped[str] = mapped_column(String(16))
    job_ids: Mapped[list] = mapped_column(JSON, default=list)
    nodes: Mapped[list] = mapped_column(JSON, default=list)
    partition: Mapped[str | None] = mapped_column(String(120), nullable=True)
    image: Mapped[str | None] = mapped_column(Text, nullable=True)
    model: Mapped[str | None] = mapped_column(String(250), nullable=True)
    service_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    service_version: Mapped[str | None] = mapped_column(String(250), nullable=True)
    client_versions: Mapped[dict] = mapped_column(JSON, default=dict)
    service_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # success | failed | invalid
    message: Mapped[str] = mapped_column(Text, default="")
    verdict: Mapped[str | None] = mapped_column(String(24), nullable=True, index=True)
    verdict_line: Mapped[str | None] = mapped_column(Text, nullable=True)
    verdicts: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    archive_url: Mapped[str | None] = mapped_column(Text, nullable=True)

    steps: Mapped[list["Step"]] = relationship(back_populates="run", cascade="all, delete-orphan", order_by="Step.index")
    metrics: Mapped[list["Metric"]] = relationship(back_populates="run", cascade="all, delete-orphan")
    artifacts: Mapped[list["Artifact"]] = relationship(back_populates="run", cascade="all, delete-orphan")


class Step(Base):
    __tablename__ = "fb_steps"
    __table_args__ = (UniqueConstraint("run_id", "index", name="uq_fb_steps_run_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("fb_runs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(120))
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)  # closed | open
    streams: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    run: Mapped[Run] = relationship(back_populates="steps")


class Metric(Base):
    __tablename__ = "fb_metrics"
    __table_args__ = (Index("ix_fb_metrics_name_run", "name", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("fb_runs.id", ondelete="CASCADE"), index=True)
    step_index: Mapped[int | None] = mapped_column(Integer, nullable=True)  # NULL: the whole run
    name: Mapped[str] = mapped_column(String(120))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(32), default="")
    direction: Mapped[str] = mapped_column(String(8), default="none")  # higher | lower | none
    source: Mapped[str] = mapped_column(String(16), default="client")  # client | server | derived
    run: Mapped[Run] = relationship(back_populates="metrics")


class Artifact(Base):
    __tablename__ = "fb_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_fb_artifacts_run_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("fb_runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(250))  # path inside the run's archive
    kind: Mapped[str] = mapped_column(String(16))  # samples | script | log | report | json | series
    size: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    run: Mapped[Run] = relationship(back_populates="artifacts")


class Annotation(Base):
    __tablename__ = "fb_annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipe: Mapped[str] = mapped_column(String(120), index=True)
    dag_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the annotated run's time
    kind: Mapped[str] = mapped_column(String(24), default="accepted_change")
    author: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
