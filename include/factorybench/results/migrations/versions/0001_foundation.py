"""The foundation's schema: a run row and its summary metrics (what create_all made before Alembic).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "fb_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("recipe", sa.String(120), index=True, nullable=False),
        sa.Column("recipe_hash", sa.String(32), index=True, nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("dag_run_id", sa.String(250), nullable=False),
        sa.Column("cluster", sa.String(120), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("job_ids", sa.JSON, nullable=False),
        sa.Column("nodes", sa.JSON, nullable=False),
        sa.Column("service_state", sa.String(32)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("archive_path", sa.Text),
        sa.UniqueConstraint("dag_id", "dag_run_id"),
    )
    op.create_table(
        "fb_run_metrics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("fb_runs.id", ondelete="CASCADE"), index=True,
                  nullable=False),
        sa.Column("name", sa.String(120), index=True, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("unit", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fb_run_metrics")
    op.drop_table("fb_runs")
