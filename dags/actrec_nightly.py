"""
### actrec_nightly: action recognition over one day of archived footage

**Schedule.** Daily at 02:00 UTC by default (`ACTREC_NIGHTLY_CRON`, a cron expression read when
the DAG is parsed). Catchup is off; use a backfill (UI: *Trigger* > *Backfill*, or
`airflow backfill create`) for past days.

**Logical date -> footage.** A run covers the data interval `[D 02:00, D+1 02:00)` UTC and
processes `footage/date=D/`, D being the interval's start date. The scheduled run for D starts at
D+1 02:00, two hours after the day's last footage could have landed. A backfill from 2026-11-01 to
2026-11-03 processes the footage of those three dates. Airflow names a run after its interval's
end, so the run `backfill__2026-11-02T02:00:00+00:00` is the one for footage 2026-11-01: go by
the run's *logical date* (its interval start), which the UI shows beside the name.

**Tasks.** discover -> validate_manifest -> infer -> validate_events -> publish -> cost, quality.
Each task calls one function of `actrec_batch.orchestration.tasks`; XCom carries ids, counts and
URIs only. Every task is idempotent for its date: a retry, a cleared task or a backfill replaces
the date's partition and rows, never appends.

**infer** runs on a local Ray in the worker, or, when `ACTREC_RAY_ADDRESS` is a Ray Jobs API
address (`http://head:8265`), as a Ray job on that cluster: the task waits for it, streams its
log, and stops the job when the task is killed or cleared. It takes a slot of the Airflow pool
`actrec_inference` (create it with `airflow pools set actrec_inference 1 "actrec inference"`),
which caps how many dates infer at once.

**Params.** `cameras` (only these camera ids; empty = all), `model` (`NAME@VERSION` or a bundle
URI), `force` (forget checkpoints and recompute every unit).

**Settings** come from the workers' environment, as for the `actrec` command: `ACTREC_STORE`,
`ACTREC_WAREHOUSE_URL`, `ACTREC_RAY_ADDRESS`, and the other `ACTREC_*` variables (README,
Configuration).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task

from actrec_batch.orchestration.ray_operator import RayInferOperator

DEFAULT_ARGS = {
    "owner": "actrec",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}

with DAG(
    dag_id="actrec_nightly",
    description="Nightly action recognition over one day of footage",
    schedule=CronDataIntervalTimetable(os.environ.get("ACTREC_NIGHTLY_CRON", "0 2 * * *"), timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=int(os.environ.get("ACTREC_NIGHTLY_MAX_ACTIVE_RUNS", "2")),
    default_args=DEFAULT_ARGS,
    tags=["actrec", "nightly"],
    params={
        "cameras": Param([], type="array", description="only these camera ids; empty: all"),
        "model": Param("reference@3", type="string", description="NAME@VERSION or a bundle URI"),
        "force": Param(False, type="boolean", description="recompute every unit (ignore checkpoints)"),
    },
    doc_md=__doc__,
) as dag:

    @task
    def plan(data_interval_start=None, dag_run=None) -> dict:
        """The footage date and the run id every later task uses."""
        from actrec_batch.orchestration.tasks import footage_date, pipeline_run_id

        date = footage_date(data_interval_start)
        return {"date": date, "run_id": pipeline_run_id(dag_run.dag_id, dag_run.run_id, date)}

    @task
    def discover(run: dict) -> dict:
        from actrec_batch.orchestration.tasks import discover

        return discover(run["date"], run["run_id"])

    @task
    def validate_manifest(run: dict, found: dict) -> dict:
        from actrec_batch.orchestration.tasks import validate_manifest

        return validate_manifest(run["date"], run["run_id"])

    @task
    def validate_events(run: dict, inferred: dict) -> dict:
        from actrec_batch.orchestration.tasks import validate_events

        return validate_events(run["date"], run["run_id"])

    @task
    def publish(run: dict, validated: dict, params=None, dag_run=None) -> dict:
        from actrec_batch.orchestration.tasks import publish

        started = dag_run.start_date.isoformat() if dag_run.start_date else None
        return publish(run["date"], run["run_id"], list(params["cameras"]), started)

    @task
    def cost(run: dict, published: dict) -> dict:
        from actrec_batch.orchestration.tasks import cost

        return cost(run["date"], run["run_id"])

    @task
    def quality(run: dict, published: dict) -> dict:
        from actrec_batch.orchestration.tasks import quality

        return quality(run["date"], run["run_id"])

    run = plan()
    manifest = validate_manifest(run, discover(run))
    inferred = RayInferOperator(
        task_id="infer",
        date="{{ ti.xcom_pull(task_ids='plan')['date'] }}",
        run_id="{{ ti.xcom_pull(task_ids='plan')['run_id'] }}",
        model="{{ params.model }}",
        cameras="{{ params.cameras | join(',') }}",
        force="{{ params.force }}",
        pool="actrec_inference",
        execution_timeout=timedelta(hours=12),
    )
    manifest >> inferred
    published = publish(run, validate_events(run, inferred.output))
    cost(run, published)
    quality(run, published)
