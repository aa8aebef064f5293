"""
### actrec_rescore: rerun a model over cached features for a range of dates

Manual only (no schedule). Trigger it with the params `from_date`, `to_date` (inclusive,
`YYYY-MM-DD`) and `model` (`NAME@VERSION` or a bundle URI). For each date it runs the nightly
pipeline without discovery: inference reads the feature cache (a model that shares the
extractor decodes nothing), then the events are validated, published as that model version
(`events/date=D/events-<name>-<version>.parquet` and `action_events`), and the date's
`current_action_events` switches to it. The old version's rows stay.

**Tasks.** plan -> rescore -> publish. `rescore` is the nightly DAG's infer operator, mapped over
the dates: on a local Ray in the worker, or, when `ACTREC_RAY_ADDRESS` is a Ray Jobs API address
(`http://head:8265`), as a Ray job on that cluster, exactly as the nightly run does. Each date
takes one slot of the `actrec_inference` pool. `publish` (mapped too) validates, publishes and
prices each date once every date has inferred; a failed date can be retried alone.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

from actrec_batch.orchestration.ray_operator import RayInferOperator

with DAG(
    dag_id="actrec_rescore",
    description="Rescore a range of dates with another model, from the feature cache",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "actrec",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=20),
    },
    tags=["actrec", "rescore"],
    params={
        "from_date": Param("2026-11-01", type="string", format="date", description="first footage date"),
        "to_date": Param(
            "2026-11-01", type="string", format="date", description="last footage date (inclusive)"
        ),
        "model": Param("reference@3", type="string", description="NAME@VERSION or a bundle URI"),
    },
    doc_md=__doc__,
) as dag:

    @task
    def plan(params=None, dag_run=None) -> list[dict]:
        """One {date, run_id} per date: the run id every task of that date uses."""
        from actrec_batch.orchestration.tasks import pipeline_run_id, rescore_dates

        days = rescore_dates(params["from_date"], params["to_date"])
        return [{"date": d, "run_id": pipeline_run_id(dag_run.dag_id, dag_run.run_id, d)} for d in days]

    @task
    def publish(inferred: dict, dag_run=None) -> dict:
        from actrec_batch.orchestration import tasks

        date, run_id = inferred["logical_date"], inferred["run_id"]
        tasks.validate_events(date, run_id)
        started = dag_run.start_date.isoformat() if dag_run.start_date else None
        out = tasks.publish(date, run_id, [], started)
        return {**out, **tasks.cost(date, run_id), "quality": tasks.quality(date, run_id)["uri"]}

    inferred = RayInferOperator.partial(
        task_id="rescore",
        model="{{ params.model }}",
        pool="actrec_inference",
        max_active_tis_per_dagrun=2,
        execution_timeout=timedelta(hours=12),
    ).expand_kwargs(plan())
    publish.expand(inferred=inferred.output)
