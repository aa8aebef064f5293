"""The warehouse tables (CONTRACTS.md, "Warehouse"), as SQLAlchemy Core metadata.

This module and the Alembic migrations beside it are the only DDL in the project. The tables
are the same on DuckDB and PostgreSQL; a migration that changes one changes this file too, and
``tests/test_warehouse.py`` checks that a migrated database matches this metadata.

- ``runs``: one row per pipeline run (a history: a rerun adds its own row, keyed by ``run_id``).
- ``videos``: the processed videos of each date (replaced per date on every publish).
- ``quarantine``: what could not be processed, with a reason code (replaced per date).
- ``action_events``: events per (date, model name, model version), with lineage on every row.
  Loading a model version replaces that version's rows for the date and keeps other versions'.
  An event that spans a camera's consecutive files records both ends (migration 0002).
- ``active_models``: which model version ``current_action_events`` shows for each date.
- ``job_costs``: the cost ledger of each run (filled by the cost stage).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_ts = sa.DateTime(timezone=True)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("logical_date", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", _ts),
    sa.Column("finished_at", _ts),
    sa.Column("model_name", sa.String(128)),
    sa.Column("model_version", sa.String(64)),
    sa.Column("model_sha256", sa.String(64)),
    sa.Column("extractor_id", sa.String(128)),
    sa.Column("code_version", sa.String(64)),
    sa.Column("cameras", sa.String(1024)),  # comma-separated when the run was limited to some cameras
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

videos = sa.Table(
    "videos",
    metadata,
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
    sa.Column("recorded_at", _ts),  # the container's creation time, when it has one
    sa.Column("run_id", sa.String(64)),
    sa.Index("ix_videos_date_camera", "logical_date", "camera_id"),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
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

action_events = sa.Table(
    "action_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("video_id", sa.String(64), nullable=False),
    sa.Column("camera_id", sa.String(256), nullable=False),
    sa.Column("logical_date", sa.Date, nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("start_s", sa.Double, nullable=False),
    sa.Column("end_s", sa.Double, nullable=False),
    sa.Column("start_ts", _ts),
    sa.Column("end_ts", _ts),
    sa.Column("confidence", sa.Double, nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("extractor_id", sa.String(128), nullable=False),
    sa.Column("content_id", sa.String(64), nullable=False),
    sa.Column("code_version", sa.String(64), nullable=False),
    sa.Column("uri", sa.String(2048), nullable=False),
    # Migration 0002: where the event ends. An event that spans files of a camera's chain starts in
    # video_id at start_s and ends in end_video_id at end_offset_s (seconds from that video's start);
    # its end_s is still measured from video_id's start. Otherwise end_video_id = video_id and
    # end_offset_s = end_s. Never null (see the migration for why the columns are nullable).
    sa.Column("end_video_id", sa.String(64)),
    sa.Column("end_offset_s", sa.Double),
    sa.Index("ix_action_events_label_ts", "label", "start_ts"),
    sa.Index("ix_action_events_camera_ts", "camera_id", "start_ts"),
    sa.Index("ix_action_events_date_model", "logical_date", "model_name", "model_version"),
)

active_models = sa.Table(
    "active_models",
    metadata,
    sa.Column("logical_date", sa.Date, primary_key=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("activated_at", _ts, nullable=False),
)

job_costs = sa.Table(
    "job_costs",
    metadata,
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

# The view, for SELECTs only: migration 0001 creates it (action_events joined to active_models);
# metadata.create_all never sees it.
_view_metadata = sa.MetaData()
current_action_events = sa.Table(
    "current_action_events",
    _view_metadata,
    *(sa.Column(c.name, c.type) for c in action_events.columns),
)

# Columns of the published events Parquet that land in action_events, in table order.
EVENT_COLUMNS = tuple(c.name for c in action_events.columns)
