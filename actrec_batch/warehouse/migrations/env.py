"""Alembic environment: run migrations on the connection :func:`Warehouse.upgrade` hands over.

There is no alembic.ini: the project calls Alembic programmatically (``actrec warehouse
upgrade``, and ``actrec run`` before it loads anything), on DuckDB and on PostgreSQL alike.
"""

from __future__ import annotations

from alembic import context

from actrec_batch.warehouse.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
