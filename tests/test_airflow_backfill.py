"""Backfills through a real Airflow 3.3 (scheduler + dag-processor + api-server, LocalExecutor, the
metadata DB on the test PostgreSQL), driven by REST exactly as the UI does, then checked in a
headless Chromium. See tests/airflow_server.py for the harness."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from airflow_server import AirflowServer

from actrec_batch.model import DEFAULT_MODEL

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NIGHTLY_DAG = REPO / "dags" / "actrec_nightly.py"
FOOTAGE_DATES = (dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3))

TINY_DAG = '''
import pendulum
from airflow.sdk import dag, task


@dag(schedule="@daily", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def harness_tiny():
    @task
    def mark(ds=None):
        """Appends a line to $HARNESS_OUT/<ds>.txt: proves the env reaches tasks, and counts reruns."""
        import os
        from pathlib import Path

        with (Path(os.environ["HARNESS_OUT"]) / f"{ds}.txt").open("a") as f:
            f.write("ran\\n")

    mark()


harness_tiny()
'''


def check_runs_page(driver, base_url: str, dag_id: str, run_ids: list[str], screenshot: Path) -> None:
    """Open the DAG's runs page as a person would, wait until every run id shows, save a screenshot."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def body_text(d) -> str:
        return d.find_element(By.TAG_NAME, "body").text

    def shows_all(d) -> bool:
        # A narrow column wraps a long run id; compare without whitespace.
        text = "".join(body_text(d).split())
        return all(r in text for r in run_ids)

    driver.get(f"{base_url}/dags/{dag_id}/runs")
    try:
        # The UI renders client-side and polls the API: give a loaded 2-core machine time.
        WebDriverWait(driver, 120, poll_frequency=1).until(shows_all)
    except TimeoutException:
        driver.save_screenshot(str(screenshot))
        pytest.fail(
            f"runs page never listed {run_ids} (screenshot {screenshot}); it shows:\n{body_text(driver)}"
        )
    driver.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")


def backfill_and_wait(af: AirflowServer, dag_id: str, dates, timeout: float) -> list[dict]:
    """Unpause, backfill ``dates`` as the UI does and wait for the runs; returns them, all successful."""
    af.unpause(dag_id)
    planned = af.backfill(dag_id, dates[0], dates[-1], dry_run=True)
    assert planned["total_entries"] == len(dates), planned
    af.backfill(dag_id, dates[0], dates[-1])
    runs = af.wait_runs(dag_id, "backfill", len(dates), timeout=timeout, fail_on_retry=True)
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    assert not failed, "\n".join(af.task_logs(dag_id, run_id) for run_id in failed)
    assert len(runs) == len(dates)
    return runs


def clear_and_wait(af: AirflowServer, dag_id: str, run_id: str, timeout: float) -> dict:
    """Clear a whole run as the UI's Clear button does; wait until it has run again and succeeded."""
    queued = af.clear_run(dag_id, run_id)
    assert queued["state"] == "queued", queued
    run = af.wait_run(dag_id, run_id, timeout=timeout, fail_on_retry=True)
    assert run["state"] == "success", af.task_logs(dag_id, run_id)
    tries = {ti["task_id"]: ti["try_number"] for ti in af.task_instances(dag_id, run_id)}
    assert all(n >= 2 for n in tries.values()), f"not every task ran again after the clear: {tries}"
    return run


@pytest.mark.timeout(900)
def test_harness_backfill_of_a_tiny_dag(pg_url, chromium, tmp_path):
    started = time.monotonic()
    dags, out = tmp_path / "dags", tmp_path / "out"
    dags.mkdir()
    out.mkdir()
    (dags / "harness_tiny.py").write_text(TINY_DAG)

    with AirflowServer(pg_url, dags, env={"HARNESS_OUT": str(out)}, home=tmp_path / "airflow") as af:
        af.wait_dag("harness_tiny")
        runs = backfill_and_wait(af, "harness_tiny", FOOTAGE_DATES, timeout=600)
        run_ids = [r["dag_run_id"] for r in runs]
        assert run_ids == [f"backfill__{d.isoformat()}T00:00:00+00:00" for d in FOOTAGE_DATES]
        for d in FOOTAGE_DATES:
            assert (out / f"{d}.txt").read_text() == "ran\n"

        clear_and_wait(af, "harness_tiny", run_ids[1], timeout=600)
        assert (out / f"{FOOTAGE_DATES[1]}.txt").read_text() == "ran\nran\n"
        assert (out / f"{FOOTAGE_DATES[0]}.txt").read_text() == "ran\n"

        check_runs_page(chromium, af.base_url, "harness_tiny", run_ids, tmp_path / "harness_tiny_runs.png")
    print(f"test_harness_backfill_of_a_tiny_dag: {time.monotonic() - started:.1f} s wall")


def warehouse_counts(url: str, dates) -> dict[str, dict[str, int]]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                str(d): {
                    table: conn.execute(
                        sa.text(f"SELECT COUNT(*) FROM {table} WHERE logical_date = :d"), {"d": d}
                    ).scalar_one()
                    for table in ("videos", "action_events", "current_action_events")
                }
                for d in dates
            }
    finally:
        engine.dispose()


# PostgreSQL only: its tasks write from several worker processes at once (the scheduled run that
# unpausing creates runs beside the backfill), which a DuckDB file does not allow.
@pytest.mark.parametrize("warehouse_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(900)
def test_nightly_dag_backfill_in_a_real_scheduler(pg_url, warehouse_url, chromium, tmp_path):
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    started = time.monotonic()
    assert NIGHTLY_DAG.is_file(), f"{NIGHTLY_DAG} is missing"
    store_root = tmp_path / "store"
    for seed, d in enumerate(FOOTAGE_DATES, start=1):
        synth_footage(open_store(str(store_root)), date=d, cameras=1, minutes=0.5, seed=seed, progress=False)
    env = {
        "ACTREC_STORE": str(store_root),
        "ACTREC_WAREHOUSE_URL": warehouse_url,
        "ACTREC_SEGMENT_S": "20",
        "ACTREC_LOCAL_RAY_CPUS": "1",
    }

    with AirflowServer(pg_url, NIGHTLY_DAG.parent, env=env, home=tmp_path / "airflow") as af:
        af.create_pool("actrec_inference", 1)
        af.wait_dag("actrec_nightly")
        runs = backfill_and_wait(af, "actrec_nightly", FOOTAGE_DATES, timeout=2400)
        run_ids = [r["dag_run_id"] for r in runs]
        # The doc_md's mapping: the run of logical date D (data interval [D 02:00, D+1 02:00) UTC)
        # covers footage date D. Airflow names a run after its run_after, the interval's end (D+1).
        assert [r["logical_date"][:10] for r in runs] == [str(d) for d in FOOTAGE_DATES]
        assert [r["data_interval_start"][:10] for r in runs] == [str(d) for d in FOOTAGE_DATES]
        print(f"3 backfill runs succeeded after {time.monotonic() - started:.1f} s")

        before = warehouse_counts(warehouse_url, FOOTAGE_DATES)
        for d, counts in before.items():
            assert all(n > 0 for n in counts.values()), f"{d}: {counts}"
            assert (
                store_root / "events" / f"date={d}" / f"events-{DEFAULT_MODEL.replace('@', '-')}.parquet"
            ).is_file()

        cleared = time.monotonic()
        clear_and_wait(af, "actrec_nightly", run_ids[1], timeout=1200)
        print(f"cleared run {run_ids[1]} succeeded again after {time.monotonic() - cleared:.1f} s")
        assert warehouse_counts(warehouse_url, FOOTAGE_DATES) == before, "a cleared run duplicated rows"

        check_runs_page(
            chromium, af.base_url, "actrec_nightly", run_ids, tmp_path / "actrec_nightly_runs.png"
        )
    print(f"test_nightly_dag_backfill_in_a_real_scheduler: {time.monotonic() - started:.1f} s wall")
