"""The warehouse the Alembic migrations build agrees with the metadata derived from
``actrec_batch.tables``, column by column, on both real engines (DuckDB, PostgreSQL); and the
Arrow schemas and search columns derive from the same declarations."""

from __future__ import annotations

import copy
import re

import pyarrow as pa
import sqlalchemy as sa

from actrec_batch import tables
from actrec_batch.warehouse import open_warehouse, schema

# information_schema.columns.data_type on DuckDB and PostgreSQL -> one family per SQLAlchemy type.
_FAMILIES = {
    "varchar": "string",
    "character varying": "string",
    "double": "float",
    "double precision": "float",
    "integer": "int",
    "bigint": "bigint",
    "date": "date",
    "timestamp with time zone": "timestamptz",
    "boolean": "bool",
}
_SA_FAMILIES = {
    sa.String: "string",
    sa.Double: "float",
    sa.BigInteger: "bigint",
    sa.Integer: "int",
    sa.Date: "date",
    sa.DateTime: "timestamptz",
    sa.Boolean: "bool",
}


def _family(column: sa.Column) -> str:
    for cls, family in _SA_FAMILIES.items():  # BigInteger before Integer: it is a subclass
        if isinstance(column.type, cls):
            if cls is sa.DateTime and not column.type.timezone:
                return "timestamp"
            return family
    raise AssertionError(f"no type family for {column.table.name}.{column.name}: {column.type!r}")


def _database_tables(conn: sa.Connection, dialect: str) -> dict[str, dict]:
    """Per table of the current schema: columns (name, family, nullable) in order, PK columns,
    and indexes (name -> columns)."""
    out: dict[str, dict] = {}
    rows = conn.execute(
        sa.text(
            "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = c.table_schema "
            "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
            "ORDER BY c.table_name, c.ordinal_position"
        )
    ).all()
    for table, column, data_type, nullable in rows:
        entry = out.setdefault(table, {"columns": [], "pk": set(), "indexes": {}})
        family = _FAMILIES.get(data_type.lower(), data_type.lower())
        entry["columns"].append((column, family, nullable == "YES"))
    for table, column in conn.execute(
        sa.text(
            "SELECT k.table_name, k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
            "AND k.table_name = c.table_name AND k.table_schema = c.table_schema "
            "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema()"
        )
    ):
        out[table]["pk"].add(column)
    index_sql = (
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        if dialect == "postgresql"
        else "SELECT table_name, index_name, sql FROM duckdb_indexes() WHERE schema_name = current_schema()"
    )
    for table, name, ddl in conn.execute(sa.text(index_sql)):
        if table in out and ddl and not name.startswith(("pk_", f"{table}_pkey")):
            cols = re.search(r"\(([^()]*)\)\s*;?\s*$", ddl).group(1)
            out[table]["indexes"][name] = tuple(c.strip().strip('"') for c in cols.split(","))
    return out


def differences(conn: sa.Connection, dialect: str, metadata: sa.MetaData) -> list[str]:
    """What differs between the database behind ``conn`` and ``metadata``, one line per mismatch."""
    db = _database_tables(conn, dialect)
    problems = [
        f"table {name} is in the database, not the metadata"
        for name in sorted(set(db) - set(metadata.tables) - {"alembic_version"})
    ]
    for table in metadata.sorted_tables:
        got = db.get(table.name)
        if got is None:
            problems.append(f"table {table.name} is missing from the database")
            continue
        want = [(c.name, _family(c), bool(c.nullable)) for c in table.columns]
        if [c[0] for c in got["columns"]] != [c[0] for c in want]:
            problems.append(
                f"{table.name}: columns {[c[0] for c in got['columns']]} != {[c[0] for c in want]}"
            )
        for (name, family, nullable), (_, db_family, db_nullable) in zip(want, got["columns"], strict=False):
            if family != db_family:
                problems.append(
                    f"{table.name}.{name}: type {db_family} in the database, {family} in the metadata"
                )
            if nullable != db_nullable:
                problems.append(
                    f"{table.name}.{name}: nullable {db_nullable} in the database, {nullable} in the metadata"
                )
        keyed = schema.keyed_on(table, dialect)
        pk = {c.name for c in table.primary_key.columns} if keyed else set()
        if got["pk"] != pk:
            problems.append(f"{table.name}: primary key {sorted(got['pk'])} != {sorted(pk)}")
        indexes = {i.name: tuple(c.name for c in i.columns) for i in table.indexes} if keyed else {}
        if got["indexes"] != indexes:
            problems.append(f"{table.name}: indexes {got['indexes']} != {indexes}")
    return problems


def test_a_migrated_empty_warehouse_matches_the_metadata(warehouse_url):
    wh = open_warehouse(warehouse_url, upgrade=True)  # the `actrec warehouse upgrade` path: Alembic
    try:
        with wh.connect() as conn:
            assert differences(conn, wh.dialect, schema.metadata) == []
            # The comparison can fail: a metadata copy with one column's nullability, one type and
            # one index changed, and a table dropped, differs in exactly those places.
            altered = copy.deepcopy(schema.metadata)
            altered.tables["videos"].c.fps.nullable = False
            altered.tables["job_costs"].c.quantity.type = sa.Integer()
            index = next(i for i in altered.tables["videos"].indexes if i.name == "ix_videos_date_camera")
            altered.tables["videos"].indexes.discard(index)
            altered.remove(altered.tables["active_models"])
            found = differences(conn, wh.dialect, altered)
    finally:
        wh.dispose()
    assert len(found) == 4, found
    assert "videos.fps: nullable True in the database, False in the metadata" in found
    assert "job_costs.quantity: type float in the database, int in the metadata" in found
    assert any(p.startswith("videos: indexes") and "ix_videos_date_camera" in p for p in found)
    assert "table active_models is in the database, not the metadata" in found


def test_the_arrow_schemas_and_search_columns_derive_from_the_declarations():
    from actrec_batch.manifest import MANIFEST_SCHEMA, QUARANTINE_SCHEMA
    from actrec_batch.pipeline.outputs import STAGED_EVENTS_SCHEMA
    from actrec_batch.warehouse.queries import SEARCH_COLUMNS

    assert MANIFEST_SCHEMA.names[:4] == ["video_id", "uri", "key", "camera_id"]
    assert MANIFEST_SCHEMA.field("width").type == pa.int32()
    assert MANIFEST_SCHEMA.field("creation_time").type == pa.timestamp("us", tz="UTC")
    assert QUARANTINE_SCHEMA.names == [
        "uri",
        "key",
        "logical_date",
        "stage",
        "reason",
        "detail",
        "size_bytes",
    ]
    assert STAGED_EVENTS_SCHEMA.names[-3:] == ["end_video_id", "end_offset_s", "run_id"]
    assert STAGED_EVENTS_SCHEMA.field("logical_date").type == pa.string()
    assert set(STAGED_EVENTS_SCHEMA.names) | {"video_duration_s", "end_video_duration_s"} == set(
        tables.EVENTS_VALIDATED.columns
    )
    assert set(schema.EVENT_COLUMNS) <= set(STAGED_EVENTS_SCHEMA.names)
    assert set(SEARCH_COLUMNS) <= set(schema.current_action_events.c.keys())


def test_the_columns_reference_lists_every_table_and_column():
    text = tables.columns_reference_markdown()
    for table in (*tables.WAREHOUSE_TABLES, tables.MANIFEST, tables.QUARANTINE_FILE, tables.EVENTS_FILE):
        heading = f"#### `{table.name}`" + ("" if table.sql else " Parquet")
        section = text.split(heading + "\n", 1)[1].split("\n#### ", 1)[0]
        rows = [line.split(" | ")[0].strip("| `") for line in section.splitlines() if line.startswith("| `")]
        assert rows == list(table.columns), table.name
    assert "| `reason` | `VARCHAR(64)` | no | a [quarantine reason code](#quarantine-reasons) |" in text
    assert "| `end_offset_s` | `DOUBLE` | yes (never null) |" in text
    assert "| `start_ts` | `timestamp[us, tz=UTC]` | yes |" in text
    assert "| `status` | `VARCHAR(16)` | no | the run's outcome: `success` or `failed` |" in text
    assert (
        "| `confidence` | `double` | no | mean smoothed score over the event (checked: 0.0 <= x <= 1.0) |"
        in text
    )
    assert "| `width` | `int32` | no | coded width in pixels (checked: 16 <= x <= 16384) |" in text
