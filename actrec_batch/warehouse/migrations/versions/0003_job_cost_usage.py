"""Where each run's paid compute went: the ``job_cost_usage`` table (one row per component:
discover, decode, inference, validation, publish, wasted, idle), beside ``job_costs``, whose
shape does not change (its rows now also name instance types and S3 lines).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Frozen here on purpose: a migration keeps meaning what it meant when it first ran.
    op.create_table(
        "job_cost_usage",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("busy_s", sa.Double, nullable=False),
        sa.Column("units_redone", sa.Integer),
        sa.Column("cost_usd", sa.Double, nullable=False),
        sa.Column("share", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "component", name="pk_job_cost_usage"),
    )


def downgrade() -> None:
    op.drop_table("job_cost_usage")
