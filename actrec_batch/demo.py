"""`make demo`: render a small labelled synthetic night, run the real nightly DAG over it through
Airflow on the embedded defaults, and print what happened.

1. synth: labelled footage for one date, plus a deliberately truncated copy of one video so that
   quarantine shows;
2. Airflow: a metadata DB under ``.actrec/airflow`` (SQLite, migrated once) and the
   ``actrec_inference`` pool;
3. ``dag.test()`` of ``actrec_nightly`` for that date (every task in order: discover, validate
   manifest, infer on a local Ray, validate events, publish, cost, quality), with a line per task;
4. a summary read back from the warehouse and the store: videos, events per label, quarantined
   files with reasons, cost, and where the Parquet, the warehouse, the reports and the UI are.

``--without-airflow`` runs the same stages through ``actrec run`` instead (no Airflow DB).
The demo prints only what it measured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.errors import ActrecError
from actrec_batch.storage import open_store
from actrec_batch.synth.params import DEMO_FOOTAGE, SynthParams

DEMO_SEED = DEMO_FOOTAGE.seed
REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
_TASK_LINE = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\w+)")
_UNITS_LINE = re.compile(r"infer \d{4}-\d\d-\d\d: \d+/\d+ units[^\[]*")


def _inject_truncated_copy(store, date: dt.date, video_key: str) -> str:
    """Write a deliberately truncated copy of one video, so the demo shows quarantine at work."""
    data = store.get_bytes(video_key)
    camera = layout.camera_of(video_key, date)
    key = f"{layout.camera_prefix(date, camera)}zz_demo_truncated_copy.mp4"
    store.put_bytes(key, data[: len(data) // 2])
    return key


def airflow_env(settings: Settings, home: Path) -> dict[str, str]:
    """The environment of an Airflow on the embedded defaults: SQLite metadata DB under ``home``,
    this repo's ``dags/``, and the actrec settings passed through as ``ACTREC_*``."""
    store = settings.store if "://" in settings.store else str(Path(settings.store).resolve())
    warehouse = settings.warehouse_url
    if warehouse.startswith("duckdb:///") and not warehouse.startswith("duckdb:////"):
        warehouse = "duckdb:///" + str(Path(warehouse[len("duckdb:///") :]).resolve())
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "ACTREC_STORE": store,
        "ACTREC_WAREHOUSE_URL": warehouse,
        "ACTREC_SEGMENT_S": str(settings.segment_s),
    }


def prepare_airflow(env: dict[str, str]) -> float:
    """Migrate the metadata DB and create the inference pool (both idempotent); return seconds."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    t0 = time.perf_counter()
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    for cmd in (["db", "migrate"], ["pools", "set", "actrec_inference", "1", "actrec inference capacity"]):
        proc = subprocess.run([airflow, *cmd], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.split()[-40:])
            raise ActrecError(
                f"airflow {' '.join(cmd)} failed in {env['AIRFLOW_HOME']}: {tail}", reason="airflow_error"
            )
    return time.perf_counter() - t0


_DAG_TEST = """
import datetime as dt, json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.get_dag("actrec_nightly")
run = dag.test(logical_date=dt.datetime.fromisoformat(sys.argv[2]))
print("ACTREC_DAG_RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id}))
"""


def run_dag_test(env: dict[str, str], date: dt.date, log_path: Path) -> dict:
    """``dag.test()`` of ``actrec_nightly`` for footage ``date`` in a subprocess; its full log goes to
    ``log_path`` and a line per task state change to stdout."""
    logical = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(2, 0), dt.UTC)
    result = None
    started: dict[str, float] = {}
    with (
        open(log_path, "w") as log,
        subprocess.Popen(
            [sys.executable, "-c", _DAG_TEST, str(DAGS), logical.isoformat()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        for line in proc.stdout:
            log.write(line)
            if line.startswith("ACTREC_DAG_RESULT "):
                result = json.loads(line.split(" ", 1)[1])
            elif m := _TASK_LINE.search(line):
                what, task = m.groups()
                if what == "starting":
                    started[task] = time.perf_counter()
                    print(f"      task {task:<18} running", flush=True)
                else:
                    print(
                        f"      task {task:<18} done in {time.perf_counter() - started.get(task, 0):.1f} s",
                        flush=True,
                    )
            elif m := _UNITS_LINE.search(line):
                print(f"        {m.group(0).strip()}", flush=True)
    if proc.returncode != 0 or result is None or not result["state"].endswith("success"):
        raise ActrecError(f"the nightly DAG run for {date} failed; its log: {log_path}", reason="dag_failed")
    return result


def run_demo(
    settings: Settings, *, date: dt.date, footage: SynthParams = DEMO_FOOTAGE, airflow: bool = True
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
        home = Path(".actrec/airflow").resolve()
        env = airflow_env(settings, home)
        print(f"[2/{steps}] Airflow: metadata DB and the actrec_inference pool in {home}")
        print(f"      ready in {prepare_airflow(env):.1f} s")
        print(
            f"[3/{steps}] run the actrec_nightly DAG for {date} through Airflow (dag.test: every task, in order)"
        )
        result = run_dag_test(env, date, home / "demo-dag-test.log")
        print(f"      DAG run {result['run_id']}: {result['state']}")
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
            "Open the Airflow UI on this run: `make airflow` (prints the URL and login), then DAG actrec_nightly."
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
