"""The rescore DAG through the Ray Jobs API (issue [8/11], Deliver 4): each date's inference is a
Ray job on a real Ray head with token authentication, submitted by the nightly DAG's operator, and
the run ends published in the warehouse. Runs the real ``actrec_rescore`` DAG through
``dag.test()``, as test_dags runs the nightly DAG.

The head's address and token come only from a Ray connection (``ACTREC_RAY_CONN_ID`` and an
``AIRFLOW_CONN_*`` variable, the token as its password): the task's environment has no
``RAY_AUTH_MODE`` or ``RAY_AUTH_TOKEN``, so without the connection's token the head would refuse it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

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
    token = os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").read_text().strip()
    head = urlsplit(ray_head)
    conn = {"conn_type": "http", "host": head.hostname, "port": head.port, "password": token}
    env = _airflow_env(
        airflow_home,
        ACTREC_STORE=str(night),
        ACTREC_WAREHOUSE_URL=url,
        ACTREC_RAY_CONN_ID="actrec_ray",
        AIRFLOW_CONN_ACTREC_RAY=json.dumps(conn),
    )
    for name in ("ACTREC_RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS"):
        env.pop(name, None)  # the connection alone names the head and carries its token
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
    assert "ray_address from Airflow connection 'actrec_ray'" in out.stdout + out.stderr
    assert token not in out.stdout + out.stderr  # the token is used, never logged

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
