"""Airflow Connections for the DAGs' tasks: the store's AWS credentials, the warehouse and the Ray address.

:func:`task_settings` is what every task reads: the ``ACTREC_*`` settings, completed from Airflow
Connections. Precedence, highest first, for each value a connection can give:

- ``warehouse_url``: ``ACTREC_WAREHOUSE_URL`` (or the YAML file) > the Postgres connection
  ``ACTREC_WAREHOUSE_CONN_ID`` > the default DuckDB file;
- ``ray_address``: ``ACTREC_RAY_ADDRESS`` (or the YAML file) > the Ray connection
  ``ACTREC_RAY_CONN_ID`` > unset (a local Ray);
- the S3 credentials, region and endpoint of an ``s3://`` store: the AWS connection
  ``ACTREC_AWS_CONN_ID`` (default ``aws_default``; ``none``: no connection) > the standard AWS chain
  (``AWS_*`` variables, shared files, the instance role), field by field, as the Amazon provider
  does. The store's URI itself is always ``ACTREC_STORE``.

A conn id that is set but not defined is a one-line :class:`ConfigError` naming it and the fix; only
the default ``aws_default`` may be missing (then the standard chain serves). A connection is read
only when its value is used.

Secrets. A connection's credentials go to boto3 in memory (:func:`~actrec_batch.storage.s3.configure_clients`)
for this process only: never into environment variables (which a Ray job could inherit), never
into a log line or a ``repr``. They serve the Airflow-side process: the tasks, and the infer task
with ``ACTREC_RUNNER=local``. Ray's workers, a local Ray's included, use their node's own credentials.

Airflow is imported only when a connection is read (``airflow.sdk.Connection.get``, which masks
the connection's password in task logs). The amazon and postgres providers are not needed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actrec_batch.config import Settings, load_settings, redact_url, replace
from actrec_batch.config.settings import SPECS
from actrec_batch.errors import ConfigError

log = logging.getLogger(__name__)

NO_CONNECTION = "none"  # ACTREC_AWS_CONN_ID=none: the standard AWS chain only
DEFAULT_AWS_CONN_ID = "aws_default"
ConnectionGetter = Callable[[str], Any]  # conn id -> an airflow.sdk Connection, or None when undefined

_POSTGRES_TYPES = ("postgres", "postgresql")
_AWS_TYPES = ("aws", "s3")
_RAY_SCHEMES = ("http", "https", "ray")
# libpq parameters a Postgres connection's extra may carry into the URL's query.
_LIBPQ_EXTRAS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "gssencmode",
    "channel_binding",
)


def airflow_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id`` (``airflow.sdk.Connection``), or None when it is not defined."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def _required(conn_id: str, env: str, get: ConnectionGetter | None) -> Any:
    conn = (get or airflow_connection)(conn_id)
    if conn is None:
        raise ConfigError(
            f"bad setting {env} = {conn_id!r}: no Airflow connection {conn_id!r} is defined. Fix: add it "
            f"(UI Admin > Connections, `airflow connections add {conn_id} ...` or "
            f"AIRFLOW_CONN_{conn_id.upper()}), or unset {env}"
        )
    return conn


def _conn_error(conn_id: str, env: str, why: str, fix: str) -> ConfigError:
    return ConfigError(f"bad Airflow connection {conn_id!r} ({env}): {why}. Fix: {fix}")


# ------------------------------------------------------------------------------- the store (AWS)
@dataclass(frozen=True)
class StoreCredentials:
    """What an AWS connection gives the store's S3 clients. The keys never show in ``repr``."""

    conn_id: str
    region_name: str | None = None
    endpoint_url: str | None = None
    profile_name: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    def client_kwargs(self) -> dict[str, str]:
        """boto3 Session arguments plus ``endpoint_url``, the empty ones left out."""
        kwargs = {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
            "region_name": self.region_name,
            "profile_name": self.profile_name,
            "endpoint_url": self.endpoint_url,
        }
        return {k: v for k, v in kwargs.items() if v}


def store_credentials(settings: Settings, *, get: ConnectionGetter | None = None) -> StoreCredentials | None:
    """The AWS connection's credentials for the store, or None: no connection is configured
    (``none``), or the default ``aws_default`` is not defined. Raises ConfigError for a set conn id
    that is not defined, or a connection that is not an AWS one."""
    conn_id, env = settings.aws_conn_id, "ACTREC_AWS_CONN_ID"
    if not conn_id or conn_id.lower() == NO_CONNECTION:
        return None
    if settings.sources.get("aws_conn_id", "default") == "default":
        conn = (get or airflow_connection)(conn_id)
        if conn is None:
            return None
    else:
        conn = _required(conn_id, env, get)
    if (conn.conn_type or "aws") not in _AWS_TYPES:
        raise _conn_error(
            conn_id, env, f"its type is {conn.conn_type!r}, not aws", "point it at an AWS connection"
        )
    extra = conn.extra_dejson or {}
    if extra.get("role_arn"):
        raise _conn_error(
            conn_id,
            env,
            "extra role_arn is not supported (actrec does not assume roles)",
            "give the role to the workers (instance profile) and drop role_arn, or put the role's keys here",
        )
    s3_config = (extra.get("service_config") or {}).get("s3") or {}
    creds = StoreCredentials(
        conn_id=conn_id,
        region_name=extra.get("region_name") or None,
        endpoint_url=s3_config.get("endpoint_url") or extra.get("endpoint_url") or None,
        profile_name=extra.get("profile_name") or None,
        access_key_id=conn.login or extra.get("aws_access_key_id") or None,
        secret_access_key=conn.password or extra.get("aws_secret_access_key") or None,
        session_token=extra.get("aws_session_token") or None,
    )
    if bool(creds.access_key_id) != bool(creds.secret_access_key):
        why = "it has an access key without a secret, or a secret without an access key"
        raise _conn_error(conn_id, env, why, "set both login (access key) and password (secret), or neither")
    return creds


def use_store_connection(
    settings: Settings, *, get: ConnectionGetter | None = None
) -> StoreCredentials | None:
    """Make this process's S3 clients use the AWS connection (or the standard chain without one)."""
    from actrec_batch.storage.s3 import configure_clients

    creds = store_credentials(settings, get=get)
    configure_clients(**(creds.client_kwargs() if creds else {}))
    if creds is not None:
        log.info(
            "store %s: S3 credentials from Airflow connection %r (keys %s, region %s, endpoint %s)",
            settings.store,
            creds.conn_id,
            "given" if creds.access_key_id else "from the standard chain",
            creds.region_name or "default",
            creds.endpoint_url or "default",
        )
    return creds


# ------------------------------------------------------------------------------- the warehouse
def warehouse_url_from_connection(conn_id: str, *, get: ConnectionGetter | None = None) -> str:
    """The ``postgresql+psycopg://`` SQLAlchemy URL of Postgres connection ``conn_id``: host, port,
    login, password, schema (the database) and the libpq parameters of its extra (sslmode, options, ...)."""
    import sqlalchemy as sa

    env = "ACTREC_WAREHOUSE_CONN_ID"
    conn = _required(conn_id, env, get)
    if (conn.conn_type or "postgres") not in _POSTGRES_TYPES:
        raise _conn_error(
            conn_id, env, f"its type is {conn.conn_type!r}, not postgres", "point it at a Postgres connection"
        )
    if not conn.host:
        raise _conn_error(conn_id, env, "it has no host", "set the warehouse's host in the connection")
    extra = conn.extra_dejson or {}
    query = {k: str(extra[k]) for k in _LIBPQ_EXTRAS if extra.get(k) not in (None, "")}
    url = sa.URL.create(
        "postgresql+psycopg",
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host,
        port=conn.port or None,
        database=conn.schema or None,
        query=query,
    )
    return url.render_as_string(hide_password=False)


# ------------------------------------------------------------------------------- Ray
@dataclass(frozen=True)
class RayTarget:
    """A Ray cluster's address and, from its connection's password, its auth token (never in ``repr``)."""

    address: str
    conn_id: str | None = None
    token: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        """HTTP headers for the Jobs API (``JobSubmissionClient(address, headers=...)``)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def ray_target_from_connection(conn_id: str, *, get: ConnectionGetter | None = None) -> RayTarget:
    """Ray connection ``conn_id`` as an address: ``<scheme>://host:port``, the scheme from the host
    (``http://head``), the schema field or the conn type (http, https or ray; default http), the port
    by default 8265 (10001 for ray://). Its password, if any, is the Ray auth token."""
    env = "ACTREC_RAY_CONN_ID"
    conn = _required(conn_id, env, get)
    host = (conn.host or "").strip().rstrip("/")
    scheme, sep, rest = host.partition("://")
    host = rest if sep else host
    if not host:
        raise _conn_error(conn_id, env, "it has no host", "set the Ray head's host in the connection")
    candidates = (scheme if sep else None, conn.schema, conn.conn_type)
    scheme = next((s.lower() for s in candidates if s and s.lower() in _RAY_SCHEMES), "http")
    port = conn.port or (10001 if scheme == "ray" else 8265)
    return RayTarget(address=f"{scheme}://{host}:{port}", conn_id=conn_id, token=conn.password or None)


def ray_address_from_connection(conn_id: str, *, get: ConnectionGetter | None = None) -> str:
    """The Ray address of Ray connection ``conn_id`` (see :func:`ray_target_from_connection`)."""
    return ray_target_from_connection(conn_id, get=get).address


def ray_target(settings: Settings, *, get: ConnectionGetter | None = None) -> RayTarget | None:
    """The Ray cluster the infer task uses: ``ray_address`` when set explicitly (its token, if any,
    from Ray's own ``RAY_AUTH_TOKEN`` / ``~/.ray/auth_token``), else the ``ray_conn_id`` connection
    with its token, else None (a local Ray)."""
    source = settings.sources.get("ray_address", "default")
    if settings.ray_conn_id and (source == "default" or source.startswith("connection:")):
        return ray_target_from_connection(settings.ray_conn_id, get=get)
    return RayTarget(settings.ray_address) if settings.ray_address else None


# ------------------------------------------------------------------------------- the settings
# setting -> (its conn-id setting, the conn id's env var, the value a connection gives)
_FROM_CONNECTION: dict[str, tuple[str, str, Callable[..., str]]] = {
    "warehouse_url": ("warehouse_conn_id", "ACTREC_WAREHOUSE_CONN_ID", warehouse_url_from_connection),
    "ray_address": ("ray_conn_id", "ACTREC_RAY_CONN_ID", ray_address_from_connection),
}


def resolve_settings(settings: Settings, *, get: ConnectionGetter | None = None) -> Settings:
    """``settings`` completed from Airflow Connections (the module docstring's precedence); for an
    ``s3://`` store, this process's S3 clients are set to the AWS connection's credentials."""
    changes: dict[str, Any] = {}
    sources = dict(settings.sources)
    for name, (conn_setting, env, from_connection) in _FROM_CONNECTION.items():
        conn_id = getattr(settings, conn_setting)
        if not conn_id:
            continue
        if sources.get(name, "default") != "default":
            log.info(
                "%s is set (%s): Airflow connection %r (%s) is not used", name, sources[name], conn_id, env
            )
            continue
        value = from_connection(conn_id, get=get)
        try:
            changes[name] = getattr(replace(settings, **{name: value}), name)  # validated like a flag
        except ConfigError:
            why = f"it gives {name} = {redact_url(value)!r}, which is not valid"
            raise _conn_error(conn_id, env, why, f"correct the connection ({SPECS[name].fix})") from None
        sources[name] = f"connection:{conn_id}"
        log.info("%s from Airflow connection %r: %s", name, conn_id, redact_url(changes[name]))
    resolved = dataclasses.replace(settings, **changes, sources=sources)
    if resolved.store.startswith("s3://"):
        use_store_connection(resolved, get=get)
    return resolved


def task_settings(*, get: ConnectionGetter | None = None) -> Settings:
    """The settings of a DAG task: ``ACTREC_*`` variables (and the YAML file), completed from Airflow
    Connections (:func:`resolve_settings`)."""
    return resolve_settings(load_settings({}), get=get)
