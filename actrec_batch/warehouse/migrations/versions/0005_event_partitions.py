"""``action_events`` rebuilt for fast per-date replaces: on PostgreSQL partitioned by
``logical_date`` (one LIST partition per date, ``action_events_pYYYYMMDD``) with the primary key
``(event_id, logical_date)``, since a partitioned table's key must hold its partition key; on
DuckDB without key or indexes (a load checks the key; see ``warehouse/partitions.py``).

The rows move over in one ``INSERT ... SELECT`` per direction, so an upgrade or a downgrade of a
populated warehouse keeps every row; the view is created again over the new table. Downgrading
fails on an ``event_id`` held by two dates (0004's key is ``event_id`` alone).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen here on purpose, as in 0001/0002: a migration keeps meaning what it meant when it first ran.
TS = sa.DateTime(timezone=True)
COLUMNS = (
    ("event_id", sa.String(64), False),
    ("run_id", sa.String(64), False),
    ("video_id", sa.String(64), False),
    ("camera_id", sa.String(256), False),
    ("logical_date", sa.Date(), False),
    ("label", sa.String(64), False),
    ("start_s", sa.Double(), False),
    ("end_s", sa.Double(), False),
    ("start_ts", TS, True),
    ("end_ts", TS, True),
    ("confidence", sa.Double(), False),
    ("model_name", sa.String(128), False),
    ("model_version", sa.String(64), False),
    ("model_sha256", sa.String(64), False),
    ("extractor_id", sa.String(128), False),
    ("content_id", sa.String(64), False),
    ("code_version", sa.String(64), False),
    ("uri", sa.String(2048), False),
    ("end_video_id", sa.String(64), True),
    ("end_offset_s", sa.Double(), True),
)
INDEXES = (
    ("ix_action_events_label_ts", ["label", "start_ts"]),
    ("ix_action_events_camera_ts", ["camera_id", "start_ts"]),
    ("ix_action_events_date_model", ["logical_date", "model_name", "model_version"]),
)
VIEW = (
    "CREATE VIEW current_action_events AS SELECT e.* FROM action_events AS e "
    "JOIN active_models AS a ON a.logical_date = e.logical_date "
    "AND a.model_name = e.model_name AND a.model_version = e.model_version"
)


def _rebuild(*, partitioned: bool, key: tuple[str, ...] = (), pk_name: str = "") -> None:
    """Move ``action_events`` into a new table of the same columns: partitioned by date or not,
    with primary key ``key`` (``pk_name`` on PostgreSQL) and the search indexes, or neither."""
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    names = [name for name, _, _ in COLUMNS]
    op.execute("DROP VIEW IF EXISTS current_action_events")
    op.create_table(
        "action_events_next",
        *(sa.Column(name, type_, nullable=nullable) for name, type_, nullable in COLUMNS),
        **({"postgresql_partition_by": "LIST (logical_date)"} if partitioned else {}),
    )
    if partitioned:
        dates = conn.execute(sa.text("SELECT DISTINCT logical_date FROM action_events")).scalars().all()
        for date in dates:  # DDL takes no bind parameters: psycopg quotes the date and the name
            from psycopg import sql

            conn.connection.driver_connection.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF action_events_next FOR VALUES IN ({})").format(
                    sql.Identifier(f"action_events_p{date:%Y%m%d}"), sql.Literal(date)
                )
            )
    cols = ", ".join(names)
    op.execute(f"INSERT INTO action_events_next ({cols}) SELECT {cols} FROM action_events")
    op.drop_table("action_events")  # with its indexes (and, downgrading, its partitions)
    op.rename_table("action_events_next", "action_events")
    if key:
        if postgres:
            op.create_primary_key(pk_name, "action_events", list(key))
        else:  # DuckDB adds a key, but not a named constraint
            op.execute(f"ALTER TABLE action_events ADD PRIMARY KEY ({', '.join(key)})")
        for name, columns in INDEXES:
            op.create_index(name, "action_events", columns)
    op.execute(VIEW)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rebuild(partitioned=True, key=("event_id", "logical_date"), pk_name="pk_action_events")
    else:
        _rebuild(partitioned=False)


def downgrade() -> None:
    _rebuild(partitioned=False, key=("event_id",), pk_name="action_events_pkey")
