"""The nightly drift report's figures: ``quality_metrics``, one row per (date, metric, subject),
replaced per date by the quality stage (the run that wrote them is ``run_id``).

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_metrics",
        sa.Column("logical_date", sa.Date, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("baseline", sa.Double),
        sa.Column("threshold", sa.Double),
        sa.Column("alert_status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("logical_date", "metric", "subject", name="pk_quality_metrics"),
    )


def downgrade() -> None:
    op.drop_table("quality_metrics")
