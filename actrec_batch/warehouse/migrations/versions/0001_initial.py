"""The first warehouse schema: runs, videos, quarantine, action_events, active_models,
job_costs and the current_action_events view.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("logical_date", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("model_name", sa.String(128)),
        sa.Column("model_version", sa.String(64)),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("extractor_id", sa.String(128)),
        sa.Column("code_version", sa.String(64)),
        sa.Column("cameras", sa.String(1024)),
        sa.Column("videos_discovered", sa.Integer),
        sa.Column("videos_processed", sa.Integer),
        sa.Column("videos_quarantined", sa.Integer),
        sa.Column("events", sa.Integer),
        sa.Column("video_seconds", sa.Double),
        sa.Column("wall_s", sa.Double),
        sa.Column("cost_usd", sa.Double),
        sa.Column("events_uri", sa.String(2048)),
        sa.Column("docs_uri", sa.String(2048)),
        sa.Column("error", sa.String(2048)),
    )
    op.create_table(
        "videos",
        sa.Column("video_id", sa.String(64), primary_key=True),
        sa.Column("uri", sa.String(2048), nullable=False),
        sa.Column("content_id", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(256), nullable=False),
        sa.Column("logical_date", sa.Date, nullable=False),
        sa.Column("duration_s", sa.Double, nullable=False),
        sa.Column("fps", sa.Double),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("codec", sa.String(32)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("container", sa.String(64)),
        sa.Column("recorded_at", TS),
        sa.Column("run_id", sa.String(64)),
    )
    op.create_index("ix_videos_date_camera", "videos", ["logical_date", "camera_id"])
    op.create_table(
        "quarantine",
        sa.Column("run_id", sa.String(64)),
        sa.Column("logical_date", sa.Date, nullable=False),
        sa.Column("uri", sa.String(2048), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(2048)),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("camera_id", sa.String(256)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.PrimaryKeyConstraint("logical_date", "uri", "stage", name="pk_quarantine"),
    )
    op.create_table(
        "action_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("video_id", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(256), nullable=False),
        sa.Column("logical_date", sa.Date, nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("start_s", sa.Double, nullable=False),
        sa.Column("end_s", sa.Double, nullable=False),
        sa.Column("start_ts", TS),
        sa.Column("end_ts", TS),
        sa.Column("confidence", sa.Double, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("extractor_id", sa.String(128), nullable=False),
        sa.Column("content_id", sa.String(64), nullable=False),
        sa.Column("code_version", sa.String(64), nullable=False),
        sa.Column("uri", sa.String(2048), nullable=False),
    )
    op.create_index("ix_action_events_label_ts", "action_events", ["label", "start_ts"])
    op.create_index("ix_action_events_camera_ts", "action_events", ["camera_id", "start_ts"])
    op.create_index(
        "ix_action_events_date_model", "action_events", ["logical_date", "model_name", "model_version"]
    )
    op.create_table(
        "active_models",
        sa.Column("logical_date", sa.Date, primary_key=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("activated_at", TS, nullable=False),
    )
    op.create_table(
        "job_costs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Double, nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("unit_price_usd", sa.Double, nullable=False),
        sa.Column("pricing", sa.String(16), nullable=False),
        sa.Column("cost_usd", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "component", "resource", "pricing", name="pk_job_costs"),
    )
    # Frozen here on purpose (not imported from schema.py): a migration must keep meaning what it
    # meant when it first ran.
    op.execute(
        "CREATE VIEW current_action_events AS SELECT e.* FROM action_events AS e "
        "JOIN active_models AS a ON a.logical_date = e.logical_date "
        "AND a.model_name = e.model_name AND a.model_version = e.model_version"
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS current_action_events")
    for table in ("job_costs", "active_models", "action_events", "quarantine", "videos", "runs"):
        op.drop_table(table)
