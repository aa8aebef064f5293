"""The warehouse tables (docs/reference.md, "Warehouse"), as SQLAlchemy Core metadata.

The columns are declared in :mod:`actrec_batch.tables`; this module only makes them SQLAlchemy
tables. The Alembic migrations beside it are the DDL's history: a migration that changes a table
changes :mod:`actrec_batch.tables` too, and ``tests/test_schema_agreement.py`` checks that a
migrated empty database matches this metadata, column by column, on DuckDB and PostgreSQL.

- ``runs``: one row per pipeline run (a history: a rerun adds its own row, keyed by ``run_id``).
- ``videos``: the processed videos of each date (replaced per date on every publish).
- ``quarantine``: what could not be processed, with a reason code (replaced per date).
- ``action_events``: events per (date, model name, model version), with lineage on every row.
  Loading a model version replaces that version's rows for the date and keeps other versions'.
  An event that spans a camera's consecutive files records both ends (migration 0002). On
  PostgreSQL it is partitioned by date, on DuckDB it has no key or index (0005; see
  :mod:`~actrec_batch.warehouse.partitions`).
- ``active_models``: which model version ``current_action_events`` shows for each date.
- ``job_costs``: the cost ledger of each run (filled by the cost stage).
- ``quality_metrics``: the drift report's figures per date (filled by the quality stage; 0004).
- ``job_cost_usage``: where each run's paid compute went, by component (migration 0003).
"""

from __future__ import annotations

import sqlalchemy as sa

from actrec_batch import tables
from actrec_batch.tables import COLUMNS, Table

_TYPES = {
    "String": lambda n: sa.String(n),
    "Date": lambda n: sa.Date(),
    "Double": lambda n: sa.Double(),
    "Integer": lambda n: sa.Integer(),
    "BigInteger": lambda n: sa.BigInteger(),
    "Boolean": lambda n: sa.Boolean(),
    "DateTime": lambda n: sa.DateTime(timezone=True),
}


def sql_type(name: str) -> sa.types.TypeEngine:
    """The SQLAlchemy type of column ``name`` (:data:`actrec_batch.tables.COLUMNS`)."""
    col = COLUMNS[name]
    return _TYPES[col.kind.sql](col.length)


def sa_table(spec: Table, metadata: sa.MetaData) -> sa.Table:
    """``spec`` as a SQLAlchemy table of ``metadata``: columns, primary key and indexes."""
    single_pk = len(spec.primary_key) == 1 and spec.pk_name is None
    items: list[sa.SchemaItem] = [
        sa.Column(
            name,
            sql_type(name),
            primary_key=single_pk and name in spec.primary_key,
            nullable=spec.nullable(name),
        )
        for name in spec.columns
    ]
    if spec.primary_key and not single_pk:
        items.append(sa.PrimaryKeyConstraint(*spec.primary_key, name=spec.pk_name))
    items += [sa.Index(name, *cols) for name, cols in spec.indexes]
    options = {"postgresql_partition_by": f"LIST ({spec.partition_key})"} if spec.partition_key else {}
    return sa.Table(spec.name, metadata, *items, **options)


def keyed_on(table: sa.Table, dialect: str) -> bool:
    """Whether ``dialect``'s warehouse holds ``table``'s primary key and indexes: always, except
    a partitioned table on DuckDB, whose ART indexes would make each replace of a date several
    times slower than the load itself (:mod:`~actrec_batch.warehouse.partitions`)."""
    return dialect != "duckdb" or not table.dialect_options["postgresql"]["partition_by"]


metadata = sa.MetaData()
runs = sa_table(tables.RUNS, metadata)
videos = sa_table(tables.VIDEOS, metadata)
quarantine = sa_table(tables.QUARANTINE, metadata)
action_events = sa_table(tables.ACTION_EVENTS, metadata)
active_models = sa_table(tables.ACTIVE_MODELS, metadata)
job_costs = sa_table(tables.JOB_COSTS, metadata)
quality_metrics = sa_table(tables.QUALITY_METRICS, metadata)
job_cost_usage = sa_table(tables.JOB_COST_USAGE, metadata)

# The view, for SELECTs only: migration 0001 creates it (action_events joined to active_models);
# metadata.create_all never sees it.
_view_metadata = sa.MetaData()
current_action_events = sa.Table(
    "current_action_events",
    _view_metadata,
    *(sa.Column(c.name, c.type) for c in action_events.columns),
)

# Columns of the published events Parquet that land in action_events, in table order.
EVENT_COLUMNS = tables.ACTION_EVENTS.columns
