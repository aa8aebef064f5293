"""Replacing one date's events of one model version fast, on each engine (migration 0005).

PostgreSQL partitions ``action_events`` by ``logical_date``, one LIST partition per date, named
``action_events_pYYYYMMDD``. :func:`swap_in_partition` builds a date's next partition beside the
live one and swaps it in, on the date-load's connection (inside the publish transaction):

1. ``CREATE TABLE action_events_pYYYYMMDD_load`` with the columns only: no key, no index;
2. ``COPY`` the new rows into it, then copy in the live partition's rows of the *other* model
   versions of the date (a rerun replaces one version; the others stay, as before 0005);
3. build its primary key and the search indexes, one sorted pass each: several times cheaper
   than keeping them up to date row by row during the COPY;
4. ``DETACH`` the live partition and drop it, rename the new one and its indexes to the
   partition's names, and ``ATTACH`` it: PostgreSQL adopts the indexes as partitions of the
   parent's and checks each row's date once.

A failure anywhere rolls all of it back and leaves the live partition. ``DETACH`` holds an ACCESS
EXCLUSIVE lock on ``action_events`` until commit, so searches wait for the end of a rerun's
publish (the swap and the Parquet upload after it); a first load of a date only ``ATTACH``es,
which readers never wait for. Nothing before the swap touches the parent table (the new table's
columns come from the metadata, not ``LIKE``), so two publishes of different dates queue at the
swap instead of deadlocking. DDL takes no bind parameters: the date reaches ``ATTACH`` as psycopg's
``sql.Literal`` of a ``datetime.date`` and names as ``sql.Identifier``, never as formatted text.

DuckDB has no declarative partitions, and its ART indexes are the cost of a replace (a rerun of
1M events took 22.8 s with the key and three indexes, 3.4 s without: deleting keys from an ART and
inserting them again is slow). There ``action_events`` has neither (0005): the date's rows are
deleted and the Parquet file inserted, and :func:`check_unique_events` enforces the key
``(event_id, logical_date)`` over the date's rows instead. Searches scan; DuckDB's min-max zone
maps skip the row groups of other dates, and it would not use an ART index for a label or camera
filter matching thousands of rows anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import sqlalchemy as sa

from actrec_batch.warehouse import schema

PARENT = "action_events"
# The partition's own index names: the parent's minus its "ix_action_events_" prefix.
_INDEX_SUFFIX = {ix.name: ix.name.removeprefix(f"ix_{PARENT}_") for ix in schema.action_events.indexes}
log = logging.getLogger(__name__)


def partition_name(date: dt.date) -> str:
    """``action_events_pYYYYMMDD``: the PostgreSQL partition holding ``date``'s events."""
    return f"{PARENT}_p{date:%Y%m%d}"


def swap_in_partition(
    conn: sa.Connection,
    date: dt.date,
    model_name: str,
    model_version: str,
    copy_rows: Any,
) -> dict[str, float]:
    """Make ``date``'s partition hold the rows ``copy_rows(conn, table_name)`` COPYs in plus the
    live partition's rows of other model versions than ``(model_name, model_version)`` (see the
    module doc). Returns the seconds each step took (``copy``, ``other_versions``, ``key``,
    ``indexes``, ``swap``), also logged at INFO. Raises what PostgreSQL raises (a duplicate key, a
    row of another date); the caller's transaction then rolls back and the live partition stays."""
    from psycopg import sql

    seconds: dict[str, float] = {}
    mark = time.perf_counter()

    def step(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        seconds[name] = round(now - mark, 3)
        mark = now

    live, stage = partition_name(date), f"{partition_name(date)}_load"
    table = sa.Table(
        stage,
        sa.MetaData(),
        *(sa.Column(c.name, c.type, nullable=c.nullable) for c in schema.action_events.columns),
    )
    table.create(conn)
    copy_rows(conn, stage)
    step("copy")
    exists = conn.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": live}).scalar_one()
    if exists:
        old = sa.table(live, *(sa.column(c.name) for c in schema.action_events.columns))
        conn.execute(
            sa.insert(table).from_select(
                [c.name for c in table.columns],
                sa.select(*old.c).where(
                    sa.not_(sa.and_(old.c.model_name == model_name, old.c.model_version == model_version))
                ),
            )
        )
    step("other_versions")
    pk = schema.action_events.primary_key
    key = [
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
            sql.Identifier(stage),
            sql.Identifier(f"{stage}_pkey"),
            sql.SQL(", ").join(sql.Identifier(c.name) for c in pk.columns),
        )
    ]
    indexes = [
        sql.SQL("CREATE INDEX {} ON {} ({})").format(
            sql.Identifier(f"{stage}_{_INDEX_SUFFIX[ix.name]}"),
            sql.Identifier(stage),
            sql.SQL(", ").join(sql.Identifier(c.name) for c in ix.columns),
        )
        for ix in schema.action_events.indexes
    ]
    swap = []
    if exists:
        swap += [
            sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                sql.Identifier(PARENT), sql.Identifier(live)
            ),
            sql.SQL("DROP TABLE {}").format(sql.Identifier(live)),
        ]
    swap.append(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(stage), sql.Identifier(live)))
    swap += [
        sql.SQL("ALTER INDEX {} RENAME TO {}").format(
            sql.Identifier(f"{stage}_{suffix}"), sql.Identifier(f"{live}_{suffix}")
        )
        for suffix in ("pkey", *_INDEX_SUFFIX.values())
    ]
    swap.append(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
            sql.Identifier(PARENT), sql.Identifier(live), sql.Literal(date)
        )
    )
    cursor = conn.connection.driver_connection.cursor()
    try:
        for name, statements in (("key", key), ("indexes", indexes), ("swap", swap)):
            for statement in statements:
                cursor.execute(statement)
            step(name)
    finally:
        cursor.close()
    log.info("partition %s of %s swapped in; seconds per step: %s", live, PARENT, seconds)
    return seconds


def check_unique_events(conn: sa.Connection, date: dt.date) -> str | None:
    """DuckDB's stand-in for the key ``(event_id, logical_date)``: the first ``event_id`` that
    ``date``'s rows hold twice, else None."""
    e = schema.action_events
    return conn.execute(
        sa.select(e.c.event_id)
        .where(e.c.logical_date == date)
        .group_by(e.c.event_id)
        .having(sa.func.count() > 1)
        .limit(1)
    ).scalar_one_or_none()
