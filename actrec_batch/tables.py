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

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa

from actrec_batch.errors import QuarantineReason, QuarantineStage, RunStatus


class Kind(Enum):
    """A column's type: ``(Arrow type, SQL type name, what the docs call it)``. A ``DATE`` is an
    ISO ``YYYY-MM-DD`` string in Parquet and a ``DATE`` in the warehouse."""

    STRING = ("string", "String", "string")
    DATE = ("string", "Date", "date")
    FLOAT = ("float64", "Double", "float64")
    INT32 = ("int32", "Integer", "int32")
    INT64 = ("int64", "BigInteger", "int64")
    BOOL = ("bool", "Boolean", "bool")
    TIMESTAMP = ("timestamp", "DateTime", "timestamp (UTC)")

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


S, D, F, I32, I64, B, TS = (
    Kind.STRING,
    Kind.DATE,
    Kind.FLOAT,
    Kind.INT32,
    Kind.INT64,
    Kind.BOOL,
    Kind.TIMESTAMP,
)
# Any name a footage folder can have (storage/keys.py): Unicode and spaces included, no "/",
# backslash or control characters. A narrower rule failed a whole date.
CAMERA_ID_REGEX = r"^[^/\\\x00-\x1f\x7f]+$"
_SHA256_REGEX = r"^[0-9a-f]{64}$"

# fmt: off
COLUMNS: dict[str, Column] = {
    # identity and lineage
    "run_id": Column(S, "The pipeline run that wrote the row.", 64),
    "logical_date": Column(D, "The footage date (`YYYY-MM-DD`) the row belongs to."),
    "video_id": Column(S, "Stable id of a video: a hash of its key (the same across reruns and store roots).", 64),
    "uri": Column(S, "The video's (or quarantined object's) URI in the store.", 2048),
    "key": Column(S, "The object's key relative to the store root."),
    "camera_id": Column(S, "The camera: the `camera=<id>` folder of the footage.", 256, regex=CAMERA_ID_REGEX),
    "content_id": Column(S, "Hash of the video's content (see `content_id_method`).", 64, regex=_SHA256_REGEX),
    "content_id_method": Column(S, "How `content_id` was computed.", values=("sha256", "fast")),
    # probed video properties
    "size_bytes": Column(I64, "The object's size in bytes.", min=1),
    "etag": Column(S, "The store's ETag of the object, when it has one."),
    "container": Column(S, "Container format, as PyAV names it.", 64),
    "codec": Column(S, "Video codec.", 32),
    "width": Column(I32, "Coded frame width in pixels.", min=16, max=16384),
    "height": Column(I32, "Coded frame height in pixels.", min=16, max=16384),
    "display_width": Column(I32, "Frame width after rotation."),
    "display_height": Column(I32, "Frame height after rotation."),
    "fps": Column(F, "Frames per second (the average, for variable frame rate).", min=1.0, max=300.0),
    "fps_mode": Column(S, "Whether frames are evenly spaced.", values=("constant", "variable")),
    "duration_s": Column(F, "Duration in seconds.", min=0.0, strict_min=True, max=7 * 86400.0),
    "frame_count": Column(I64, "Number of frames (estimated unless `frame_count_exact`).", min=1),
    "frame_count_exact": Column(B, "Whether `frame_count` was counted, not estimated."),
    "rotation": Column(I32, "Display rotation in degrees.", values=(0, 90, 180, 270)),
    "creation_time": Column(TS, "The container's creation time, when it has one."),
    "recorded_at": Column(TS, "The container's creation time, when it has one (`creation_time`)."),
    "has_audio": Column(B, "Whether the file has an audio stream."),
    "labels_key": Column(S, "Key of the ground-truth sidecar beside the video, if any."),
    "probe_bytes_read": Column(I64, "Bytes the probe read."),
    # quarantine
    "stage": Column(S, "The stage that quarantined the object.", 32, values=tuple(QuarantineStage)),
    "reason": Column(S, "Why it was quarantined: a short code.", 64, values=tuple(QuarantineReason)),
    "detail": Column(S, "One line saying what was wrong.", 2048),
    # events
    "event_id": Column(S, "Deterministic event id (the same for a rerun of the same model).", 64),
    "video_key": Column(S, "Store key of the video the event starts in."),
    "label": Column(S, "The action, from the model's label map.", 64),
    "start_s": Column(F, "Start, in seconds from the start of `video_id`.", min=0.0),
    "end_s": Column(F, "End (exclusive), in seconds from the start of `video_id`.", above=("start_s", False)),
    "start_ts": Column(TS, "Wall-clock start, when the recording's start is known; else null."),
    "end_ts": Column(TS, "Wall-clock end, when the recording's start is known; else null."),
    "confidence": Column(F, "Mean smoothed score over the event.", min=0.0, max=1.0),
    "model_name": Column(S, "The model's name.", 128),
    "model_version": Column(S, "The model's version.", 64),
    "model_sha256": Column(S, "SHA-256 of the model's weights.", 64),
    "extractor_id": Column(S, "The feature extractor's id (name@version).", 128),
    "code_version": Column(S, "The actrec-batch version that wrote the row.", 64),
    "end_video_id": Column(S, "The video the event ends in (`video_id` unless it spans files).", 64),
    "end_offset_s": Column(F, "End, in seconds from the start of `end_video_id`.", min=0.0, strict_min=True),
    "video_duration_s": Column(F, "Duration of `video_id` (joined from the manifest).", above=("start_s", False)),
    "end_video_duration_s": Column(
        F, "Duration of `end_video_id` (joined from the manifest).", above=("end_offset_s", True)
    ),
    # runs
    "status": Column(S, "The run's outcome.", 16, values=tuple(RunStatus)),
    "started_at": Column(TS, "When the run started."),
    "finished_at": Column(TS, "When the run finished (or failed)."),
    "cameras": Column(S, "Comma-separated cameras, when the run was limited to some.", 1024),
    "videos_discovered": Column(I32, "Videos discovered (= processed + quarantined)."),
    "videos_processed": Column(I32, "Videos processed."),
    "videos_quarantined": Column(I32, "Videos quarantined, by any stage."),
    "events": Column(I32, "Events written."),
    "video_seconds": Column(F, "Seconds of video processed."),
    "wall_s": Column(F, "Wall-clock seconds the run took."),
    "events_uri": Column(S, "The published events Parquet file.", 2048),
    "docs_uri": Column(S, "The run's Data Docs index.", 2048),
    "error": Column(S, "A failed run's error.", 2048),
    "activated_at": Column(TS, "When the version was made current."),
    # costs
    "component": Column(S, "What used the resource (e.g. `decode`, `embed`).", 64),
    "resource": Column(S, "The resource (e.g. `cpu`, `gpu`).", 64),
    "quantity": Column(F, "How much of it, in `unit`."),
    "unit": Column(S, "The unit of `quantity` (e.g. `cpu_s`).", 32),
    "unit_price_usd": Column(F, "Price of one unit, in USD."),
    "pricing": Column(S, "The price list used.", 16, values=("spot", "on_demand")),
    "cost_usd": Column(F, "Cost in USD (a run's total in `runs`, one line's in `job_costs`)."),
}
# fmt: on


@dataclass(frozen=True)
class Table:
    """A table: ``columns`` in stored order; ``not_null`` the columns that are never null
    (``"*"``: all); ``checked`` the columns whose constraints its suite checks; ``unique``,
    ``primary_key`` (with ``pk_name`` when named) and ``indexes`` (``(name, columns)``)."""

    name: str
    description: str
    columns: tuple[str, ...]
    not_null: tuple[str, ...] = ()
    primary_key: tuple[str, ...] = ()
    pk_name: str | None = None
    unique: tuple[str, ...] = ()
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    checked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        named = {*self.not_null, *self.primary_key, *self.unique, *self.checked}
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


def _pick(columns: tuple[str, ...], drop: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in columns if c not in drop)


# ------------------------------------------------------------------------- Parquet files

MANIFEST = Table(
    "manifest",
    "`manifests/date=D/manifest.parquet`: one probed, readable video per row.",
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

QUARANTINE_FILE = Table(
    "quarantine file",
    "`quarantine/date=D/<stage>.parquet`: the objects a stage could not process.",
    ("uri", "key", "logical_date", "stage", "reason", "detail", "size_bytes"),
    not_null=("uri", "key", "logical_date", "stage", "reason"),
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

EVENTS_FILE = Table(
    "events",
    "`staging/date=D/run=R/events.parquet`, published as `events/date=D/events-<model>-<version>.parquet`.",
    _EVENT_FILE_COLUMNS,
    not_null=_EVENT_REQUIRED,
    unique=("event_id",),
)

EVENTS_VALIDATED = Table(
    "events (validated)",
    "The staged events as the events suite sees them: with the durations of the videos they start "
    "and end in joined from the manifest.",
    (*_pick(_EVENT_FILE_COLUMNS, ("end_video_id", "end_offset_s", "run_id")), "run_id", "end_video_id",
     "end_offset_s", "video_duration_s", "end_video_duration_s"),
    not_null=_EVENT_REQUIRED,
    unique=("event_id",),
    checked=("confidence", "start_s", "end_s", "video_duration_s", "end_offset_s", "end_video_duration_s"),
)  # fmt: skip

# ------------------------------------------------------------------------- warehouse tables

RUNS = Table(
    "runs",
    "One row per pipeline run, a failed one too (a history: a rerun adds its own row).",
    (
        "run_id", "logical_date", "status", "started_at", "finished_at", "model_name", "model_version",
        "model_sha256", "extractor_id", "code_version", "cameras", "videos_discovered", "videos_processed",
        "videos_quarantined", "events", "video_seconds", "wall_s", "cost_usd", "events_uri", "docs_uri", "error",
    ),
    not_null=("logical_date", "status"),
    primary_key=("run_id",),
)  # fmt: skip

VIDEOS = Table(
    "videos",
    "The processed videos of each date (replaced per date on every publish).",
    (
        "video_id", "uri", "content_id", "camera_id", "logical_date", "duration_s", "fps", "width", "height",
        "codec", "size_bytes", "container", "recorded_at", "run_id",
    ),
    not_null=("uri", "content_id", "camera_id", "logical_date", "duration_s"),
    primary_key=("video_id",),
    indexes=(("ix_videos_date_camera", ("logical_date", "camera_id")),),
)  # fmt: skip

QUARANTINE = Table(
    "quarantine",
    "What could not be processed, with a reason code (replaced per date).",
    ("run_id", "logical_date", "uri", "reason", "detail", "stage", "camera_id", "size_bytes"),
    not_null=("logical_date", "uri", "reason", "stage"),
    primary_key=("logical_date", "uri", "stage"),
    pk_name="pk_quarantine",
)

ACTION_EVENTS = Table(
    "action_events",
    "Events per (date, model name, model version), with lineage on every row. `end_video_id` and "
    "`end_offset_s` are never null, though nullable (migration 0002).",
    (
        "event_id", "run_id", "video_id", "camera_id", "logical_date", "label", "start_s", "end_s",
        "start_ts", "end_ts", "confidence", "model_name", "model_version", "model_sha256", "extractor_id",
        "content_id", "code_version", "uri", "end_video_id", "end_offset_s",
    ),
    not_null=(
        "run_id", "video_id", "camera_id", "logical_date", "label", "start_s", "end_s", "confidence",
        "model_name", "model_version", "model_sha256", "extractor_id", "content_id", "code_version", "uri",
    ),
    primary_key=("event_id",),
    indexes=(
        ("ix_action_events_label_ts", ("label", "start_ts")),
        ("ix_action_events_camera_ts", ("camera_id", "start_ts")),
        ("ix_action_events_date_model", ("logical_date", "model_name", "model_version")),
    ),
)  # fmt: skip

ACTIVE_MODELS = Table(
    "active_models",
    "Which model version `current_action_events` shows for each date.",
    ("logical_date", "model_name", "model_version", "run_id", "activated_at"),
    not_null=("*",),
    primary_key=("logical_date",),
)

JOB_COSTS = Table(
    "job_costs",
    "The cost ledger of each run (filled by the cost stage).",
    ("run_id", "component", "resource", "quantity", "unit", "unit_price_usd", "pricing", "cost_usd"),
    not_null=("*",),
    primary_key=("run_id", "component", "resource", "pricing"),
    pk_name="pk_job_costs",
)

WAREHOUSE_TABLES = (RUNS, VIDEOS, QUARANTINE, ACTION_EVENTS, ACTIVE_MODELS, JOB_COSTS)

# What `actrec search` returns of `current_action_events`, in output order.
SEARCH_COLUMNS = (
    "event_id", "logical_date", "camera_id", "label", "start_s", "end_s", "start_ts", "end_ts",
    "confidence", "video_id", "uri", "model_name", "model_version", "run_id",
)  # fmt: skip
if not set(SEARCH_COLUMNS) <= set(ACTION_EVENTS.columns):
    raise ValueError(
        f"SEARCH_COLUMNS {sorted(set(SEARCH_COLUMNS) - set(ACTION_EVENTS.columns))} not in action_events"
    )


def _table_markdown(table: Table, sql: bool) -> list[str]:
    kind = "warehouse table" if sql else "Parquet file"
    lines = [f"#### `{table.name}` ({kind})", "", table.description, ""]
    keys = []
    if table.primary_key:
        keys.append("primary key (" + ", ".join(table.primary_key) + ")")
    keys += [f"unique {c}" for c in table.unique]
    keys += [f"index {n} (" + ", ".join(cols) + ")" for n, cols in table.indexes]
    if keys:
        lines += ["Keys: " + "; ".join(keys) + ".", ""]
    lines += ["| column | type | nullable | description |", "|---|---|---|---|"]
    for name in table.columns:
        col = COLUMNS[name]
        typ = col.kind.value[2] + (f"({col.length})" if sql and col.length else "")
        desc = col.description
        if name in table.checked and col.constraint_text():
            desc += f" Checked: {col.constraint_text()}."
        lines.append(f"| `{name}` | {typ} | {'yes' if table.nullable(name) else 'no'} | {desc} |")
    return [*lines, ""]


def columns_reference_markdown() -> str:
    """Markdown tables of every file's and warehouse table's columns (name, type, nullable,
    description, checked constraints), for docs/reference.md."""
    lines: list[str] = ["### Parquet files", ""]
    for table in (MANIFEST, QUARANTINE_FILE, EVENTS_FILE, EVENTS_VALIDATED):
        lines += _table_markdown(table, sql=False)
    lines += ["### Warehouse tables", ""]
    for table in WAREHOUSE_TABLES:
        lines += _table_markdown(table, sql=True)
    return "\n".join(lines).rstrip() + "\n"
