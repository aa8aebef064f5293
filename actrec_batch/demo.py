"""`make demo`: render a small labelled synthetic night, run the real nightly DAG over it through
Airflow on the embedded defaults, and print what happened.

1. synth: labelled footage for one date, plus a deliberately truncated copy of one video so that
   quarantine shows;
2. Airflow: a metadata DB under ``.actrec/airflow`` (SQLite, migrated once) and the
   ``actrec_inference`` pool;
3. ``actrec_nightly`` for that date through a local Airflow (scheduler, DAG processor, API server;
   :mod:`actrec_batch.demo_airflow`), as a backfill of that date: every task in order (discover,
   validate manifest, infer on a local Ray, validate events, publish, cost, quality), with a line
   per task. The run keeps its true start and end and each task its log, which `make airflow`
   shows;
4. a summary read back from the warehouse and the store: videos, events per label, quarantined
   files with reasons, cost, and where the Parquet, the warehouse, the reports and the UI are.

``--without-airflow`` runs the same stages through ``actrec run`` instead (no Airflow DB).
The demo prints only what it measured.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.demo_airflow import airflow_env, prepare_airflow, run_backfill, run_url
from actrec_batch.storage import open_store
from actrec_batch.synth.params import DEMO_FOOTAGE, SynthParams

__all__ = ["airflow_env", "run_demo"]

DEMO_SEED = DEMO_FOOTAGE.seed
DEMO_AIRFLOW_HOME = Path(".actrec/airflow")


def _inject_truncated_copy(store, date: dt.date, video_key: str) -> str:
    """Write a deliberately truncated copy of one video, so the demo shows quarantine at work."""
    data = store.get_bytes(video_key)
    camera = layout.camera_of(video_key, date)
    key = f"{layout.camera_prefix(date, camera)}zz_demo_truncated_copy.mp4"
    store.put_bytes(key, data[: len(data) // 2])
    return key


def run_demo(
    settings: Settings,
    *,
    date: dt.date,
    footage: SynthParams = DEMO_FOOTAGE,
    airflow: bool = True,
    airflow_home: Path = DEMO_AIRFLOW_HOME,
) -> int:
    from actrec_batch.synth import synth_footage

    t0 = time.perf_counter()
    store = open_store(settings.store)
    steps = 4 if airflow else 3
    print(f"actrec demo: store {store.root_uri}, footage date {date}")
    print(
        f"[1/{steps}] synth: rendering {footage.cameras} camera(s) x {footage.minutes:g} min of labelled "
        f"footage (seed {footage.seed})"
    )
    report = synth_footage(store, date=date, params=footage, progress=True)
    synth = report.to_json()
    bad_key = _inject_truncated_copy(store, date, synth["videos"][0])
    print(
        f"      {len(synth['videos'])} videos, {synth['footage_s']:.0f} s of footage, {synth['events']} labelled "
        f"events; added a deliberately truncated copy: {bad_key}"
    )
    if airflow:
        home = airflow_home.resolve()
        env = airflow_env(settings, home)
        print(f"[2/{steps}] Airflow: metadata DB and the actrec_inference pool in {home}")
        print(f"      ready in {prepare_airflow(env):.1f} s")
        print(
            f"[3/{steps}] run the actrec_nightly DAG for {date} through Airflow: a local scheduler, DAG "
            "processor and API server run it as a backfill of that date, every task in order"
        )
        run = run_backfill(env, date)
        start, end = (dt.datetime.fromisoformat(run[k]) for k in ("start_date", "end_date"))
        print(
            f"      DAG run {run['dag_run_id']}: {run['state']} in {(end - start).total_seconds():.0f} s "
            f"({start:%H:%M:%S} to {end:%H:%M:%S} UTC); task logs in {home / 'logs'}"
        )
        run_id = _latest_run_id(settings, date)
    else:
        from actrec_batch.pipeline.nightly import run_nightly
        from actrec_batch.pipeline.spec import RunSpec

        print(
            f"[2/{steps}] actrec run: discover, validate, infer on a local Ray, validate, publish, cost, quality"
        )
        run_id = run_nightly(settings, RunSpec(date), progress=True)["run_id"]
    print(f"[{steps}/{steps}] summary")
    _print_summary(settings, store, date, run_id)
    print(f"done in {time.perf_counter() - t0:.1f} s.")
    if airflow:
        print(
            f"See the run and its task logs in the Airflow UI: `make airflow` (login admin / admin), then "
            f"{run_url(run['dag_run_id'])}"
        )
    return 0


def _latest_run_id(settings: Settings, date: dt.date) -> str:
    import sqlalchemy as sa

    from actrec_batch.warehouse import open_warehouse

    warehouse = open_warehouse(settings.warehouse_url)
    with warehouse.connect() as conn:
        run_id = conn.execute(
            sa.text("SELECT run_id FROM runs WHERE logical_date = :d ORDER BY finished_at DESC LIMIT 1"),
            {"d": date},
        ).scalar_one()
    warehouse.dispose()
    return run_id


def _print_summary(settings: Settings, store, date: dt.date, run_id: str) -> None:
    from actrec_batch.runs import RunFolder
    from actrec_batch.warehouse import open_warehouse
    from actrec_batch.warehouse.core import redacted
    from actrec_batch.warehouse.queries import run_report

    summary = RunFolder(store, date, run_id).summary()
    print(
        f"      run {run_id}: {summary['videos_discovered']} videos discovered = {summary['videos_processed']} "
        f"processed + {summary['videos_quarantined']} quarantined; {summary['units_total']} units; "
        f"{summary['events']} events"
    )
    for q in summary["quarantine"]:
        print(f"      quarantined [{q['reason']}] {q['uri']} ({q['stage']})")
    warehouse = open_warehouse(settings.warehouse_url)
    day = date.isoformat()
    columns, rows = run_report(warehouse, "daily_counts_by_label_camera", {"from_date": day, "to_date": day})
    counts: dict[str, int] = {}
    for row in rows:
        r = dict(zip(columns, row, strict=True))
        counts[r["label"]] = counts.get(r["label"], 0) + r["events"]
    warehouse.dispose()
    print(
        f"      events per label (warehouse, current model version): {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}"
    )
    print(
        f"      cost: ${summary['cost_usd']:.6f} (`actrec cost --date {date}`; across runs `actrec report cost_per_job`)"
    )
    quality = summary.get("f1")
    if quality is not None:
        print(
            f"      quality: event F1@0.5 {quality:.3f} against the ground truth ({summary.get('quality_uri')})"
        )
    print(f"      Parquet:    {summary['events_uri']}")
    print(
        f"      warehouse:  {redacted(settings.warehouse_url)}  (tables runs, videos, quarantine, action_events, job_costs)"
    )
    print(f"      Data Docs:  {summary['docs_uri']}")
    print(
        f"      try: actrec search --label fall --from {date}   |   actrec report   |   actrec eval --date {date}"
    )
