"""
### actrec_rescore: rerun a model over cached features for a range of dates

Manual only (no schedule). Trigger it with the params `from_date`, `to_date` (inclusive,
`YYYY-MM-DD`) and `model` (`NAME@VERSION` or a bundle URI). For each date it runs the nightly
pipeline without discovery: inference reads the feature cache (a model that shares the
extractor decodes nothing), then the events are validated, published as that model version
(`events/date=D/events-<name>-<version>.parquet` and `action_events`), and the date's
`current_action_events` switches to it. The old version's rows stay. Dates run as mapped task
instances, one slot of the `actrec_inference` pool each; a failed date can be retried alone.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

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
    def dates(params=None) -> list[str]:
        from actrec_batch.orchestration.tasks import rescore_dates

        return rescore_dates(params["from_date"], params["to_date"])

    @task(pool="actrec_inference", max_active_tis_per_dagrun=2)
    def rescore(date: str, params=None) -> dict:
        from actrec_batch.orchestration.tasks import rescore

        return rescore(date, params["model"])

    rescore.expand(date=dates())
