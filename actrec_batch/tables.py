"""Every table's columns, declared once: the Parquet files' Arrow schemas, the Great Expectations
suites, the warehouse's SQLAlchemy tables and the search columns all derive from here.

A column (:data:`COLUMNS`) is declared once with its type, description and value constraints; a
name means the same thing in every table it appears in. A table (:class:`Table`) lists its column
names in their stored order, which of them may be null, and its keys. Column order and types are
those of the files and tables already written: Parquet bytes and the warehouse do not change.

- Arrow (Parquet): :data:`MANIFEST`, :data:`QUARANTINE_FILE`, :data:`EVENTS_FILE`; see
  :meth:`Table.arrow_schema`. Arrow fields are all nullable: nullability is checked by the suites.
- Great Expectations: :data:`MANIFEST` and :data:`EVENTS_VALIDATED` (the staged events with the
  durations of their videos joined), built by :mod:`actrec_batch.expectations`.
- Warehouse: :data:`WAREHOUSE_TABLES`, made SQLAlchemy metadata by
  :mod:`actrec_batch.warehouse.schema` (the Alembic migrations are their history).
- :func:`columns_reference_markdown` renders the tables for docs/reference.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

import pyarrow as pa

from actrec_batch.errors import QuarantineReason, QuarantineStage, RunStatus


class Kind(Enum):
    """A column's type: ``(Arrow type, SQLAlchemy type, SQL type in the docs)``. A ``DATE`` is an
    ISO ``YYYY-MM-DD`` string in Parquet and a ``DATE`` in the warehouse."""

    STRING = ("string", "String", "VARCHAR")
    DATE = ("string", "Date", "DATE")
    FLOAT = ("float64", "Double", "DOUBLE")
    INT32 = ("int32", "Integer", "INTEGER")
    INT64 = ("int64", "BigInteger", "BIGINT")
    BOOL = ("bool", "Boolean", "BOOLEAN")
    TIMESTAMP = ("timestamp", "DateTime", "TIMESTAMPTZ")

    @property
    def arrow(self) -> pa.DataType:
        name = self.value[0]
        if name == "timestamp":
            return pa.timestamp("us", tz="UTC")
        return pa.bool_() if name == "bool" else getattr(pa, name)()

    @property
    def sql(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class Column:
    """One column. ``length`` is its VARCHAR length in the warehouse. Constraints (checked by the
    suites of the tables that list the column in ``checked``): ``values`` the allowed values,
    ``min``/``max`` a range (``strict_min``: ``> min``), ``regex``, and ``above``: the column is
    greater than another (``(name, or_equal)``)."""

    kind: Kind
    description: str
    length: int | None = None
    values: tuple | None = None
    min: float | None = None
    max: float | None = None
    strict_min: bool = False
    regex: str | None = None
    above: tuple[str, bool] | None = None

    def constraint_text(self) -> str:
        parts = []
        if self.values is not None:
            parts.append("one of " + ", ".join(f"`{v}`" for v in self.values))
        if self.min is not None or self.max is not None:
            lo = "" if self.min is None else f"{self.min} {'<' if self.strict_min else '<='} "
            hi = "" if self.max is None else f" <= {self.max}"
            parts.append(f"{lo}x{hi}")
        if self.regex is not None:
            parts.append(f"matches `{self.regex}`")
        if self.above is not None:
            parts.append(f"{'>=' if self.above[1] else '>'} `{self.above[0]}`")
        return "; ".join(parts)


S, D, F, I32, I64, B, TS = tuple(Kind)  # short names for the declarations below
# Any name a footage folder can have (storage/keys.py): Unicode and spaces included, no "/",
# backslash or control characters. A narrower rule failed a whole date.
CAMERA_ID_REGEX = r"^[^/\\\x00-\x1f\x7f]+$"
_SHA256_REGEX = r"^[0-9a-f]{64}$"

# fmt: off
COLUMNS: dict[str, Column] = {
    # identity and lineage (a table may describe a column more closely: Table.notes)
    "run_id": Column(S, "the run that produced the row", 64),
    "logical_date": Column(D, "the footage date (`YYYY-MM-DD` in Parquet)"),
    "video_id": Column(S, "32 hex: sha256 of the video's store key", 64),
    "uri": Column(S, "the video's URI", 2048),
    "key": Column(S, "store key"),
    "camera_id": Column(S, "from the `camera=<id>` folder", 256, regex=CAMERA_ID_REGEX),
    "content_id": Column(S, "64 hex content id of the video", 64, regex=_SHA256_REGEX),
    "content_id_method": Column(S, "how `content_id` was computed", values=("sha256", "fast")),
    # probed video properties
    "size_bytes": Column(I64, "file size in bytes", min=1),
    "etag": Column(S, "S3 ETag, when there is one"),
    "container": Column(S, "FFmpeg container name", 64),
    "codec": Column(S, "FFmpeg codec name", 32),
    "width": Column(I32, "coded width in pixels", min=16, max=16384),
    "height": Column(I32, "coded height in pixels", min=16, max=16384),
    "display_width": Column(I32, "width after the rotation"),
    "display_height": Column(I32, "height after the rotation"),
    "fps": Column(F, "average frame rate", min=1.0, max=300.0),
    "fps_mode": Column(S, "whether frames are evenly spaced", values=("constant", "variable")),
    "duration_s": Column(F, "duration in seconds", min=0.0, strict_min=True, max=7 * 86400.0),
    "frame_count": Column(I64, "frames (estimated unless `frame_count_exact`)", min=1),
    "frame_count_exact": Column(B, "whether `frame_count` was counted, not estimated"),
    "rotation": Column(I32, "display rotation in degrees", values=(0, 90, 180, 270)),
    "creation_time": Column(TS, "the container's creation time, when it has one"),
    "recorded_at": Column(TS, "the container's creation time, when it has one"),
    "has_audio": Column(B, "whether there is an audio stream"),
    "labels_key": Column(S, "the ground-truth sidecar's key, when there is one"),
    "probe_bytes_read": Column(I64, "bytes the probe read"),
    # quarantine
    "stage": Column(S, "the stage that quarantined the file", 32, values=tuple(QuarantineStage)),
    "reason": Column(S, "a [quarantine reason code](#quarantine-reasons)", 64, values=tuple(QuarantineReason)),
    "detail": Column(S, "one line naming the file and the cause (at most 500 characters)", 2048),
    # events
    "event_id": Column(S, "deterministic: 32 hex of the sha256 of (video, label, start and end to the "
                          "millisecond, model version)", 64),
    "video_key": Column(S, "store key of the video the event starts in"),
    "label": Column(S, "action label from the model's label map", 64),
    "start_s": Column(F, "start, seconds from the start of `video_id`", min=0.0),
    "end_s": Column(F, "end, seconds from the start of `video_id` (may exceed its duration for an event "
                       "spanning files); `[start_s, end_s)`", above=("start_s", False)),
    "start_ts": Column(TS, "wall-clock start when the recording's start is known, else null"),
    "end_ts": Column(TS, "wall-clock end when known, else null"),
    "confidence": Column(F, "mean smoothed score over the event", min=0.0, max=1.0),
    "model_name": Column(S, "model name", 128),
    "model_version": Column(S, "model version", 64),
    "model_sha256": Column(S, "sha256 of the model's weights", 64),
    "extractor_id": Column(S, "the extractor's id and version", 128),
    "code_version": Column(S, "actrec-batch version", 64),
    "end_video_id": Column(S, "the video the event ends in (`video_id` unless it spans files)", 64),
    "end_offset_s": Column(F, "end, seconds from the start of `end_video_id` (`end_s` unless it spans "
                              "files)", min=0.0, strict_min=True),
    "video_duration_s": Column(F, "duration of `video_id` (joined from the manifest)", above=("start_s", False)),
    "end_video_duration_s": Column(F, "duration of `end_video_id` (joined from the manifest)",
                                   above=("end_offset_s", True)),
    # runs and active models
    "status": Column(S, "the run's outcome", 16, values=tuple(RunStatus)),
    "started_at": Column(TS, "when the run started"),
    "finished_at": Column(TS, "when it was recorded"),
    "cameras": Column(S, "comma-separated camera ids when the run was limited to some cameras; null: all", 1024),
    "videos_discovered": Column(I32, "videos discovered (= processed + quarantined)"),
    "videos_processed": Column(I32, "videos scored"),
    "videos_quarantined": Column(I32, "videos quarantined (discovery and inference)"),
    "events": Column(I32, "events the run staged"),
    "video_seconds": Column(F, "seconds of footage processed"),
    "wall_s": Column(F, "wall time in seconds"),
    "events_uri": Column(S, "the published events file", 2048),
    "docs_uri": Column(S, "Data Docs of the events validation", 2048),
    "error": Column(S, "a failed run's error (one line)", 2048),
    "activated_at": Column(TS, "when the version was made current"),
    # costs
    "component": Column(S, "what was paid for: `nodes`, `driver` or `s3` (catalogue pricing); `decode`, "
                           "`infer` or `driver` (the deprecated per-hour rates)", 64),
    "resource": Column(S, "an instance type (`nodes`, `driver`), `put_requests`, `get_requests`, `storage` or "
                          "`transfer` (`s3`); `cpu` or `gpu` (per-hour rates)", 64),
    "quantity": Column(F, "how many `unit`s"),
    "unit": Column(S, "`node_hour`, `vcpu_hour`, `1k_requests`, `gb_month`, `gb`; `cpu_hour` or `gpu_hour` "
                      "(per-hour rates)", 32),
    "unit_price_usd": Column(F, "USD per unit at this pricing"),
    "pricing": Column(S, "the price list used", 16, values=("spot", "on_demand")),
    "cost_usd": Column(F, "`quantity * unit_price_usd`"),
    # quality (the drift report)
    "metric": Column(S, "what is measured, e.g. `label_psi`, `event_rate`, `black_fraction` "
                     "(docs/reference.md#the-drift-report)", 64),
    "subject": Column(S, "what it is measured on: `all`, a label, a camera id or a confidence bin", 256),
    "value": Column(F, "tonight's value (null: nothing to measure)"),
    "baseline": Column(F, "the window's value, when the metric compares with one"),
    "threshold": Column(F, "the setting the value was judged against, when one applies"),
    "alert_status": Column(S, "the verdict", 16, values=("ok", "warn", "alert", "no_baseline", "info")),
    "busy_s": Column(F, "seconds the component kept its resources busy (`wasted`: seconds redone; `idle`: "
                        "node-seconds paid and not busy)", min=0.0),
    "units_redone": Column(I32, "units decoded or embedded more than once (the `wasted` row; else null)"),
    "share": Column(F, "the row's part of what the nodes cost, 0 to 1", min=0.0, max=1.0),
}
# fmt: on


@dataclass(frozen=True)
class Table:
    """A table: ``columns`` in stored order; ``not_null`` the columns that are never null
    (``"*"``: all); ``checked`` the columns whose constraints its suite checks; ``unique``,
    ``primary_key`` (with ``pk_name`` when named) and ``indexes`` (``(name, columns)``). ``sql``:
    a warehouse table (else a Parquet file); ``notes``: this table's descriptions of some columns;
    ``filled``: nullable columns that are never null all the same; ``partition_key``: the column
    PostgreSQL partitions the table by, one partition per value (DuckDB keeps such a table without
    key or indexes: see :mod:`actrec_batch.warehouse.partitions`)."""

    name: str
    description: str
    columns: tuple[str, ...]
    sql: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)
    filled: tuple[str, ...] = ()
    not_null: tuple[str, ...] = ()
    primary_key: tuple[str, ...] = ()
    pk_name: str | None = None
    unique: tuple[str, ...] = ()
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    checked: tuple[str, ...] = ()
    partition_key: str | None = None

    def __post_init__(self) -> None:
        named = {*self.not_null, *self.primary_key, *self.unique, *self.checked, *self.notes, *self.filled}
        if self.partition_key is not None:
            named.add(self.partition_key)
            if self.partition_key not in self.primary_key:  # PostgreSQL's rule for partitioned tables
                raise ValueError(
                    f"table {self.name}: partition key {self.partition_key} not in its primary key"
                )
        named.update(c for _, cols in self.indexes for c in cols)
        unknown = sorted(named - set(self.columns) - {"*"}) + sorted(set(self.columns) - set(COLUMNS))
        if unknown:
            raise ValueError(f"table {self.name}: unknown columns {unknown}")

    def nullable(self, name: str) -> bool:
        return name not in self.primary_key and name not in self.not_null and self.not_null != ("*",)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(name, COLUMNS[name].kind.arrow) for name in self.columns])

    def names_of(self, kind: Kind) -> tuple[str, ...]:
        return tuple(n for n in self.columns if COLUMNS[n].kind is kind)


# ------------------------------------------------------------------------- Parquet files

MANIFEST = Table(
    "manifest",
    "`manifests/date=D/manifest.parquet`: one row per readable, probed video that the manifest suite "
    "accepts; \"nullable: no\" marks the columns the suite checks not null.",
    (
        "video_id", "uri", "key", "camera_id", "logical_date", "content_id", "content_id_method",
        "size_bytes", "etag", "container", "codec", "width", "height", "display_width", "display_height",
        "fps", "fps_mode", "duration_s", "frame_count", "frame_count_exact", "rotation", "creation_time",
        "has_audio", "labels_key", "probe_bytes_read",
    ),
    not_null=(
        "video_id", "uri", "key", "camera_id", "logical_date", "content_id", "content_id_method",
        "size_bytes", "container", "codec", "width", "height", "fps", "fps_mode", "duration_s",
        "frame_count", "rotation",
    ),
    unique=("video_id", "uri"),
    checked=(
        "content_id", "camera_id", "content_id_method", "fps_mode", "rotation", "size_bytes", "fps",
        "duration_s", "width", "height", "frame_count",
    ),
)  # fmt: skip

_REFUSED = {
    "uri": "the file's URI (a refused name percent-encoded)",
    "key": "store key (a refused name percent-encoded)",
}
QUARANTINE_FILE = Table(
    "quarantine",
    "`quarantine/date=D/<stage>.parquet`: one row per quarantined file of that stage.",
    ("uri", "key", "logical_date", "stage", "reason", "detail", "size_bytes"),
    not_null=("uri", "key", "logical_date", "stage", "reason", "detail"),
    notes=_REFUSED,
)

_EVENT_FILE_COLUMNS = (
    "event_id", "video_id", "video_key", "uri", "camera_id", "logical_date", "label", "start_s", "end_s",
    "start_ts", "end_ts", "confidence", "model_name", "model_version", "model_sha256", "extractor_id",
    "content_id", "code_version", "end_video_id", "end_offset_s", "run_id",
)  # fmt: skip
_EVENT_REQUIRED = (
    "event_id", "video_id", "camera_id", "logical_date", "label", "start_s", "end_s", "confidence",
    "model_name", "model_version", "run_id", "code_version", "extractor_id", "end_video_id", "end_offset_s",
)  # fmt: skip

_EVENT_NOTES = {"video_id": "the video the event starts in", "uri": "URI of that video"}
EVENTS_FILE = Table(
    "events",
    "`events/date=D/events-<name>-<version>.parquet` (published) and `staging/date=D/run=R/events.parquet` "
    "(staged): the same columns. The warehouse's `action_events` takes every column but `video_key`.",
    _EVENT_FILE_COLUMNS,
    notes=_EVENT_NOTES,
    not_null=_EVENT_REQUIRED,
    unique=("event_id",),
    checked=("confidence", "start_s", "end_s", "end_offset_s"),  # by the events suite (EVENTS_VALIDATED)
)

EVENTS_VALIDATED = Table(
    "events (validated)",
    "The staged events as the events suite sees them: with the durations of the videos they start "
    "and end in joined from the manifest.",
    (*_EVENT_FILE_COLUMNS[:-3], "run_id", "end_video_id", "end_offset_s", "video_duration_s",
     "end_video_duration_s"),
    not_null=_EVENT_REQUIRED,
    unique=("event_id",),
    checked=(*EVENTS_FILE.checked, "video_duration_s", "end_video_duration_s"),
)  # fmt: skip

# ------------------------------------------------------------------------- warehouse tables

RUNS = Table(
    "runs",
    "One row per pipeline run attempt, a failed one too (a rerun adds its own row).",
    (
        "run_id", "logical_date", "status", "started_at", "finished_at", "model_name", "model_version",
        "model_sha256", "extractor_id", "code_version", "cameras", "videos_discovered", "videos_processed",
        "videos_quarantined", "events", "video_seconds", "wall_s", "cost_usd", "events_uri", "docs_uri", "error",
    ),
    sql=True,
    not_null=("logical_date", "status"),
    primary_key=("run_id",),
    notes={"run_id": "the run id", "cost_usd": "the run's cost, set by the cost stage"},
)  # fmt: skip

VIDEOS = Table(
    "videos",
    "The processed videos of each date, replaced per date.",
    (
        "video_id", "uri", "content_id", "camera_id", "logical_date", "duration_s", "fps", "width", "height",
        "codec", "size_bytes", "container", "recorded_at", "run_id",
    ),
    sql=True,
    not_null=("uri", "content_id", "camera_id", "logical_date", "duration_s"),
    notes={"run_id": "the run that loaded the row"},
    primary_key=("video_id",),
    indexes=(("ix_videos_date_camera", ("logical_date", "camera_id")),),
)  # fmt: skip

QUARANTINE = Table(
    "quarantine",
    "What could not be processed, replaced per date.",
    ("run_id", "logical_date", "uri", "reason", "detail", "stage", "camera_id", "size_bytes"),
    sql=True,
    notes={
        "uri": _REFUSED["uri"],
        "run_id": "the run that loaded the row",
        "camera_id": "the camera, when the file is under `camera=<id>/`",
    },
    not_null=("logical_date", "uri", "reason", "stage"),
    primary_key=("logical_date", "uri", "stage"),
    pk_name="pk_quarantine",
)

ACTION_EVENTS = Table(
    "action_events",
    "Events per (date, model name, model version), with lineage on every row.",
    (
        "event_id", "run_id", "video_id", "camera_id", "logical_date", "label", "start_s", "end_s",
        "start_ts", "end_ts", "confidence", "model_name", "model_version", "model_sha256", "extractor_id",
        "content_id", "code_version", "uri", "end_video_id", "end_offset_s",
    ),
    not_null=(
        "run_id", "video_id", "camera_id", "logical_date", "label", "start_s", "end_s", "confidence",
        "model_name", "model_version", "model_sha256", "extractor_id", "content_id", "code_version", "uri",
    ),
    sql=True,
    # event_id alone is unique too (a hash of video, times and model version), but a partitioned
    # table's key must hold its partition key; event_id leads so a lookup by id uses the key.
    primary_key=("event_id", "logical_date"),
    pk_name="pk_action_events",
    partition_key="logical_date",
    notes=_EVENT_NOTES,
    filled=("end_video_id", "end_offset_s"),  # nullable only because DuckDB cannot add NOT NULL (0002)
    indexes=(
        ("ix_action_events_label_ts", ("label", "start_ts")),
        ("ix_action_events_camera_ts", ("camera_id", "start_ts")),
        ("ix_action_events_date_model", ("logical_date", "model_name", "model_version")),
    ),
)  # fmt: skip

ACTIVE_MODELS = Table(
    "active_models",
    "The model version `current_action_events` shows for each date.",
    ("logical_date", "model_name", "model_version", "run_id", "activated_at"),
    sql=True,
    notes={"run_id": "the run that activated it"},
    not_null=("*",),
    primary_key=("logical_date",),
)

JOB_COSTS = Table(
    "job_costs",
    "The cost ledger of each run (and `cost.json`'s `rows`).",
    ("run_id", "component", "resource", "quantity", "unit", "unit_price_usd", "pricing", "cost_usd"),
    sql=True,
    not_null=("*",),
    primary_key=("run_id", "component", "resource", "pricing"),
    pk_name="pk_job_costs",
)

QUALITY_METRICS = Table(
    "quality_metrics",
    "The nightly drift report's figures (`quality.json`'s `drift.metrics`), replaced per date.",
    ("logical_date", "run_id", "metric", "subject", "value", "baseline", "threshold", "alert_status"),
    sql=True,
    notes={"run_id": "the run whose quality stage wrote the row"},
    not_null=("logical_date", "run_id", "metric", "subject", "alert_status"),
    primary_key=("logical_date", "metric", "subject"),
    pk_name="pk_quality_metrics",
)

JOB_COST_USAGE = Table(
    "job_cost_usage",
    "Where each run's paid compute went (migration 0003; `cost.json`'s `usage`): one row per component "
    "(`discover`, `decode`, `inference`, `validation`, `publish`, `wasted`, `idle`); the rows' `cost_usd` sum "
    "to the run's `nodes` and `driver` rows in `job_costs`. Runs priced by the deprecated per-hour rates have none.",
    ("run_id", "component", "busy_s", "units_redone", "cost_usd", "share"),
    sql=True,
    notes={"component": "`discover`, `decode`, `inference`, `validation`, `publish`, `wasted` or `idle`",
           "cost_usd": "the component's part of the compute cost"},
    not_null=("run_id", "component", "busy_s", "cost_usd", "share"),
    primary_key=("run_id", "component"),
    pk_name="pk_job_cost_usage",
)  # fmt: skip

WAREHOUSE_TABLES = (
    RUNS,
    VIDEOS,
    QUARANTINE,
    ACTION_EVENTS,
    ACTIVE_MODELS,
    JOB_COSTS,
    JOB_COST_USAGE,
    QUALITY_METRICS,
)

# What `actrec search` returns of `current_action_events`, in output order.
SEARCH_COLUMNS = (
    "event_id", "logical_date", "camera_id", "label", "start_s", "end_s", "start_ts", "end_ts",
    "confidence", "video_id", "uri", "model_name", "model_version", "run_id",
)  # fmt: skip
if not set(SEARCH_COLUMNS) <= set(ACTION_EVENTS.columns):
    raise ValueError(
        f"SEARCH_COLUMNS {sorted(set(SEARCH_COLUMNS) - set(ACTION_EVENTS.columns))} not in action_events"
    )


def _type_text(table: Table, name: str) -> str:
    kind, length = COLUMNS[name].kind, COLUMNS[name].length
    if not table.sql:
        return f"`{kind.arrow}`"
    return f"`{kind.value[2]}({length})`" if length else f"`{kind.value[2]}`"


def _table_markdown(table: Table) -> list[str]:
    """One table's heading, description, keys and a row per column."""
    head = f"#### `{table.name}`" if table.sql else f"#### `{table.name}` Parquet"
    text = f"Warehouse. {table.description}" if table.sql else table.description
    if table.primary_key:
        pk = table.primary_key[0] if len(table.primary_key) == 1 else f"({', '.join(table.primary_key)})"
        text += f" Primary key `{pk}`."
    if table.partition_key:
        text += (
            f" On PostgreSQL partitioned by `{table.partition_key}` (one partition per date); on DuckDB"
            " without key or indexes, the key checked by each load."
        )
    lines = [head, "", text, "", "| column | type | nullable | description |", "|---|---|---|---|"]
    for name in table.columns:
        col = COLUMNS[name]
        nullable = "no" if not table.nullable(name) else "yes (never null)" if name in table.filled else "yes"
        desc = table.notes.get(name, col.description)
        if name in table.checked and col.constraint_text():
            desc += f" (checked: {col.constraint_text()})"
        elif col.values is not None and len(col.values) <= 4:  # a short domain: name it
            desc += ": " + " or ".join(", ".join(f"`{v}`" for v in col.values).rsplit(", ", 1))
        lines.append(f"| `{name}` | {_type_text(table, name)} | {nullable} | {desc} |")
    return [*lines, ""]


def columns_reference_markdown() -> str:
    """The warehouse tables' and Parquet files' columns (name, type, nullable, description, the
    constraints a suite checks) as markdown, for docs/reference.md's generated columns block."""
    lines: list[str] = []
    for table in (*WAREHOUSE_TABLES, EVENTS_FILE, MANIFEST, QUARANTINE_FILE):
        lines += _table_markdown(table)
    return "\n".join(lines).rstrip() + "\n"
