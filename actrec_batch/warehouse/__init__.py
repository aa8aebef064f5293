"""The results warehouse: the only package that imports SQLAlchemy and Alembic.

- :mod:`~actrec_batch.warehouse.schema`: the tables (the DDL lives there and in ``migrations/``);
- :mod:`~actrec_batch.warehouse.core`: :class:`Warehouse` over DuckDB or PostgreSQL, migrations,
  locked per-date loads;
- :mod:`~actrec_batch.warehouse.queries`: search over ``current_action_events`` and the report
  queries in ``actrec_batch/sql/``.
"""

from actrec_batch.warehouse.core import DateLoad, Warehouse, WarehouseError, open_warehouse

__all__ = ["DateLoad", "Warehouse", "WarehouseError", "open_warehouse"]
