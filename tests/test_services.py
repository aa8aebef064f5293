"""The real services `make test` starts are up and reachable on 127.0.0.1."""

from __future__ import annotations

import urllib.parse


def test_postgres_is_real_and_local(pg_url):
    import sqlalchemy as sa

    assert urllib.parse.urlsplit(pg_url.replace("postgresql+psycopg", "postgresql")).hostname == "127.0.0.1"
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        echoed = conn.execute(sa.text("SELECT CAST(:v AS text)"), {"v": "'; DROP TABLE x; --"}).scalar_one()
    engine.dispose()
    assert int(version.split(".")[0]) >= 13
    assert echoed == "'; DROP TABLE x; --"


def test_s3_server_is_moto_over_http(s3_endpoint, s3_bucket, s3_client):
    assert s3_endpoint.startswith("http://127.0.0.1:")
    s3 = s3_client
    s3.put_object(Bucket=s3_bucket, Key="probe.txt", Body=b"hi")
    assert s3.get_object(Bucket=s3_bucket, Key="probe.txt")["Body"].read() == b"hi"
