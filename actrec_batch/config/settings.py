"""Every setting of actrec-batch, declared once: the fields of :class:`Settings`.

A field's name is the setting's name and its YAML key; its default is the built-in default; its
``setting(...)`` metadata gives the group, help, parser (validation), fix hint and whether it is a
secret. The environment variable is ``ACTREC_<NAME>``; the flag is ``--<name>`` with dashes unless
declared otherwise. :data:`SETTINGS` (read by the loader, the CLI's flags, ``actrec config``, the
errors and the README's settings table) is derived from these fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from actrec_batch.config import _parse
from actrec_batch.config._parse import Parser, redact_url

CONTENT_ID_METHODS = ("sha256", "fast")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
RUNNERS = ("ray", "local")

# Group name -> its title in --help, `actrec config` and the settings table, in display order.
GROUPS: dict[str, str] = {
    "store": "object store",
    "warehouse": "warehouse",
    "ray": "Ray: where and how inference runs",
    "decode": "discovery, decoding and work units",
    "pricing": "pricing of the cost ledger",
    "quality": "the nightly drift report: window and alert thresholds",
    "general": "config file and logging",
}
_KEY = "actrec_setting"


def setting(
    default: Any,
    *,
    group: str,
    help: str,  # noqa: A002 - the word argparse uses
    fix: str,
    parse: Parser,
    flag: str | None = None,
    secret: bool = False,
    shown_default: str | None = None,
) -> Any:
    """Declare one setting (a dataclass field of :class:`Settings`); see the module docstring."""
    if group not in GROUPS:
        raise ValueError(f"unknown settings group {group!r}; use one of {', '.join(GROUPS)}")
    meta = {"group": group, "help": help, "fix": fix, "parse": parse, "flag": flag, "secret": secret}
    meta["shown_default"] = shown_default
    return field(default=default, repr=not secret, metadata={_KEY: meta})


@dataclass(frozen=True)
class Spec:
    """How one setting is read and shown (derived from its field of :class:`Settings`)."""

    name: str
    default: Any
    group: str
    help: str
    fix: str
    parse: Parser
    flag: str
    env: str
    secret: bool
    shown_default: str | None

    @property
    def choices(self) -> tuple[str, ...] | None:
        return getattr(self.parse, "choices", None)

    def default_text(self) -> str:
        """The default as the help and the settings table show it."""
        if self.shown_default is not None:
            return self.shown_default
        return "unset" if self.default is None else f"{self.default}"


@dataclass(frozen=True)
class Settings:
    """Validated settings. Build with :func:`~actrec_batch.config.load_settings`; never mutate."""

    # ---------------------------------------------------------------- store
    store: str = setting(
        "./.actrec/store",
        group="store",
        help="object-store root: a local path, file:///abs/path or s3://bucket/prefix (honours "
        "AWS_ENDPOINT_URL and the standard AWS credential chain)",
        fix="pass a local path, file:///abs/path or s3://bucket/prefix",
        parse=_parse.store_uri,
    )
    aws_conn_id: str | None = setting(
        "aws_default",
        group="store",
        help="Airflow tasks only: the AWS connection whose login/password (access key and secret) and "
        "extra aws_session_token, region_name and endpoint_url the tasks' S3 clients use, over the "
        "standard chain; 'none': no connection. A missing aws_default is skipped; any other missing id "
        "is an error",
        fix="use the id of an Airflow AWS connection, or none for the standard AWS credential chain",
        parse=_parse.optional_str,
    )
    # ---------------------------------------------------------------- warehouse
    warehouse_url: str = setting(
        "duckdb:///./.actrec/warehouse.duckdb",
        group="warehouse",
        flag="--warehouse",
        help="SQLAlchemy URL of the warehouse (DuckDB or PostgreSQL); its password is never shown",
        fix="pass duckdb:///path.duckdb or postgresql+psycopg://user:pass@host:5432/db",
        parse=_parse.warehouse_url,
        secret=True,
    )
    warehouse_conn_id: str | None = setting(
        None,
        group="warehouse",
        help="Airflow tasks only: a Postgres connection (host, port, login, password, schema = "
        "database, extra sslmode/options/...) that gives the warehouse URL when warehouse_url is not set",
        fix="use the id of an Airflow Postgres connection, or unset it",
        parse=_parse.optional_str,
    )
    # ---------------------------------------------------------------- ray
    runner: str = setting(
        "ray",
        group="ray",
        help="where the inference stages run: ray (a local Ray, or the cluster of --ray-address) "
        "or local (in this process)",
        fix="use ray or local",
        parse=_parse.choice(RUNNERS),
    )
    ray_address: str | None = setting(
        None,
        group="ray",
        help="Ray cluster: 'auto', ray://host:10001 or host:port for a driver; http://host:8265 (a Ray Jobs "
        "API address) makes the Airflow infer task submit a Ray job; unset or 'local': a local Ray on 127.0.0.1",
        fix="unset it for a local Ray, or use 'auto' / ray://host:10001",
        parse=_parse.ray_address,
    )
    ray_conn_id: str | None = setting(
        None,
        group="ray",
        help="Airflow tasks only: a Ray connection (host, port, schema http, https or ray; its password a "
        "Ray auth token) that gives the Ray address when ray_address is not set",
        fix="use the id of an Airflow Ray connection, or unset it",
        parse=_parse.optional_str,
    )
    local_ray_cpus: int = setting(
        0,
        group="ray",
        help="CPUs a local Ray may use (0: all of them); ignored with a Ray address",
        fix="use the CPUs a local Ray may use, or 0 for all of them (ignored with a Ray address)",
        parse=_parse.int_in(0, 4096),
    )
    decode_cpus: float = setting(
        1.0,
        group="ray",
        help="CPUs each Ray decode task reserves (its decoder threads); the local runner decodes one unit "
        "at a time with a thread per core",
        fix="use the CPUs one decode task reserves, e.g. 1",
        parse=_parse.float_in(0.1, 64.0),
    )
    task_retries: int = setting(
        3,
        group="ray",
        help="Ray retries of a task, and restarts of an actor, whose worker or node died",
        fix="use how often Ray retries a task or restarts an actor whose worker died, e.g. 3",
        parse=_parse.int_in(0, 100),
    )
    inference_actors: int = setting(
        0,
        group="ray",
        help="inference actors; 0: as many as the cluster's GPUs hold at --actor-gpus each, or, "
        "without GPUs, one CPU actor per 8 CPUs (at least one)",
        fix="use the number of inference actors, or 0 for one per --actor-gpus share of the GPUs "
        "(one per 8 CPUs without GPUs)",
        parse=_parse.int_in(0, 1024),
    )
    actor_gpus: str | float = setting(
        "auto",
        group="ray",
        help="GPUs per inference actor (1, 0.5, ...), 0 for CPU actors; auto: 1 when the cluster has GPUs",
        fix="use the GPUs each inference actor reserves (e.g. 1 or 0.5), 0 for CPU actors, or auto",
        parse=_parse.auto_or_float(0.0, 8.0),
    )
    actor_cpus: str | float = setting(
        "auto",
        group="ray",
        help="CPUs per inference actor; auto: 1 for a GPU actor, 0 for a CPU actor (decode tasks keep "
        "every core; its busy time is still measured)",
        fix="use the CPUs each inference actor reserves (e.g. 1), or auto (1 for a GPU actor, 0 for a CPU actor)",
        parse=_parse.auto_or_float(0.0, 64.0),
    )
    max_inflight_units: int = setting(
        0,
        group="ray",
        help="units decoding, decoded or being embedded at once (bounds memory); 0: the decode slots "
        "(CPUs the actors leave, / --decode-cpus) plus the actors",
        fix="use the most units in memory at once, or 0 for one per decode slot plus one per actor",
        parse=_parse.int_in(0, 100000),
    )
    batch_frames: int = setting(
        1024,
        group="ray",
        help="frames one inference call gathers across units",
        fix="use the frames an inference call gathers across units, e.g. 1024",
        parse=_parse.int_in(1, 1 << 20),
    )
    # ---------------------------------------------------------------- decode
    probe_workers: int = setting(
        8,
        group="decode",
        help="parallel probes during discovery",
        fix="use a whole number of parallel probes, e.g. 8",
        parse=_parse.int_in(1, 256),
    )
    probe_timeout_s: float = setting(
        60.0,
        group="decode",
        flag="--probe-timeout",
        help="seconds before a hung probe quarantines its file as 'timeout'",
        fix="use seconds per file, e.g. 60",
        parse=_parse.float_in(0.1, 3600.0),
    )
    content_id: str = setting(
        "sha256",
        group="decode",
        help="content id of a video: sha256 (reads every byte; exact) or fast (size + ETag / sampled bytes)",
        fix="use sha256 (reads every byte, exact) or fast (size + ETag / sampled bytes)",
        parse=_parse.choice(CONTENT_ID_METHODS),
    )
    max_video_bytes: int = setting(
        64 * 2**30,
        group="decode",
        help="larger files are quarantined as 'too_large'",
        fix="use a size limit in bytes, e.g. 68719476736 for 64 GiB",
        parse=_parse.int_in(1, 2**50),
        shown_default="68719476736 (64 GiB)",
    )
    segment_s: float = setting(
        300.0,
        group="decode",
        help="work-unit length, in seconds of footage",
        fix="use the work-unit length in seconds of footage, e.g. 300",
        parse=_parse.float_in(5.0, 86400.0),
    )
    unit_timeout_s: float = setting(
        1800.0,
        group="decode",
        flag="--unit-timeout",
        help="a unit (or a video's index pass) slower than this many seconds is cancelled and its "
        "video quarantined as 'timeout'",
        fix="use the seconds one unit may take to decode before it is quarantined as timeout, e.g. 1800",
        parse=_parse.float_in(1.0, 86400.0),
    )
    file_time_pattern: str | None = setting(
        None,
        group="decode",
        help="strftime pattern of a file's start in its name, e.g. %Y%m%dT%H%M%SZ; unset: the "
        "container's creation time",
        fix="use a strftime pattern that the file names carry, e.g. %Y%m%dT%H%M%SZ "
        "(with %Y %m %d %H %M %S), or leave it unset to use the container's creation time",
        parse=_parse.file_time_pattern,
    )
    chain_tolerance_s: float = setting(
        1.0,
        group="decode",
        flag="--chain-tolerance",
        help="seconds of gap or overlap up to which a camera's consecutive files are one chain",
        fix="use the seconds of gap or overlap up to which a camera's consecutive files are one chain, e.g. 1",
        parse=_parse.float_in(0.0, 3600.0),
    )
    # ---------------------------------------------------------------- pricing
    cpu_hour_usd: float = setting(
        0.0446,
        group="pricing",
        help="deprecated (the pricing catalogue supersedes it): setting it prices runs by vCPU- and GPU-hours "
        "reserved at this on-demand price of one vCPU-hour in USD",
        fix="use the on-demand price of one vCPU-hour in USD, e.g. 0.0446",
        parse=_parse.float_in(0.0, 1000.0),
    )
    gpu_hour_usd: float = setting(
        1.006,
        group="pricing",
        help="deprecated (the pricing catalogue supersedes it): setting it prices runs by vCPU- and GPU-hours "
        "reserved at this on-demand price of one GPU-hour in USD",
        fix="use the on-demand price of one GPU-hour in USD, e.g. 1.006",
        parse=_parse.float_in(0.0, 10000.0),
    )
    spot_price_ratio: float = setting(
        0.35,
        group="pricing",
        help="deprecated (the pricing catalogue supersedes it): setting it prices runs by reserved hours, "
        "spot at this fraction of on-demand (a run whose nodes are all spot)",
        fix="use the spot price as a fraction of on-demand, between 0 and 1, e.g. 0.35",
        parse=_parse.float_in(0.0, 1.0),
    )
    # ---------------------------------------------------------------- quality
    drift_window_nights: int = setting(
        7,
        group="quality",
        help="previous nights (footage dates before the run's) the drift report compares the night with",
        fix="use the number of previous nights in the drift window, between 1 and 90, e.g. 7",
        parse=_parse.int_in(1, 90),
    )
    drift_psi_warn: float = setting(
        0.1,
        group="quality",
        help="population stability index (labels, confidences) from which a shift is a warning",
        fix="use a PSI such as 0.1 (0.1 to 0.25 is the usual 'moderate shift')",
        parse=_parse.float_in(0.0, 100.0),
    )
    drift_psi_alert: float = setting(
        0.25,
        group="quality",
        help="PSI from which a shift is an alert, when its chi-square test is also significant",
        fix="use a PSI such as 0.25 (above 0.25 is the usual 'major shift'), not below drift_psi_warn",
        parse=_parse.float_in(0.0, 100.0),
    )
    drift_p_value: float = setting(
        0.01,
        group="quality",
        help="significance of the drift tests (chi-square on shares, Poisson on a camera's event "
        "count): a smaller p-value is a significant change",
        fix="use a probability between 0 and 1, e.g. 0.01",
        parse=_parse.float_in(0.0, 1.0),
    )
    drift_quarantine_increase: float = setting(
        0.1,
        group="quality",
        help="rise of the quarantined fraction of videos over the window's from which it is an alert",
        fix="use a fraction of videos between 0 and 1, e.g. 0.1 (ten points more than usual)",
        parse=_parse.float_in(0.0, 1.0),
    )
    drift_dead_fraction: float = setting(
        0.5,
        group="quality",
        help="fraction of a camera's decoded frames that are black, or static, from which the "
        "camera is reported dead or frozen",
        fix="use a fraction between 0 and 1, e.g. 0.5",
        parse=_parse.float_in(0.0, 1.0),
    )
    drift_fail_on_alert: bool = setting(
        False,
        group="quality",
        help="fail the quality stage (the DAG's quality task) when the drift report has an alert; "
        "otherwise it only warns",
        fix="use true or false",
        parse=_parse.boolean,
    )
    price_catalogue: str | None = setting(
        None,
        group="pricing",
        help="a YAML pricing catalogue (instance types, spot and on-demand prices per region, S3 prices) "
        "to price runs with; unset: the shipped one (actrec_batch/pricing/aws-2026-11.yaml)",
        fix="point at a YAML file shaped like actrec_batch/pricing/aws-2026-11.yaml, or unset it",
        parse=_parse.pricing_catalogue,
        shown_default="the shipped aws-2026-11",
    )
    price_region: str = setting(
        "us-east-1",
        group="pricing",
        help="the region whose prices the cost ledger uses (a region of the pricing catalogue)",
        fix="use a region the pricing catalogue lists, e.g. us-east-1 or eu-west-1",
        parse=_parse.region,
    )
    price_market: str = setting(
        "spot",
        group="pricing",
        help="the market a run without Ray nodes (local, or a local Ray) is priced as: spot or on_demand; "
        "a cluster's nodes say their own (the Ray resource `spot`)",
        fix="use spot or on_demand",
        parse=_parse.choice(("spot", "on_demand")),
    )
    price_gpu_instance: str = setting(
        "g5.xlarge",
        group="pricing",
        help="the instance type a run without Ray nodes is priced as (it held one for its wall time)",
        fix="use an instance type of the pricing catalogue, e.g. g5.xlarge or g6.xlarge",
        parse=_parse.instance_type,
    )
    price_cpu_instance: str = setting(
        "c7i.2xlarge",
        group="pricing",
        help="the CPU instance type whose per-vCPU price splits a GPU node's price between its vCPUs and its "
        "GPUs (the usage lines), prices an unlabelled CPU node and the driver's vCPU on a cluster",
        fix="use a CPU instance type of the pricing catalogue, e.g. c7i.2xlarge",
        parse=_parse.instance_type,
    )
    # ---------------------------------------------------------------- general
    log_level: str = setting(
        "INFO",
        group="general",
        help="DEBUG, INFO, WARNING or ERROR",
        fix="use DEBUG, INFO, WARNING or ERROR",
        parse=_parse.choice(LOG_LEVELS, upper=True),
    )

    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({shown})"

    def redacted(self) -> dict[str, Any]:
        """All settings with secrets masked: safe to log or print."""
        return {s.name: _shown(s, getattr(self, s.name)) for s in SETTINGS}


def _shown(spec: Spec, value: Any) -> Any:
    return redact_url(value) if spec.secret else value


def _spec(f: Any) -> Spec:
    meta = dict(f.metadata[_KEY])
    flag = meta.pop("flag") or "--" + f.name.replace("_", "-")
    return Spec(name=f.name, default=f.default, flag=flag, env=f"ACTREC_{f.name.upper()}", **meta)


SETTINGS: tuple[Spec, ...] = tuple(_spec(f) for f in fields(Settings) if _KEY in f.metadata)
SETTING_NAMES: tuple[str, ...] = tuple(s.name for s in SETTINGS)
SPECS: dict[str, Spec] = {s.name: s for s in SETTINGS}
