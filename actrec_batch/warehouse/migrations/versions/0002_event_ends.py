"""Events that span a camera's consecutive files: ``action_events.end_video_id`` and
``end_offset_s`` record where an event ends (the video, and seconds from its start).

Rows loaded before this revision end in their own video: ``end_video_id = video_id`` and
``end_offset_s = end_s``. Every row has both values (the backfill below, and every load since);
the columns are nullable only because DuckDB cannot add ``NOT NULL`` to a table with indexes.
PostgreSQL expands ``SELECT e.*`` when a view is created, so the ``current_action_events`` view is
created again to show the new columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen here on purpose, as in 0001: a migration keeps meaning what it meant when it first ran.
VIEW = (
    "CREATE VIEW current_action_events AS SELECT e.* FROM action_events AS e "
    "JOIN active_models AS a ON a.logical_date = e.logical_date "
    "AND a.model_name = e.model_name AND a.model_version = e.model_version"
)


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS current_action_events")
    op.add_column("action_events", sa.Column("end_video_id", sa.String(64)))
    op.add_column("action_events", sa.Column("end_offset_s", sa.Double))
    op.execute("UPDATE action_events SET end_video_id = video_id, end_offset_s = end_s")
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS current_action_events")
    op.drop_column("action_events", "end_offset_s")
    op.drop_column("action_events", "end_video_id")
    op.execute(VIEW)
