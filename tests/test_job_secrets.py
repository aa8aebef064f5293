"""No secret goes into the Ray job (issue [8/11], Deliver 2).

The Airflow side runs with recognisable fake secrets (an AWS secret key and session token, a
warehouse URL with a password); the nightly inference job is submitted to a real Ray head (token
authentication, dashboard on 127.0.0.1) whose own environment holds the node's S3 credentials.
Then the job is read back through Ray's job info API (``get_job_info``, ``list_jobs``) and the
dashboard's HTTP job endpoints (``/api/jobs/`` and ``/api/jobs/<id>``): no secret value appears
anywhere (runtime_env, metadata, entrypoint, log). The job still succeeds against S3, with the
node's credentials, and without the warehouse: the head's warehouse URL points nowhere.

Checked: with the allow-list replaced by the old forwarding of every ``ACTREC_*``/``AWS_*``
variable, ``test_the_submitted_job_shows_no_secret`` fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import requests
from footage import discovered_night
from ray.job_submission import JobSubmissionClient
from ray_head import dashboard_head_args, free_port, own_ray_head, wait_for_dashboard
from test_ray_jobs_api import client_token_auth  # noqa: F401 - fixture

from actrec_batch.pipeline.job_env import JOB_ENV, job_env

DATE = dt.date(2026, 11, 23)
BIN = Path(sys.executable).parent
WAREHOUSE_PASSWORD = "wh-pass-7d4e2f19"
AIRFLOW_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAAIRFLOWSIDE7Q2X",
    "AWS_SECRET_ACCESS_KEY": "airflow-secret-key-9f3c1e7d",
    "AWS_SESSION_TOKEN": "airflow-session-token-5b2a8c04",
    "ACTREC_WAREHOUSE_URL": f"postgresql+psycopg://actrec:{WAREHOUSE_PASSWORD}@127.0.0.1:5432/actrec",
}
SECRET_VALUES = (*(v for k, v in AIRFLOW_SECRETS.items() if k != "ACTREC_WAREHOUSE_URL"), WAREHOUSE_PASSWORD)


def test_the_allow_list_passes_settings_and_never_secrets():
    env = {**AIRFLOW_SECRETS, "ACTREC_STORE": "s3://b/p", "AWS_ENDPOINT_URL": "http://s3:9000"}
    env |= {"ACTREC_RAY_ADDRESS": "http://h:8265", "ACTREC_CONFIG": "/etc/actrec.yaml", "AWS_PROFILE": "x"}
    assert job_env(env) == {"ACTREC_STORE": "s3://b/p", "AWS_ENDPOINT_URL": "http://s3:9000"}
    from actrec_batch.config.settings import SETTINGS

    secret_envs = {s.env for s in SETTINGS if s.secret}
    assert secret_envs and not secret_envs & set(JOB_ENV)
    assert not {n for n in JOB_ENV if any(w in n for w in ("KEY", "TOKEN", "SECRET", "PASSWORD", "URL"))} - {
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    }


@pytest.fixture(scope="module")
def node_head(client_token_auth):  # noqa: F811 - the fixture imported above
    """A Ray head whose processes hold the node's own credentials (as an instance profile or the
    node's environment would give them) and a warehouse URL that points nowhere."""
    temp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ACTREC_"))}
    env |= {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "AWS_ACCESS_KEY_ID": "node-key-id",
        "AWS_SECRET_ACCESS_KEY": "node-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ACTREC_WAREHOUSE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/nowhere",
    }
    address = f"http://127.0.0.1:{port}"
    log = Path(temp) / "ray-start.log"
    with own_ray_head(dashboard_head_args(port, temp), env=env, log=log) as head:
        wait_for_dashboard(head, address, log)
        yield address
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def s3_night(s3_client, s3_env) -> str:
    """One tiny camera-night on the moto S3 server, discovered; its store URI."""
    bucket = f"actrec-secrets-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    uri = f"s3://{bucket}/store"
    discovered_night(uri, DATE, cameras=1, minutes=0.3, seed=2323)
    return uri


def _dump(obj) -> str:
    data = obj.model_dump() if hasattr(obj, "model_dump") else obj.dict()
    return json.dumps(data, default=str)


def test_the_submitted_job_shows_no_secret(node_head, s3_night, monkeypatch):
    from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled

    from actrec_batch.orchestration.ray_operator import RayInferOperator

    for name, value in {**AIRFLOW_SECRETS, "ACTREC_STORE": s3_night, "ACTREC_RAY_ADDRESS": node_head}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ACTREC_FAULT_SLOW", raising=False)
    lines: list[str] = []
    op = RayInferOperator(task_id="infer", date=DATE.isoformat(), run_id="secrets-1", poll_s=1.0)
    monkeypatch.setattr(type(op), "log", property(lambda self: _Lines(lines)), raising=False)
    out = op.execute(context={})
    sid = "actrec-secrets-1-try1"
    assert out["ray_job_id"] == sid and out["units_total"] > 0 and out["videos_processed"] == 1

    client = JobSubmissionClient(node_head)
    info = client.get_job_info(sid)
    assert info.status == "SUCCEEDED"
    sent = info.runtime_env["env_vars"]
    assert sent["ACTREC_STORE"] == s3_night and sent["AWS_ENDPOINT_URL"] == os.environ["AWS_ENDPOINT_URL"]
    assert not set(AIRFLOW_SECRETS) & set(sent), sorted(sent)
    http = requests.Session()
    http.trust_env = False
    http.headers.update(get_auth_headers_if_auth_enabled({}))
    answers = {"get_job_info": _dump(info), "list_jobs": json.dumps([_dump(j) for j in client.list_jobs()])}
    for path in ("/api/jobs/", f"/api/jobs/{sid}"):
        resp = http.get(node_head + path, timeout=30)
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:500])
        assert sid in resp.text
        answers[path] = resp.text
    answers["job log"] = client.get_job_logs(sid)
    answers["task log"] = "\n".join(lines)
    for where, text in answers.items():
        for value in SECRET_VALUES:
            assert value not in text, f"{value!r} shows in {where}"
    assert "AWS_SECRET_ACCESS_KEY" in answers["task log"]  # named among what stays behind, never shown


class _Lines:
    """A stand-in for the operator's logger that keeps the formatted lines."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def _add(self, msg, *args, **_):
        self.lines.append(str(msg) % args if args else str(msg))

    info = warning = error = debug = exception = _add
