"""Airflow Connections for the DAGs' tasks (actrec_batch/orchestration/connections.py).

- For each kind (AWS for the store, Postgres for the warehouse, Ray for the address), in URI and
  JSON form: ``AIRFLOW_CONN_*`` variables read through ``airflow.sdk.Connection.get``, the
  precedence (an explicit ``ACTREC_*`` value > the connection > the default), the one-line error for a
  conn id that is set but not defined, and no secret in the environment, a log line or a ``repr``.
  Airflow reads its configuration when it is first imported, so these run in one subprocess.
- On the real scheduler: the nightly DAG with the store's credentials and endpoint (moto S3) and the
  PostgreSQL warehouse coming only from ``AIRFLOW_CONN_*`` variables; the rows land there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[1]
AWS_SECRET = "conn-only-secret/key+123"
PG_PASSWORD = "p@ss/w0rd:x"
RAY_TOKEN = "ray-token-0123456789"

AWS_JSON = json.dumps(
    {
        "conn_type": "aws",
        "login": "AKIACONNONLY",
        "password": AWS_SECRET,
        "extra": {"region_name": "eu-west-3", "endpoint_url": "http://127.0.0.1:9"},
    }
)
PG_URI = f"postgres://actrec:{quote(PG_PASSWORD, safe='')}@db.example:5433/wh?sslmode=require&options=-csearch_path%3Ds1"
S3 = {"ACTREC_STORE": "s3://bucket/prefix"}

# case -> the environment of one resolution (on top of a bare one: no AWS_*, no ACTREC_*)
CASES: dict[str, dict[str, str]] = {
    "aws_json": {**S3, "AIRFLOW_CONN_AWS_DEFAULT": AWS_JSON},
    "aws_uri": {
        **S3,
        "ACTREC_AWS_CONN_ID": "my_aws",
        "AIRFLOW_CONN_MY_AWS": f"aws://AKIAURI:{quote(AWS_SECRET, safe='')}@/?region_name=us-west-2"
        "&endpoint_url=http%3A%2F%2F127.0.0.1%3A8",
    },
    "aws_default_missing": {**S3},
    "aws_explicit_missing": {**S3, "ACTREC_AWS_CONN_ID": "no_such_aws"},
    "aws_none": {**S3, "ACTREC_AWS_CONN_ID": "none", "AIRFLOW_CONN_AWS_DEFAULT": AWS_JSON},
    "aws_local_store": {"ACTREC_STORE": "/tmp/x", "AIRFLOW_CONN_AWS_DEFAULT": AWS_JSON},
    "aws_role_arn": {
        **S3,
        "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws", "extra": {"role_arn": "arn:x"}}',
    },
    "aws_half": {**S3, "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws", "login": "AKIAHALF"}'},
    "pg_uri": {"ACTREC_WAREHOUSE_CONN_ID": "wh", "AIRFLOW_CONN_WH": PG_URI},
    "pg_json": {
        "ACTREC_WAREHOUSE_CONN_ID": "wh",
        "AIRFLOW_CONN_WH": json.dumps(
            {"conn_type": "postgres", "host": "db", "login": "u", "password": PG_PASSWORD, "schema": "wh"}
        ),
    },
    "pg_url_wins": {
        "ACTREC_WAREHOUSE_URL": "duckdb:///tmp/wins.duckdb",
        "ACTREC_WAREHOUSE_CONN_ID": "wh",
        "AIRFLOW_CONN_WH": PG_URI,
    },
    "pg_missing": {"ACTREC_WAREHOUSE_CONN_ID": "no_such_wh"},
    "pg_wrong_type": {"ACTREC_WAREHOUSE_CONN_ID": "wh", "AIRFLOW_CONN_WH": "mysql://u:p@db/x"},
    "ray_uri": {"ACTREC_RAY_CONN_ID": "ray", "AIRFLOW_CONN_RAY": f"http://:{RAY_TOKEN}@ray-head:8265"},
    "ray_json": {"ACTREC_RAY_CONN_ID": "ray", "AIRFLOW_CONN_RAY": '{"conn_type": "ray", "host": "head"}'},
    "ray_schema": {
        "ACTREC_RAY_CONN_ID": "ray",
        "AIRFLOW_CONN_RAY": '{"conn_type": "generic", "host": "head", "schema": "https", "port": 443}',
    },
    "ray_address_wins": {
        "ACTREC_RAY_ADDRESS": "auto",
        "ACTREC_RAY_CONN_ID": "ray",
        "AIRFLOW_CONN_RAY": "http://ray-head:8265",
    },
    "ray_missing": {"ACTREC_RAY_CONN_ID": "no_such_ray"},
    "ray_bad_host": {"ACTREC_RAY_CONN_ID": "ray", "AIRFLOW_CONN_RAY": '{"conn_type": "http", "host": "a b"}'},
    "defaults": {},
}

_RESOLVE = """
import io, json, logging, os, sys
import airflow.sdk  # Airflow sets up its logging on import: the handler below goes on top
from actrec_batch.errors import ConfigError
from actrec_batch.orchestration import connections
from actrec_batch.storage import s3

logs = io.StringIO()
handler = logging.StreamHandler(logs)
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.DEBUG)
base = dict(os.environ)
out = {}
for name, env in json.loads(sys.argv[1]).items():
    os.environ.clear()
    os.environ.update(base, **env)
    s3.configure_clients()
    before = dict(os.environ)
    try:
        settings = connections.task_settings()
    except ConfigError as exc:
        out[name] = {"error": str(exc)}
        continue
    assert dict(os.environ) == before, f"{name}: the environment changed"
    target = connections.ray_target(settings)
    creds = connections.store_credentials(settings)
    client = s3.make_s3_client() if settings.store.startswith("s3://") else None
    out[name] = {
        "warehouse_url": settings.warehouse_url,
        "ray_address": settings.ray_address,
        "sources": {k: settings.sources.get(k) for k in ("warehouse_url", "ray_address")},
        "s3_kwargs": dict(s3._CLIENT_KWARGS),
        "client": client and {
            "access_key": getattr(client._request_signer._credentials, "access_key", None),
            "endpoint": client.meta.endpoint_url,
            "region": client.meta.region_name,
        },
        "ray_token": target and target.token,
        "ray_headers": target.headers() if target else None,
        "reprs": repr(settings) + repr(target) + repr(creds),
    }
out["logs"] = logs.getvalue()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    """Every case of CASES resolved by ``task_settings()`` in one subprocess that imports Airflow."""
    home = tmp_path_factory.mktemp("airflow-conn")
    env = {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_RESOLVE), json.dumps(CASES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_store_takes_keys_region_and_endpoint_from_an_aws_connection(resolved):
    json_form, uri_form = resolved["aws_json"], resolved["aws_uri"]
    assert json_form["client"] == {
        "access_key": "AKIACONNONLY",
        "endpoint": "http://127.0.0.1:9",
        "region": "eu-west-3",
    }
    assert json_form["s3_kwargs"]["aws_secret_access_key"] == AWS_SECRET
    assert uri_form["client"] == {
        "access_key": "AKIAURI",
        "endpoint": "http://127.0.0.1:8",
        "region": "us-west-2",
    }
    assert uri_form["s3_kwargs"]["aws_secret_access_key"] == AWS_SECRET


def test_aws_connection_precedence_and_errors(resolved):
    # no connection: the standard chain (nothing configured); aws_default may be missing
    for case in ("aws_default_missing", "aws_none", "aws_local_store", "defaults"):
        assert resolved[case]["s3_kwargs"] == {}, case
    assert resolved["aws_none"]["client"]["access_key"] != "AKIACONNONLY"
    error = resolved["aws_explicit_missing"]["error"]
    assert "\n" not in error
    assert "ACTREC_AWS_CONN_ID = 'no_such_aws'" in error and "AIRFLOW_CONN_NO_SUCH_AWS" in error
    assert "role_arn is not supported" in resolved["aws_role_arn"]["error"]
    assert "an access key without a secret" in resolved["aws_half"]["error"]


def test_the_warehouse_comes_from_a_postgres_connection(resolved):
    import sqlalchemy as sa

    url = sa.make_url(resolved["pg_uri"]["warehouse_url"])
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql+psycopg",
        "actrec",
        PG_PASSWORD,
        "db.example",
        5433,
        "wh",
    )
    assert dict(url.query) == {"sslmode": "require", "options": "-csearch_path=s1"}
    assert resolved["pg_uri"]["sources"]["warehouse_url"] == "connection:wh"
    assert sa.make_url(resolved["pg_json"]["warehouse_url"]).password == PG_PASSWORD
    assert resolved["pg_json"]["warehouse_url"].startswith("postgresql+psycopg://u:")


def test_warehouse_precedence_and_errors(resolved):
    wins = resolved["pg_url_wins"]
    assert wins["warehouse_url"] == "duckdb:///tmp/wins.duckdb" and wins["sources"]["warehouse_url"] == "env"
    assert resolved["defaults"]["warehouse_url"] == "duckdb:///./.actrec/warehouse.duckdb"
    missing = resolved["pg_missing"]["error"]
    assert missing == (
        "bad setting ACTREC_WAREHOUSE_CONN_ID = 'no_such_wh': no Airflow connection 'no_such_wh' is "
        "defined. Fix: add it (UI Admin > Connections, `airflow connections add no_such_wh ...` or "
        "AIRFLOW_CONN_NO_SUCH_WH), or unset ACTREC_WAREHOUSE_CONN_ID"
    )
    assert "its type is 'mysql', not postgres" in resolved["pg_wrong_type"]["error"]


def test_the_ray_address_and_token_come_from_a_ray_connection(resolved):
    uri = resolved["ray_uri"]
    assert uri["ray_address"] == "http://ray-head:8265" and uri["sources"]["ray_address"] == "connection:ray"
    assert uri["ray_token"] == RAY_TOKEN
    assert uri["ray_headers"] == {"Authorization": f"Bearer {RAY_TOKEN}"}
    assert resolved["ray_json"]["ray_address"] == "ray://head:10001"
    assert resolved["ray_json"]["ray_token"] is None
    assert resolved["ray_schema"]["ray_address"] == "https://head:443"


def test_ray_precedence_and_errors(resolved):
    wins = resolved["ray_address_wins"]
    assert (wins["ray_address"], wins["sources"]["ray_address"], wins["ray_token"]) == ("auto", "env", None)
    assert resolved["defaults"]["ray_address"] is None and resolved["defaults"]["ray_headers"] is None
    assert "no Airflow connection 'no_such_ray'" in resolved["ray_missing"]["error"]
    bad = resolved["ray_bad_host"]["error"]
    assert (
        bad.startswith("bad Airflow connection 'ray' (ACTREC_RAY_CONN_ID): it gives ray_address")
        and "\n" not in bad
    )


def test_no_secret_in_a_log_line_or_a_repr(resolved):
    shown = resolved["logs"] + "".join(
        str(v.get("reprs", "")) + str(v.get("error", "")) for k, v in resolved.items() if k != "logs"
    )
    for secret in (
        AWS_SECRET,
        quote(AWS_SECRET, safe=""),
        PG_PASSWORD,
        quote(PG_PASSWORD, safe=""),
        RAY_TOKEN,
    ):
        assert secret not in shown, secret
    assert "S3 credentials from Airflow connection 'aws_default'" in resolved["logs"]
    assert "warehouse_url from Airflow connection 'wh': postgresql+psycopg://actrec:***@" in resolved["logs"]


# ------------------------------------------------------------------------------ the real scheduler
def _latest_monthly_interval_start(now: dt.datetime) -> dt.date:
    """Footage date of the latest complete interval of the cron ``0 2 1 * *`` at ``now`` (UTC): the
    run that unpausing the DAG creates."""
    fire = now.replace(day=1, hour=2, minute=0, second=0, microsecond=0)
    if fire > now:
        fire = (fire - dt.timedelta(days=1)).replace(day=1)
    return (fire - dt.timedelta(days=1)).replace(day=1).date()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_nightly_dag_on_a_real_scheduler_with_only_airflow_connections(
    pg_url, s3_endpoint, s3_client, monkeypatch, tmp_path
):
    import sqlalchemy as sa
    from airflow_server import AirflowServer

    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    date = _latest_monthly_interval_start(dt.datetime.now(dt.UTC))
    bucket = f"actrec-conn-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    synth_footage(
        open_store(f"s3://{bucket}/night", s3_client=s3_client),
        date=date,
        cameras=1,
        minutes=0.1,
        seed=1515,
        progress=False,
    )
    pg = sa.make_url(pg_url)
    schema = f"conn_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    warehouse_conn = (
        f"postgres://{quote(pg.username, safe='')}:{quote(pg.password or '', safe='')}@{pg.host}:{pg.port or 5432}"
        f"/{pg.database}?options=-csearch_path%3D{schema}"
    )
    aws_conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": AWS_SECRET,
        "extra": {"region_name": "us-east-1", "endpoint_url": s3_endpoint},
    }
    # Nothing but the connections may give the store's credentials and endpoint or the warehouse.
    for name in list(os.environ):
        if name.startswith(("AWS_", "ACTREC_")):
            monkeypatch.delenv(name)
    env = {
        "ACTREC_STORE": f"s3://{bucket}/night",
        "ACTREC_RUNNER": "local",  # inference in the task's process: the connection's credentials serve it
        "ACTREC_SEGMENT_S": "5",
        "ACTREC_NIGHTLY_CRON": "0 2 1 * *",  # unpausing creates one run, for the latest complete month
        "ACTREC_WAREHOUSE_CONN_ID": "actrec_warehouse",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_conn),
        "AIRFLOW_CONN_ACTREC_WAREHOUSE": warehouse_conn,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        with AirflowServer(pg_url, REPO / "dags", env=env, home=tmp_path / "airflow") as af:
            af.create_pool("actrec_inference", 1)
            af.wait_dag("actrec_nightly")
            af.unpause("actrec_nightly")
            [run] = af.wait_runs("actrec_nightly", "scheduled", 1, timeout=1200, fail_on_retry=True)
            assert run["state"] == "success", af.task_logs("actrec_nightly", run["dag_run_id"])
            assert run["data_interval_start"][:10] == date.isoformat(), run
            logs = af.task_logs("actrec_nightly", run["dag_run_id"], states=("success",))
        assert "S3 credentials from Airflow connection 'aws_default'" in logs
        # Airflow masks the connection's password wherever it appears (here "actrec" in the conn id too)
        assert "warehouse_url from Airflow connection '" in logs and ":***@127.0.0.1:" in logs
        assert AWS_SECRET not in logs and f":{pg.password}@" not in logs
        with admin.connect() as conn:
            conn.execute(sa.text(f'SET search_path TO "{schema}"'))
            counts = {
                table: conn.execute(
                    sa.text(f"SELECT COUNT(*) FROM {table} WHERE logical_date = :d"), {"d": date}
                ).scalar_one()
                for table in ("videos", "action_events", "runs")
            }
            status = conn.execute(
                sa.text("SELECT status FROM runs WHERE logical_date = :d"), {"d": date}
            ).scalar_one()
        assert all(n > 0 for n in counts.values()), counts
        assert status == "success"
        listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"night/events/date={date}/")
        assert [o["Key"] for o in listed.get("Contents", ())], "no events Parquet in the store"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
