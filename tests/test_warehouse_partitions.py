"""The per-date replace of ``action_events`` (PostgreSQL: a rebuilt partition swapped in; DuckDB:
delete, insert, key check) neither loses nor duplicates rows, and migration 0005 moves a populated
warehouse over and back row for row, on both real engines."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic import command
from test_warehouse import DATE, T0, events_table, load

from actrec_batch.warehouse import WarehouseError, open_warehouse
from actrec_batch.warehouse.partitions import partition_name

OTHER = DATE + dt.timedelta(days=1)


def snapshot(wh) -> list[tuple]:
    """Every action_events row, sorted, as plain tuples."""
    with wh.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM action_events ORDER BY logical_date, event_id")).all()
    return [tuple(r) for r in rows]


def versions(wh, date: dt.date) -> dict[str, int]:
    with wh.connect() as conn:
        return dict(
            conn.execute(
                sa.text(
                    "SELECT model_version, COUNT(*) FROM action_events WHERE logical_date = :d GROUP BY 1"
                ),
                {"d": date},
            ).all()
        )


def partitions(wh) -> list[str]:
    """PostgreSQL: the tables attached to action_events; and no load table left behind."""
    with wh.connect() as conn:
        attached = conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass('action_events') ORDER BY 1"
            )
        ).scalars()
        stray = conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name LIKE '%\\_load'"
            )
        ).scalars()
        return [*attached, *(f"stray {t}" for t in stray)]


def test_a_rerun_replaces_only_its_date_and_version(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url, upgrade=True)
    load(wh, events_table("2", date=OTHER), "2", tmp_path, date=OTHER)
    load(wh, events_table("2", n=5), "2", tmp_path)
    load(wh, events_table("3", n=4), "3", tmp_path)  # a rescore: version 3 beside version 2
    other_before = [r for r in snapshot(wh) if r[4] == OTHER]
    v3_before = [r for r in snapshot(wh) if r[4] == DATE and r[12] == "3"]
    for n in (7, 7, 2):  # reruns of version 2, the last one smaller
        load(wh, events_table("2", n=n), "2", tmp_path)
        assert versions(wh, DATE) == {"2": n, "3": 4}
    after = snapshot(wh)
    assert [r for r in after if r[4] == OTHER] == other_before  # another date: untouched
    assert [r for r in after if r[4] == DATE and r[12] == "3"] == v3_before  # another version too
    assert [r[0] for r in after if r[4] == DATE and r[12] == "2"] == [f"2-{DATE}-{i}" for i in range(2)]
    assert len({(r[0], r[4]) for r in after}) == len(after) == 6 + 4 + 2
    if wh.dialect == "postgresql":
        assert partitions(wh) == sorted([partition_name(DATE), partition_name(OTHER)])
    # An empty rerun removes the version's rows and keeps the rest.
    with wh.date_load(DATE) as dl:
        assert dl.replace_events("reference", "2", events_table("2", n=0)) == 0
    assert versions(wh, DATE) == {"3": 4}
    assert versions(wh, OTHER) == {"2": 6}
    wh.dispose()


def test_a_duplicate_key_fails_the_load_and_keeps_the_live_rows(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url, upgrade=True)
    load(wh, events_table("2"), "2", tmp_path)
    load(wh, events_table("3", n=2), "3", tmp_path)
    before = snapshot(wh)
    # Version 4's rows reuse version 3's event ids: (event_id, logical_date) twice in the date.
    clash = events_table("3", n=2).to_pylist()
    for row in clash:
        row["model_version"] = "4"
    table = pa.Table.from_pylist(clash, schema=events_table("4", n=2).schema)
    with pytest.raises(WarehouseError, match=r"reference@4 for 2026-11-03 .*nothing was changed") as exc:
        load(wh, table, "4", tmp_path)
    assert exc.value.reason == "load_failed"
    assert snapshot(wh) == before
    if wh.dialect == "postgresql":
        assert partitions(wh) == [partition_name(DATE)]
    wh.dispose()


def test_0005_moves_a_populated_warehouse_over_and_back_row_for_row(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url)
    with wh.begin() as conn:
        command.upgrade(wh._alembic_config(conn), "0004")
    # Rows as 0004's code loaded them (today's loader writes partitions): plain INSERTs.
    rows = [
        {**row, "logical_date": date}
        for version, date, n in (("2", DATE, 6), ("3", DATE, 4), ("2", OTHER, 5))
        for row in events_table(version, n=n, date=date).to_pylist()
    ]
    with wh.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO action_events ({', '.join(rows[0])}) VALUES ({', '.join(':' + c for c in rows[0])})"
            ),
            rows,
        )
        for date in (DATE, OTHER):
            conn.execute(
                sa.text("INSERT INTO active_models VALUES (:d, 'reference', '2', 'run-2', :t)"),
                {"d": date, "t": T0},
            )
    before = snapshot(wh)
    assert len(before) == 15
    assert wh.upgrade() == "0005"
    assert snapshot(wh) == before
    if wh.dialect == "postgresql":
        assert partitions(wh) == sorted([partition_name(DATE), partition_name(OTHER)])
    # The migrated table takes a rerun like a new one (PostgreSQL: the migration's partition is swapped).
    load(wh, events_table("2", n=6), "2", tmp_path)
    assert snapshot(wh) == before
    with wh.connect() as conn:
        current = conn.execute(sa.text("SELECT COUNT(*) FROM current_action_events")).scalar_one()
    assert current == 6 + 5  # version 2 is active on both dates
    with wh.begin() as conn:
        command.downgrade(wh._alembic_config(conn), "0004")
    assert wh.revision() == "0004"
    assert snapshot(wh) == before
    assert wh.upgrade() == "0005"
    assert snapshot(wh) == before
    wh.dispose()


def test_loading_another_version_leaves_the_current_one_showing(warehouse_url, tmp_path):
    """A swap replaces action_events' partition only: active_models and the view still show the
    active version after another version of the date is loaded."""
    wh = open_warehouse(warehouse_url, upgrade=True)
    load(wh, events_table("2"), "2", tmp_path)
    with wh.date_load(DATE) as dl:
        dl.replace_events("reference", "3", events_table("3", n=4))
    with wh.connect() as conn:
        shown = (
            conn.execute(sa.text("SELECT DISTINCT model_version FROM current_action_events")).scalars().all()
        )
        at = conn.execute(sa.text("SELECT activated_at FROM active_models")).scalar_one()
    assert shown == ["2"] and at == T0
    wh.dispose()


def test_postgres_copy_keeps_instants_in_any_session_zone_across_chunks(pg_url, tmp_path, monkeypatch):
    """The COPY sends timestamps as naive UTC text with the transaction's TimeZone set to UTC for
    it alone: in a session whose zone is not UTC, every instant lands as loaded (rows spread over
    several CSV chunks), and the session's zone is back for what the transaction does after."""
    from actrec_batch.warehouse import core

    monkeypatch.setattr(core, "COPY_BATCH_ROWS", 3)  # 7 rows: three chunks
    engine = sa.create_engine(pg_url)
    schema = f"test_{__import__('uuid').uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}%20-cTimeZone%3DAmerica/New_York"
    try:
        wh = open_warehouse(url, upgrade=True)
        table = events_table("2", n=7, camera_ts=False)
        with wh.date_load(DATE) as dl:
            assert dl.replace_events("reference", "2", table) == 7
            assert dl.conn.execute(sa.text("SHOW TimeZone")).scalar_one() == "America/New_York"
        with wh.connect() as conn:
            got = conn.execute(
                sa.text("SELECT event_id, start_ts, end_ts FROM action_events ORDER BY start_s")
            ).all()
        want = [(r["event_id"], r["start_ts"], r["end_ts"]) for r in table.to_pylist()]
        assert [(e, s, t) for e, s, t in got] == want  # aware datetimes compare as instants
        assert got[1][1] is None  # cam-b's rows without wall-clock time stay null
        wh.dispose()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
