"""The results layer: provenance and verdicts on runs; steps, long-form metrics with direction and
source, artifacts and annotations. The foundation's fb_run_metrics rows move to fb_metrics.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

# The foundation stored these summary metrics; their direction as of this revision.
_FOUNDATION = {
    "requests": "none", "errors": "lower", "request_rate": "higher", "output_tokens_per_s": "higher",
    "ttft_p50_ms": "lower", "ttft_p99_ms": "lower", "itl_p50_ms": "lower", "e2e_p50_ms": "lower",
}

_NEW_RUN_COLUMNS = [
    sa.Column("workload_hash", sa.String(32)),
    sa.Column("recipe_text", sa.Text),
    sa.Column("trigger", sa.String(16), nullable=False, server_default="unknown"),
    sa.Column("triggered_by", sa.String(250)),
    sa.Column("ci_ref", sa.String(250)),
    sa.Column("fb_version", sa.String(64)),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("partition", sa.String(120)),
    sa.Column("image", sa.Text),
    sa.Column("model", sa.String(250)),
    sa.Column("service_kind", sa.String(32)),
    sa.Column("service_version", sa.String(250)),
    sa.Column("client_versions", sa.JSON),
    sa.Column("verdict", sa.String(24)),
    sa.Column("verdict_line", sa.Text),
    sa.Column("verdicts", sa.JSON),
]


def upgrade() -> None:
    with op.batch_alter_table("fb_runs") as batch:
        for column in _NEW_RUN_COLUMNS:
            batch.add_column(column)
        batch.alter_column("archive_path", new_column_name="archive_url")
        batch.create_index("ix_fb_runs_verdict", ["verdict"])
        batch.create_index("ix_fb_runs_workload_hash", ["workload_hash"])
        batch.create_index("ix_fb_runs_recipe_started", ["recipe", "started_at"])
    op.create_table(
        "fb_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("fb_runs.id", ondelete="CASCADE"), index=True,
                  nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("label", sa.String(120), nullable=False),
        sa.Column("mode", sa.String(16)),
        sa.Column("streams", sa.Integer),
        sa.Column("rate", sa.Float),
        sa.Column("valid", sa.Boolean, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.UniqueConstraint("run_id", "index", name="uq_fb_steps_run_index"),
    )
    metrics = op.create_table(
        "fb_metrics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("fb_runs.id", ondelete="CASCADE"), index=True,
                  nullable=False),
        sa.Column("step_index", sa.Integer),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
    )
    op.create_index("ix_fb_metrics_name_run", "fb_metrics", ["name", "run_id"])
    old = sa.table("fb_run_metrics", sa.column("run_id", sa.Integer), sa.column("name", sa.String),
                   sa.column("value", sa.Float), sa.column("unit", sa.String))
    rows = op.get_bind().execute(sa.select(old.c.run_id, old.c.name, old.c.value, old.c.unit)).all()
    if rows:
        op.bulk_insert(metrics, [
            {"run_id": r.run_id, "step_index": None, "name": r.name, "value": r.value, "unit": r.unit,
             "direction": _FOUNDATION.get(r.name, "none"), "source": "client"} for r in rows])
    op.drop_table("fb_run_metrics")
    op.create_table(
        "fb_artifacts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("fb_runs.id", ondelete="CASCADE"), index=True,
                  nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.UniqueConstraint("run_id", "name", name="uq_fb_artifacts_run_name"),
    )
    op.create_table(
        "fb_annotations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("recipe", sa.String(120), index=True, nullable=False),
        sa.Column("dag_run_id", sa.String(250)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("author", sa.String(120), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the results layer does not downgrade to the foundation's schema")
