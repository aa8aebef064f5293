"""The rescore DAG through the Ray Jobs API (issue [8/11], Deliver 4): with
``ACTREC_RAY_ADDRESS=http://head:8265`` each date's inference is a Ray job on a real Ray head with
token authentication, submitted by the nightly DAG's operator, and the run ends published in the
warehouse. Runs the real ``actrec_rescore`` DAG through ``dag.test()``, as test_dags runs the
nightly DAG."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from ray.job_submission import JobSubmissionClient
from test_dags import _DAG_TEST, DAGS, _airflow_env, _python, airflow_home  # noqa: F401 - fixture
from test_ray_jobs_api import DATE, client_token_auth, night, ray_head  # noqa: F401 - fixtures

from actrec_batch.model import DEFAULT_MODEL
from actrec_batch.warehouse import open_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_rescore_dag_submits_each_date_as_a_ray_job(airflow_home, ray_head, night, tmp_path):  # noqa: F811
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    env = _airflow_env(
        airflow_home,
        ACTREC_STORE=str(night),
        ACTREC_WAREHOUSE_URL=url,
        ACTREC_RAY_ADDRESS=ray_head,
        RAY_AUTH_MODE="token",  # the worker is a token-authenticated Jobs API client
    )
    conf = {"from_date": str(DATE), "to_date": str(DATE), "model": DEFAULT_MODEL}
    out = _python(_DAG_TEST.format(dags=str(DAGS), dag_id="actrec_rescore", conf=conf), env, timeout=800)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["state"].endswith("success"), out.stderr[-4000:]

    jobs = [
        j
        for j in JobSubmissionClient(ray_head).list_jobs()
        if (j.metadata or {}).get("actrec_date") == str(DATE)
    ]
    rescore_jobs = [j for j in jobs if j.submission_id.startswith(f"actrec-{DATE}-af-")]
    assert len(rescore_jobs) == 1, [(j.submission_id, j.status) for j in jobs]
    [job] = rescore_jobs
    assert job.status == "SUCCEEDED" and job.submission_id.endswith("-try1")
    assert job.metadata["actrec_model"] == DEFAULT_MODEL
    run_id = job.metadata["actrec_run_id"]
    assert f"submitting ray job {job.submission_id} to {ray_head}" in out.stdout + out.stderr

    wh = open_warehouse(url)
    with wh.connect() as conn:
        row = conn.execute(
            sa.text("SELECT status, model_version, events, videos_processed FROM runs WHERE run_id = :r"),
            {"r": run_id},
        ).one()
        current = conn.execute(
            sa.text("SELECT COUNT(*) FROM current_action_events WHERE logical_date = :d"), {"d": DATE}
        ).scalar_one()
    wh.dispose()
    assert row.status == "success" and row.model_version == DEFAULT_MODEL.split("@")[1]
    assert row.videos_processed == 1 and row.events == current > 0
