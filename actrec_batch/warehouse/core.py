"""One warehouse interface over two engines: DuckDB (embedded default) and PostgreSQL (production).

:class:`Warehouse` opens the engine from the ``warehouse_url`` setting, applies the Alembic
migrations, and loads a date in one transaction through :meth:`Warehouse.date_load`:

- the date is locked first, so two publishes of the same date run one after the other and leave
  one set of rows: PostgreSQL takes a transaction-scoped advisory lock on the date; DuckDB (one
  writer process per file) takes an exclusive ``flock`` on ``<file>.lock`` around every
  connection, readers included;
- events are bulk-loaded: PostgreSQL through ``COPY ... FROM STDIN`` (CSV written by Arrow, in a thread) into a
  fresh partition of the date swapped in at the end, DuckDB through its own Parquet reader over
  the file about to be published (:mod:`~actrec_batch.warehouse.partitions`);
- everything else uses bound parameters; no value is ever formatted into SQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.ddl.impl import DefaultImpl

from actrec_batch.errors import ActrecError, ConfigError
from actrec_batch.warehouse import partitions, schema

log = logging.getLogger(__name__)

SETTING = "warehouse_url (--warehouse / ACTREC_WAREHOUSE_URL)"
LOCK_WAIT_S = 600.0
COPY_BATCH_ROWS = 50_000  # rows per CSV chunk sent while the next one is written


class DuckDBAlembicImpl(DefaultImpl):
    """Alembic has no DuckDB dialect of its own; DuckDB's DDL is PostgreSQL-like, so the default
    implementation serves (registering this class is what makes Alembic accept ``duckdb://``)."""

    __dialect__ = "duckdb"


class WarehouseError(ActrecError):
    """A warehouse failure that is not a bad setting: ``locked``, ``load_failed``."""

    reason = "warehouse_error"


def redacted(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


class Warehouse:
    """The results warehouse at ``url`` (a SQLAlchemy URL: ``duckdb:///path`` or
    ``postgresql+psycopg://user:pass@host/db``). Use :func:`open_warehouse` to get one."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = sa.engine.make_url(url)
        self.dialect = parsed.get_backend_name()
        self._lock_path: Path | None = None
        if self.dialect == "duckdb":
            database = parsed.database or ":memory:"
            if database != ":memory:":
                path = Path(database).expanduser()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_path = path.with_name(path.name + ".lock")
            # NullPool: a DuckDB file is held by one process at a time, so no idle connection may
            # keep it once its work is done.
            self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        elif self.dialect == "postgresql":
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        else:  # the settings parser admits only these two; a direct caller gets the same one line
            raise ConfigError(
                f"bad setting {SETTING} = {redacted(url)!r}: use duckdb:/// or postgresql+psycopg://"
            )

    def __repr__(self) -> str:
        return f"Warehouse({redacted(self.url)!r})"

    # ------------------------------------------------------------ connections

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self._lock_path is None:
            yield
            return
        with open(self._lock_path, "a+") as fh:
            deadline = time.monotonic() + LOCK_WAIT_S
            waited = False
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waited:
                        log.info("warehouse %s is busy in another process; waiting", self._lock_path)
                        waited = True
                    if time.monotonic() > deadline:
                        raise WarehouseError(
                            f"warehouse {redacted(self.url)} stayed locked by another process for "
                            f"{LOCK_WAIT_S:.0f} s ({self._lock_path})",
                            reason="locked",
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection for reads (and the caller's own transactions)."""
        with self._file_lock(), self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self._file_lock(), self.engine.begin() as conn:
            yield conn

    def check(self) -> None:
        """Raise ConfigError (one line, naming the setting) when the warehouse cannot be reached."""
        try:
            with self.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            first = " ".join(str(exc.orig if getattr(exc, "orig", None) else exc).split())[:300]
            raise ConfigError(
                f"bad setting {SETTING} = {redacted(self.url)!r}: cannot connect ({first}). "
                "Fix: start the database or point the setting at a reachable one"
            ) from None

    def dispose(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ migrations

    def _alembic_config(self, conn: sa.Connection):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        cfg.attributes["connection"] = conn
        return cfg

    def upgrade(self) -> str:
        """Apply every pending migration; return the revision the warehouse is at."""
        from alembic import command

        self.check()
        with self.begin() as conn:
            if self.dialect == "postgresql":  # two first runs at once must not both create the tables
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("migrations")})
            command.upgrade(self._alembic_config(conn), "head")
        return self.revision()

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # ------------------------------------------------------------ loading

    @contextlib.contextmanager
    def date_load(self, date: dt.date) -> Iterator[DateLoad]:
        """One transaction that owns ``date``: concurrent loads of the same date wait for it."""
        with self.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(date.isoformat())})
            yield DateLoad(self, conn, date)

    def record_run(self, row: Mapping[str, Any]) -> None:
        """Insert or replace the ``runs`` row of ``row['run_id']``."""
        values = _only(schema.runs, row)
        with self.begin() as conn:
            conn.execute(sa.delete(schema.runs).where(schema.runs.c.run_id == values["run_id"]))
            conn.execute(sa.insert(schema.runs), [values])

    def replace_costs(
        self,
        run_id: str,
        rows: Sequence[Mapping[str, Any]],
        cost_usd: float,
        usage: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Replace the ``job_costs`` and ``job_cost_usage`` rows of ``run_id`` and set its
        ``runs.cost_usd``, in one transaction."""
        c, u, r = schema.job_costs, schema.job_cost_usage, schema.runs
        with self.begin() as conn:
            conn.execute(sa.delete(c).where(c.c.run_id == run_id))
            conn.execute(sa.delete(u).where(u.c.run_id == run_id))
            if rows:
                conn.execute(sa.insert(c), [_only(c, row) for row in rows])
            if usage:
                conn.execute(sa.insert(u), [_only(u, row) for row in usage])
            conn.execute(sa.update(r).where(r.c.run_id == run_id).values(cost_usd=cost_usd))

    def replace_quality_metrics(self, date: dt.date, rows: Sequence[Mapping[str, Any]]) -> int:
        """Replace the ``quality_metrics`` rows of ``date`` with ``rows`` (a rerun's replace the
        last run's), in one transaction; returns how many were written."""
        q = schema.quality_metrics
        with self.begin() as conn:
            conn.execute(sa.delete(q).where(q.c.logical_date == date))
            if rows:
                conn.execute(sa.insert(q), [_only(q, {**row, "logical_date": date}) for row in rows])
        return len(rows)


class DateLoad:
    """The loads of one date inside one transaction (see :meth:`Warehouse.date_load`)."""

    def __init__(self, warehouse: Warehouse, conn: sa.Connection, date: dt.date) -> None:
        self.warehouse, self.conn, self.date = warehouse, conn, date

    def replace_events(
        self, model_name: str, model_version: str, table: Any, parquet_path: Path | None = None
    ) -> int:
        """Replace this date's events of one model version with ``table`` (a pyarrow Table with at
        least :data:`schema.EVENT_COLUMNS`); other versions' rows stay. PostgreSQL swaps in the
        date's partition, rebuilt; DuckDB deletes and inserts, reading ``parquet_path`` (the same
        rows, as a Parquet file) when given (:mod:`~actrec_batch.warehouse.partitions`). Returns
        the rows loaded; raises WarehouseError ``load_failed`` (nothing changed) on a duplicate
        ``event_id`` or any other failure of the load."""
        e = schema.action_events
        postgres = self.warehouse.dialect == "postgresql"
        if table.num_rows == 0 or not postgres:
            self.conn.execute(
                sa.delete(e).where(
                    e.c.logical_date == self.date,
                    e.c.model_name == model_name,
                    e.c.model_version == model_version,
                )
            )
        if table.num_rows == 0:
            return 0
        rows = table.select(list(schema.EVENT_COLUMNS))
        try:
            if postgres:
                partitions.swap_in_partition(
                    self.conn,
                    self.date,
                    model_name,
                    model_version,
                    lambda conn, name: _copy_into(conn, name, rows),
                )
            else:
                self._insert_events(rows, parquet_path)
        except Exception as exc:  # the driver's own errors too: COPY runs on the raw psycopg cursor
            first = " ".join(str(exc).split())[:300]
            raise WarehouseError(
                f"loading {table.num_rows} events of {model_name}@{model_version} for {self.date.isoformat()} "
                f"into {redacted(self.warehouse.url)} failed, nothing was changed: {first}",
                reason="load_failed",
            ) from exc
        return table.num_rows

    def _insert_events(self, table: Any, parquet_path: Path | None) -> None:
        """DuckDB: insert ``table`` (or the Parquet file holding it), then check the key."""
        e = schema.action_events
        if parquet_path is not None:
            casts = ", ".join(
                "CAST(logical_date AS DATE)" if c == "logical_date" else c for c in schema.EVENT_COLUMNS
            )
            self.conn.execute(
                sa.text(
                    f"INSERT INTO action_events ({', '.join(schema.EVENT_COLUMNS)}) "
                    f"SELECT {casts} FROM read_parquet(:path)"
                ),
                {"path": str(parquet_path)},
            )
        else:
            self.conn.execute(sa.insert(e), _rows(table, e))
        duplicate = partitions.check_unique_events(self.conn, self.date)
        if duplicate is not None:
            raise WarehouseError(
                f"duplicate key (event_id, logical_date) = ({duplicate}, {self.date.isoformat()}) in action_events",
                reason="load_failed",
            )

    def replace_videos(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Replace this date's ``videos`` rows (the processed videos)."""
        return self._replace(schema.videos, rows)

    def replace_quarantine(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Replace this date's ``quarantine`` rows (every stage's records)."""
        return self._replace(schema.quarantine, rows)

    def activate(self, model_name: str, model_version: str, run_id: str, at: dt.datetime) -> None:
        """Make (model_name, model_version) the version ``current_action_events`` shows for the date."""
        a = schema.active_models
        self.conn.execute(sa.delete(a).where(a.c.logical_date == self.date))
        self.conn.execute(
            sa.insert(a),
            [
                {
                    "logical_date": self.date,
                    "model_name": model_name,
                    "model_version": model_version,
                    "run_id": run_id,
                    "activated_at": at,
                }
            ],
        )

    def _replace(self, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
        self.conn.execute(sa.delete(table).where(table.c.logical_date == self.date))
        values = [_only(table, {**r, "logical_date": self.date}) for r in rows]
        if values:
            self.conn.execute(sa.insert(table), values)
        return len(values)


def open_warehouse(url: str, *, upgrade: bool = False) -> Warehouse:
    """The warehouse at ``url``, checked reachable (ConfigError naming the setting if not), and
    migrated to the latest revision when ``upgrade``."""
    wh = Warehouse(url)
    if upgrade:
        wh.upgrade()
    else:
        wh.check()
    return wh


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    digest = hashlib.sha256(f"actrec-batch:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _only(table: sa.Table, row: Mapping[str, Any]) -> dict[str, Any]:
    return {c.name: row.get(c.name) for c in table.columns}


def _rows(arrow_table: Any, table: sa.Table) -> list[dict[str, Any]]:
    rows = arrow_table.select([c.name for c in table.columns]).to_pylist()
    for r in rows:
        if isinstance(r.get("logical_date"), str):
            r["logical_date"] = dt.date.fromisoformat(r["logical_date"])
    return rows


def _copy_into(conn: sa.Connection, table_name: str, arrow_table: Any) -> None:
    """PostgreSQL ``COPY table (cols) FROM STDIN`` in the connection's transaction, fed with CSV
    that Arrow writes (nulls as empty fields, empty strings quoted).

    Two things make it fast (bench/warehouse.py, 1M events): timestamps go as naive UTC text, read
    with the transaction's ``TimeZone`` set to UTC for the COPY alone (Arrow formats a
    time-zone-aware timestamp 20x slower than a naive one: 2.4 of the 3 s the CSV took), and a
    thread writes the next batch's CSV (Arrow releases the GIL) while this one sends the last."""
    import queue
    import threading

    import pyarrow as pa
    import pyarrow.csv as pacsv

    utc = arrow_table
    for i, field in enumerate(arrow_table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            # the same instants (Arrow keeps UTC values), printed without the zone
            naive = arrow_table.column(i).cast(pa.timestamp(field.type.unit))
            utc = utc.set_column(i, pa.field(field.name, naive.type), naive)
    chunks: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in utc.to_batches(max_chunksize=COPY_BATCH_ROWS):
                if stop.is_set():
                    return
                buf = io.BytesIO()
                pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False))
                chunks.put(buf.getbuffer())
            chunks.put(None)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the consumer
            chunks.put(exc)

    cols = ", ".join(arrow_table.column_names)
    cursor = conn.connection.driver_connection.cursor()
    writer = threading.Thread(target=produce, name="actrec-copy-csv", daemon=True)
    try:
        zone = cursor.execute("SELECT current_setting('TimeZone')").fetchone()[0]
        cursor.execute("SELECT set_config('TimeZone', 'UTC', true)")
        writer.start()
        with cursor.copy(f"COPY {table_name} ({cols}) FROM STDIN (FORMAT csv)") as copy:
            while (chunk := chunks.get()) is not None:
                if isinstance(chunk, BaseException):
                    raise chunk
                copy.write(chunk)
        cursor.execute("SELECT set_config('TimeZone', %s, true)", (zone,))
    finally:
        stop.set()
        while writer.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                chunks.get(timeout=0.1)
        cursor.close()
