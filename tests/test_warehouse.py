"""The warehouse on both real engines (DuckDB file, PostgreSQL from `make test`): migrations,
idempotent per-date loads, model-version supersession, search, every report in sql/, and two
processes loading the same date at once."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from handshake import run_together

from actrec_batch.errors import ConfigError
from actrec_batch.warehouse import WarehouseError, open_warehouse, schema
from actrec_batch.warehouse.queries import (
    SearchFilter,
    report_names,
    report_params,
    run_report,
    search_events,
)

REPO = Path(__file__).resolve().parents[1]
DATE = dt.date(2026, 11, 3)
T0 = dt.datetime(2026, 11, 3, 8, 0, tzinfo=dt.UTC)


def events_table(version: str, n: int = 6, *, date: dt.date = DATE, camera_ts: bool = True) -> pa.Table:
    """``n`` events alternating fall/walk over two cameras; cam-b has no wall-clock time unless
    ``camera_ts``. Event ids depend on the version, as the real ids do."""
    rows = []
    for i in range(n):
        camera = "cam-a" if i % 2 == 0 else "cam-b"
        known = camera == "cam-a" or camera_ts
        rows.append(
            {
                "event_id": f"{version}-{date}-{i}",
                "run_id": f"run-{version}",
                "video_id": f"vid-{camera}",
                "camera_id": camera,
                "logical_date": date.isoformat(),
                "label": "fall" if i % 3 == 0 else "walk",
                "start_s": 10.0 * i,
                "end_s": 10.0 * i + 4.0,
                "start_ts": T0 + dt.timedelta(seconds=10 * i) if known else None,
                "end_ts": T0 + dt.timedelta(seconds=10 * i + 4) if known else None,
                "confidence": 0.5 + i / (2 * n),
                "model_name": "reference",
                "model_version": version,
                "model_sha256": "a" * 64,
                "extractor_id": "ext@1",
                "content_id": "c" * 64,
                "code_version": "0.1.0",
                "uri": f"file:///store/footage/date={date}/camera={camera}/x.mp4",
                "end_video_id": f"vid-{camera}",
                "end_offset_s": 10.0 * i + 4.0,
            }
        )
    ts = pa.timestamp("us", tz="UTC")
    types = {
        "start_s": pa.float64(),
        "end_s": pa.float64(),
        "end_offset_s": pa.float64(),
        "confidence": pa.float64(),
        "start_ts": ts,
        "end_ts": ts,
    }
    return pa.Table.from_pylist(
        rows, schema=pa.schema([(c, types.get(c, pa.string())) for c in schema.EVENT_COLUMNS])
    )


def load(wh, table: pa.Table, version: str, tmp_path: Path, *, date: dt.date = DATE) -> None:
    path = tmp_path / f"events-{version}-{date}.parquet"
    pq.write_table(table, path)
    with wh.date_load(date) as dl:
        dl.replace_events("reference", version, table, parquet_path=path)
        dl.replace_videos(
            [
                {
                    "video_id": f"vid-{c}-{date}",
                    "uri": f"u-{c}",
                    "content_id": "c" * 64,
                    "camera_id": c,
                    "duration_s": 60.0,
                }
                for c in ("cam-a", "cam-b")
            ]
        )
        dl.replace_quarantine(
            [{"uri": "bad.mp4", "reason": "truncated", "stage": "discover", "detail": "moov"}]
        )
        dl.activate("reference", version, f"run-{version}", T0)


def count(wh, table: str, date: dt.date = DATE) -> int:
    with wh.connect() as conn:
        return conn.execute(
            sa.text(f"SELECT COUNT(*) FROM {table} WHERE logical_date = :d"), {"d": date}
        ).scalar_one()


def test_upgrade_builds_the_schema_and_is_idempotent(warehouse_url):
    wh = open_warehouse(warehouse_url, upgrade=True)
    assert wh.revision() == "0005"
    assert wh.upgrade() == "0005"  # a second upgrade is a no-op
    with wh.connect() as conn:  # information_schema: the one catalogue both engines answer alike
        kinds = dict(
            conn.execute(
                sa.text(
                    "SELECT table_name, table_type FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
            ).all()
        )
        for table in schema.metadata.sorted_tables:
            assert kinds.get(table.name) == "BASE TABLE", table.name
            columns = conn.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = :t ORDER BY ordinal_position"
                ),
                {"t": table.name},
            ).scalars()
            assert list(columns) == [c.name for c in table.columns], table.name
        assert kinds.get("current_action_events") == "VIEW"
        index_sql = (
            "SELECT indexname FROM pg_indexes WHERE tablename = 'action_events' AND schemaname = current_schema()"
            if wh.dialect == "postgresql"
            else "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'action_events'"
        )
        names = set(conn.execute(sa.text(index_sql)).scalars())
        searched = {"ix_action_events_label_ts", "ix_action_events_camera_ts", "ix_action_events_date_model"}
        # DuckDB's action_events has no ART index: they would make each replace several times slower.
        assert searched <= names if wh.dialect == "postgresql" else not names
    wh.dispose()


def test_0002_gives_events_loaded_before_it_their_own_video_as_their_end(warehouse_url, tmp_path):
    from alembic import command

    wh = open_warehouse(warehouse_url)
    with wh.begin() as conn:
        command.upgrade(wh._alembic_config(conn), "0001")
    assert wh.revision() == "0001"
    old = events_table("1", n=2).drop_columns(["end_video_id", "end_offset_s"]).to_pylist()
    with wh.begin() as conn:
        columns = ", ".join(old[0])
        conn.execute(
            sa.text(f"INSERT INTO action_events ({columns}) VALUES ({', '.join(':' + c for c in old[0])})"),
            old,
        )
        conn.execute(
            sa.text("INSERT INTO active_models VALUES (:d, 'reference', '1', 'run-1', :t)"),
            {"d": DATE, "t": T0},
        )
    assert wh.upgrade() == "0005"
    with wh.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT video_id, end_video_id, end_s, end_offset_s FROM current_action_events ORDER BY start_s"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("vid-cam-a", "vid-cam-a", 4.0, 4.0),
        ("vid-cam-b", "vid-cam-b", 14.0, 14.0),
    ]
    load(wh, events_table("1", n=2), "1", tmp_path)  # and the new columns load on the migrated schema
    assert count(wh, "current_action_events") == 2
    wh.dispose()


def test_loading_a_date_twice_replaces_it(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url, upgrade=True)
    other = dt.date(2026, 11, 4)
    load(wh, events_table("2", date=other), "2", tmp_path, date=other)
    for _ in range(2):
        load(wh, events_table("2"), "2", tmp_path)
    assert (count(wh, "action_events"), count(wh, "videos"), count(wh, "quarantine")) == (6, 2, 1)
    assert count(wh, "action_events", other) == 6  # another date is never touched
    # A smaller rerun leaves exactly its own rows.
    load(wh, events_table("2", n=3), "2", tmp_path)
    assert count(wh, "action_events") == 3
    with wh.connect() as conn:
        events = schema.action_events
        query = sa.select(events).where(events.c.logical_date == DATE).order_by(events.c.start_s)
        rows = conn.execute(query).mappings().all()
    loaded = events_table("2", n=3).to_pylist()
    # DOUBLE, not REAL: 0.5 + 1/6 and 0.5 + 2/6 come back to the last bit (a REAL keeps ~7 digits).
    assert (
        [r["confidence"] for r in rows]
        == [e["confidence"] for e in loaded]
        == [0.5 + i / 6 for i in range(3)]
    )
    # Time zone-aware timestamps, the same instants that went in.
    assert all(r["start_ts"].tzinfo is not None for r in rows)
    assert [r["start_ts"] for r in rows] == [e["start_ts"] for e in loaded]
    wh.dispose()


def test_a_new_model_version_adds_rows_and_the_view_switches(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url, upgrade=True)
    load(wh, events_table("2"), "2", tmp_path)
    load(wh, events_table("3", n=4), "3", tmp_path)
    with wh.connect() as conn:
        versions = dict(
            conn.execute(
                sa.text("SELECT model_version, COUNT(*) FROM action_events GROUP BY model_version")
            ).all()
        )
        current = (
            conn.execute(sa.text("SELECT DISTINCT model_version FROM current_action_events")).scalars().all()
        )
    assert versions == {"2": 6, "3": 4}
    assert current == ["3"]
    # Switching back is a reload of the old version: its rows are replaced, not duplicated.
    load(wh, events_table("2"), "2", tmp_path)
    assert count(wh, "action_events") == 10
    assert count(wh, "current_action_events") == 6
    wh.dispose()


def test_a_failed_load_rolls_back_and_keeps_the_old_rows(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url, upgrade=True)
    load(wh, events_table("2"), "2", tmp_path)
    bad = events_table("2")
    bad = bad.set_column(0, "event_id", pa.array(["dup"] * bad.num_rows))  # violates the primary key
    with pytest.raises(WarehouseError, match=r"reference@2 for 2026-11-03 .*nothing was changed") as exc:
        load(wh, bad, "2", tmp_path)
    assert exc.value.reason == "load_failed"
    assert count(wh, "action_events") == 6
    with wh.connect() as conn:
        ids = set(conn.execute(sa.text("SELECT event_id FROM action_events")).scalars())
    assert "dup" not in ids
    wh.dispose()


def test_search_filters_and_treats_quotes_as_data(warehouse_url, tmp_path):
    wh = open_warehouse(warehouse_url, upgrade=True)
    load(wh, events_table("2", n=12, camera_ts=False), "2", tmp_path)
    falls = search_events(wh, SearchFilter(label="fall"))
    assert [r["start_s"] for r in falls] == [0.0, 60.0, 30.0, 90.0]  # wall-clock order, unknown times last
    assert all(r["label"] == "fall" for r in falls)
    cam_a = search_events(
        wh,
        SearchFilter(camera="cam-a", start=T0 + dt.timedelta(seconds=20), end=T0 + dt.timedelta(seconds=61)),
    )
    assert [r["start_s"] for r in cam_a] == [20.0, 40.0, 60.0]
    # An event with no wall-clock time matches a range by its logical date.
    cam_b = search_events(wh, SearchFilter(camera="cam-b", start=T0, end=T0 + dt.timedelta(hours=1)))
    assert len(cam_b) == 6 and all(r["start_ts"] is None for r in cam_b)
    assert search_events(wh, SearchFilter(camera="cam-b", start=T0 + dt.timedelta(days=1))) == []
    confident = search_events(wh, SearchFilter(min_confidence=0.9))
    assert confident and all(r["confidence"] >= 0.9 for r in confident)
    assert len(search_events(wh, SearchFilter(limit=5))) == 5
    for hostile in ("fall'; DROP TABLE runs; --", "fall' OR '1'='1", 'x"; DELETE FROM action_events; --'):
        assert search_events(wh, SearchFilter(label=hostile)) == []
        assert search_events(wh, SearchFilter(camera=hostile)) == []
    assert count(wh, "action_events") == 12
    with wh.connect() as conn:
        conn.execute(sa.text("SELECT COUNT(*) FROM runs")).scalar_one()  # still there
    wh.dispose()


REPORT_PARAMS = {
    "from_date": "2026-11-01",
    "to_date": "2026-11-30",
    "label": "fall",
    "limit": "5",
    "at": "2026-11-03T08:00:30Z",
    "window_s": "15",
}


def test_sql_dir_has_the_reports_the_issue_lists():
    assert {
        "daily_counts_by_label_camera",
        "top_cameras_for_label",
        "events_around_time",
        "quarantine_summary",
        "cost_per_job",
        "cost_per_video_hour",
        "reconciliation",
    } <= set(report_names())
    for name in report_names():
        text = (REPO / "sql" / f"{name}.sql").read_text()
        body = "\n".join(x for x in text.splitlines() if not x.lstrip().startswith("--")).strip().rstrip(";")
        assert ";" not in body, f"{name}.sql must hold one statement"
        assert set(report_params(name)) <= set(REPORT_PARAMS), name


@pytest.mark.parametrize("name", report_names())
def test_every_report_runs_on_both_engines(warehouse_url, tmp_path, name):
    wh = open_warehouse(warehouse_url, upgrade=True)
    load(wh, events_table("2", n=12), "2", tmp_path)
    run = {
        "run_id": "run-2",
        "logical_date": DATE,
        "status": "success",
        "started_at": T0,
        "finished_at": T0 + dt.timedelta(minutes=5),
        "videos_discovered": 3,
        "video_seconds": 7200.0,
    }
    wh.record_run(run)
    with wh.begin() as conn:
        conn.execute(
            sa.insert(schema.job_costs),
            [
                {
                    "run_id": "run-2",
                    "component": "infer",
                    "resource": "gpu",
                    "quantity": 0.5,
                    "unit": "gpu_hour",
                    "unit_price_usd": 1.2,
                    "pricing": "spot",
                    "cost_usd": 0.6,
                },
                {
                    "run_id": "run-2",
                    "component": "decode",
                    "resource": "cpu",
                    "quantity": 2.0,
                    "unit": "cpu_hour",
                    "unit_price_usd": 0.05,
                    "pricing": "on_demand",
                    "cost_usd": 0.1,
                },
            ],
        )
    params = {k: REPORT_PARAMS[k] for k in report_params(name)}
    columns, rows = run_report(wh, name, params)
    assert columns and rows, f"{name} returned nothing on {wh.dialect}"
    result = [dict(zip(columns, r, strict=True)) for r in rows]
    if name == "daily_counts_by_label_camera":
        assert sum(r["events"] for r in result) == 12
    elif name == "top_cameras_for_label":
        assert sum(r["events"] for r in result) == 4
    elif name == "events_around_time":
        assert sorted(r["start_s"] for r in result) == [20.0, 30.0, 40.0]  # spans touching 08:00:15-08:00:45
    elif name == "quarantine_summary":
        assert result[0]["reason"] == "truncated" and result[0]["files"] == 1
    elif name == "reconciliation":
        assert result[0]["videos"] == 2 and result[0]["quarantined"] == 1 and bool(result[0]["reconciled"])
    elif name == "cost_per_job":
        assert sum(r["cost_usd"] for r in result) == pytest.approx(0.7)
    elif name == "cost_per_video_hour":
        assert result[0]["usd_per_video_hour"] == pytest.approx(0.35)
    with pytest.raises(ConfigError, match="--param"):
        if params:
            run_report(wh, name, {})
        else:
            raise ConfigError("--param")
    wh.dispose()


_CONCURRENT_LOAD = textwrap.dedent(
    """
    import sys, datetime as dt, pathlib
    sys.path.insert(0, {tests!r})
    from handshake import overlap_date_loads, ready_then_wait_for_go
    from test_warehouse import events_table, DATE
    from actrec_batch.warehouse import open_warehouse
    wh = open_warehouse({url!r}, upgrade=True)
    table = events_table("2")
    folder = pathlib.Path({tmp!r})
    path = folder / ("e-" + sys.argv[1] + ".parquet")
    import pyarrow.parquet as pq
    pq.write_table(table, path)
    ready_then_wait_for_go(folder, sys.argv[1])
    overlap_date_loads(folder, sys.argv[1])  # the first load holds the date until the other waits on it
    with wh.date_load(DATE) as dl:
        dl.replace_events("reference", "2", table, parquet_path=path)
        dl.activate("reference", "2", "run-" + sys.argv[1], dt.datetime.now(dt.UTC))
    print("loaded", sys.argv[1])
    """
)


def test_two_processes_publishing_the_same_date_leave_one_set_of_rows(warehouse_url, tmp_path):
    open_warehouse(warehouse_url, upgrade=True).dispose()
    script = _CONCURRENT_LOAD.format(tests=str(Path(__file__).parent), url=warehouse_url, tmp=str(tmp_path))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in (1, 2)
    ]
    outs = run_together(tmp_path, procs, ["1", "2"])
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert (tmp_path / "overlapped").is_file(), "the two loads never met: one was not blocked by the other"
    wh = open_warehouse(warehouse_url)
    assert count(wh, "action_events") == 6
    assert count(wh, "active_models") == 1
    wh.dispose()


def test_unreachable_warehouse_is_one_line_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"warehouse_url .*cannot connect.*Fix") as exc:
        open_warehouse("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in str(exc.value) and "\n" not in str(exc.value)
