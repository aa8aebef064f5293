"""The run folder ``runs/date=D/run=<run_id>/``: one typed record per stage, each written once.

Every stage of a run writes its own record, under its own key, and never touches another
stage's record (the README's storage layout names the public ones):

================  ==============================================  ========================
stage             key (in the run folder unless noted)            record
================  ==============================================  ========================
discover          ``records/discover.json``                       :class:`DiscoverRecord`
validate_manifest ``records/validate_manifest.json``              :class:`ManifestValidationRecord`
infer             ``infer.json`` (+ ``metrics.json``)             :class:`InferRecord`
validate_events   ``events_validation.json``                      :class:`ValidationRecord`
publish           ``records/publish.json``                        :class:`PublishRecord`
cost              ``cost.json`` (+ ``reports/.../cost.html``)     :class:`CostRecord`
quality           ``reports/date=D/run=<run_id>/quality.json``    :class:`QualityRecord`
================  ==============================================  ========================

The run's summary (``summary.json``, the ``actrec run --json`` object) is assembled from those
records by :meth:`RunFolder.summary`; its ``stages`` names exactly the stages that have a record.
``summary.json`` is that assembly written out, never patched: the publish stage writes it first,
then the last of cost and quality to finish writes it again. Each of those two writes its own
record before it looks for the other's, so whichever looks second sees both, and every write
after both records exist has the same content. ``actrec run`` writes it once more at its end,
with its own wall time.

The staged events (``staging/date=D/run=<run_id>/events.parquet``) are the run's too: read and
written here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from actrec_batch import layout
from actrec_batch.storage import ObjectStore

R = TypeVar("R", bound="Record")


@dataclass(frozen=True)
class Record:
    """A JSON document of one run: its fields are its JSON keys, in order, starting with the
    run's id and logical date."""

    STAGE: ClassVar[str | None] = None  # the stage that writes it (None: not a stage's record)
    NAME: ClassVar[str]  # key relative to the run folder
    IN_REPORTS: ClassVar[bool] = False  # under reports/date=D/run=<id>/ instead

    run_id: str
    logical_date: str  # YYYY-MM-DD

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any]) -> R:
        """The record of ``data``; keys it does not declare are ignored, missing ones defaulted."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class DiscoverRecord(Record):
    STAGE = "discover"
    NAME = "records/discover.json"

    videos_discovered: int
    videos_manifested: int
    videos_quarantined: int
    manifest_uri: str | None = None
    quarantine_uri: str | None = None
    wall_s: float = 0.0
    io: dict[str, int] | None = None  # the stage's store bytes and requests (storage.io_counts)


@dataclass(frozen=True)
class ManifestValidationRecord(Record):
    STAGE = "validate_manifest"
    NAME = "records/validate_manifest.json"

    videos: int
    docs_uri: str | None
    summary: Any = None
    wall_s: float = 0.0
    io: dict[str, int] | None = None


@dataclass(frozen=True)
class InferRecord(Record):
    """``infer.json``: the job's counters (``JobResult.to_json()``) and the model's identity, which
    validation, publishing and quality read."""

    STAGE = "infer"
    NAME = "infer.json"

    model: str
    videos_manifested: int = 0
    videos_processed: int = 0
    videos_quarantined: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    units_total: int = 0
    units_skipped_checkpoint: int = 0
    units_computed: int = 0
    frames_decoded: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_corrupt: int = 0
    retries: int = 0
    events: int = 0
    video_seconds: float = 0.0
    wall_s: float = 0.0
    video_s_per_wall_s: float = 0.0
    ray_used: bool = False
    staging_uri: str | None = None
    metrics_uri: str | None = None
    model_name: str = ""
    model_version: str = ""
    model_labels: list[str] = field(default_factory=list)
    model_sha256: str | None = None
    extractor_id: str | None = None
    chaining: dict[str, Any] | None = None  # how files were chained (quality scores on the same chains)


@dataclass(frozen=True)
class MetricsDocument(Record):
    """``metrics.json``: per unit and per resource (the cost ledger prices ``resources``)."""

    NAME = "metrics.json"

    model: str
    segment_s: float
    units: list[dict[str, Any]]
    index: list[dict[str, Any]]
    resources: dict[str, Any]
    ray: dict[str, Any]


@dataclass(frozen=True)
class ValidationRecord(Record):
    """``events_validation.json``: the events suite's outcome for exactly the staged bytes."""

    STAGE = "validate_events"
    NAME = "events_validation.json"

    staged_sha256: str
    rows: int
    success: bool = False
    summary: Any = None
    docs_uri: str | None = None
    wall_s: float = 0.0
    io: dict[str, int] | None = None


@dataclass(frozen=True)
class PublishRecord(Record):
    """What publishing did, and the run's reconciliation: discovered = processed + quarantined."""

    STAGE = "publish"
    NAME = "records/publish.json"

    status: str
    videos_discovered: int
    videos_quarantined: int
    quarantine: list[dict[str, Any]]  # {uri, reason, stage}: discovery's and inference's
    events_uri: str
    events: int  # rows of the date's file for this model version (all cameras)
    videos: int  # the date's rows in the warehouse's videos ...
    quarantined: int  # ... and quarantine tables
    model_name: str
    model_version: str
    docs_uri: str | None
    cameras: list[str]
    started_at: str | None
    wall_s: float
    code_version: str
    error: str | None = None  # why the run failed (its reconciliation), or None
    publish_s: float = 0.0  # the publish stage's own wall time (Parquet + warehouse)
    io: dict[str, int] | None = None  # the publish stage's store bytes and requests


@dataclass(frozen=True)
class CostRecord(Record):
    """``cost.json``: the run's priced ledger (also the ``job_costs`` rows)."""

    STAGE = "cost"
    NAME = "cost.json"

    cost_usd: float
    video_hours: float
    usd_per_video_hour: float | None
    rows: list[dict[str, Any]]
    prices: dict[str, Any]
    # from the pricing catalogue (absent when priced by the deprecated per-hour rates)
    usd_per_1k_inferences: float | None = None
    inferences: int = 0  # clips scored by the embedder in this run
    usage: list[dict[str, Any]] = field(default_factory=list)  # the job_cost_usage rows
    nodes: list[dict[str, Any]] = field(default_factory=list)  # node-hours per node, priced
    io: dict[str, int] | None = None
    wasted: dict[str, Any] | None = None
    markets: dict[str, float] | None = None  # the same hours priced all spot and all on demand
    priced_as: str | None = None  # how a run without instance types was priced, or None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QualityRecord(Record):
    """``quality.json`` (under the run's reports): event statistics, and F1 where truth exists."""

    STAGE = "quality"
    NAME = "quality.json"
    IN_REPORTS = True

    model: str
    events: dict[str, Any]
    evaluation: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None  # the drift report (actrec_batch.drift), with its page's URI


# Every stage's record, in pipeline order (the summary's ``stages`` follows it).
STAGE_RECORDS: tuple[type[Record], ...] = (
    DiscoverRecord,
    ManifestValidationRecord,
    InferRecord,
    ValidationRecord,
    PublishRecord,
    CostRecord,
    QualityRecord,
)
# The stages that run side by side after publishing; the last of them writes the summary.
FINAL_RECORDS: tuple[type[Record], ...] = (CostRecord, QualityRecord)
SUMMARY_NAME = "summary.json"
COST_PAGE_NAME = "cost.html"
QUALITY_PAGE_NAME = "quality.html"  # beside quality.json, under the run's reports


class RunFolder:
    """The records of one run ``run_id`` of ``date`` in ``store``."""

    def __init__(self, store: ObjectStore, date: dt.date, run_id: str) -> None:
        self.store, self.date, self.run_id = store, date, run_id
        self.prefix = layout.run_prefix(date, run_id)

    def __repr__(self) -> str:
        return f"RunFolder({self.store.uri(self.prefix)})"

    @classmethod
    def from_run_id(cls, store: ObjectStore, run_id: str) -> RunFolder:
        """The folder of ``run_id`` (run ids start with their logical date). Raises ValueError."""
        return cls(store, dt.date.fromisoformat(run_id[:10]), run_id)

    # ------------------------------------------------------------------ keys

    def key(self, what: type[Record] | str) -> str:
        """The store key of a record type, or of a file ``name`` in the run folder."""
        if isinstance(what, str):
            return self.prefix + what
        if what.IN_REPORTS:
            return layout.run_report_prefix(self.date, self.run_id) + what.NAME
        return self.prefix + what.NAME

    def uri(self, what: type[Record] | str) -> str:
        return self.store.uri(self.key(what))

    @property
    def summary_key(self) -> str:
        return self.key(SUMMARY_NAME)

    @property
    def cost_page_key(self) -> str:
        """``reports/date=D/run=<id>/cost.html``: the run's cost report."""
        return layout.cost_report_key(self.date, self.run_id)

    @property
    def staging_key(self) -> str:
        return layout.staging_events_key(self.date, self.run_id)

    # --------------------------------------------------------------- records

    def write(self, record: Record) -> str:
        """Write ``record`` at its key (one atomic put); return its URI."""
        key = self.key(type(record))
        self.store.put_bytes(key, _dumps(record.to_json()))
        return self.store.uri(key)

    def read(self, kind: type[R]) -> R:
        """The run's record of type ``kind``. Raises StorageError ``not_found``."""
        return kind.from_json(json.loads(self.store.get_bytes(self.key(kind))))

    def get(self, kind: type[R]) -> R | None:
        """The run's record of type ``kind``, or None when that stage has not written it."""
        return self.read(kind) if self.has(kind) else None

    def has(self, kind: type[Record]) -> bool:
        return self.store.exists(self.key(kind))

    def stages(self) -> list[str]:
        """The stages that have written their record, in pipeline order."""
        return [str(kind.STAGE) for kind in STAGE_RECORDS if self.has(kind)]

    def write_page(self, name: str, html: str, *, in_reports: bool = False) -> str:
        """A human-facing page beside the records (``cost.html``), or with ``in_reports`` beside
        the run's reports (``quality.html``); returns its URI."""
        key = layout.run_report_prefix(self.date, self.run_id) + name if in_reports else self.key(name)
        self.store.put_bytes(key, html.encode())
        return self.store.uri(key)

    # ------------------------------------------------------------- the summary

    def summary(self, wall_s: float | None = None) -> dict[str, Any]:
        """The run's summary (docs/reference.md#summaryjson: the ``actrec run --json`` keys), assembled from its records.

        Needs the infer and publish records (StorageError ``not_found`` otherwise). ``cost_usd`` is
        null until the cost record exists; ``quality_uri`` and ``f1`` appear with the quality record.
        ``wall_s``: the whole run's wall time (default: the one recorded at publishing).
        """
        infer, published = self.read(InferRecord), self.read(PublishRecord)
        cost, quality = self.get(CostRecord), self.get(QualityRecord)
        wall = round(wall_s if wall_s is not None else published.wall_s, 3)
        summary = {k: v for k, v in infer.to_json().items() if k != "model_labels"}
        summary.update(
            status=published.status,
            videos_discovered=published.videos_discovered,
            videos_quarantined=published.videos_quarantined,
            quarantine=published.quarantine,
            wall_s=wall,
            infer_wall_s=infer.wall_s,
            cost_usd=cost.cost_usd if cost else None,
            stages=self.stages(),
            events_uri=published.events_uri,
            docs_uri=published.docs_uri,
            warehouse_videos=published.videos,
            warehouse_quarantine=published.quarantined,
            code_version=published.code_version,
        )
        summary["video_s_per_wall_s"] = round(infer.video_seconds / max(wall, 1e-9), 2)
        if published.error is not None:
            summary["error"] = published.error
        if quality is not None:
            summary.update(quality_uri=self.uri(QualityRecord), f1=(quality.evaluation or {}).get("f1"))
        return summary

    def write_summary(self, wall_s: float | None = None) -> dict[str, Any]:
        """Assemble the summary and write it to ``summary.json``; return it."""
        summary = self.summary(wall_s)
        self.store.put_bytes(self.summary_key, _dumps(summary))
        return summary

    def write_summary_if_complete(self) -> dict[str, Any] | None:
        """Write ``summary.json`` when every final stage (cost, quality) has its record (see the
        module doc for why concurrent callers cannot lose one); return it, or None."""
        if all(self.has(kind) for kind in FINAL_RECORDS):
            return self.write_summary()
        return None

    def stored_summary(self) -> dict[str, Any]:
        """``summary.json`` as written (StorageError ``not_found`` when it was not)."""
        return json.loads(self.store.get_bytes(self.summary_key))

    def status_and_model(self) -> tuple[str | None, str | None]:
        """The run's ``status`` and ``NAME@VERSION``, (None, None) before it was published."""
        if not self.has(PublishRecord):
            return None, None
        published = self.read(PublishRecord)
        return published.status, f"{published.model_name}@{published.model_version}"

    # ---------------------------------------------------------- staged events

    def write_staged_events(self, table: Any) -> str:
        """The run's events (an Arrow table) to staging, zstd Parquet in one put; returns the URI."""
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        self.store.put_bytes(self.staging_key, buf.getvalue())
        return self.store.uri(self.staging_key)

    def read_staged_events(self) -> tuple[Any, str]:
        """The staged events as an Arrow table, and the sha256 of exactly those bytes."""
        import pyarrow.parquet as pq

        data = self.store.get_bytes(self.staging_key)
        return pq.ParquetFile(io.BytesIO(data)).read(), hashlib.sha256(data).hexdigest()


def latest_priced_run(store: ObjectStore, date: dt.date) -> RunFolder | None:
    """The run of ``date`` whose cost record was written last, or None when none was priced."""
    return latest_run_with(store, date, CostRecord)


def latest_run_with(store: ObjectStore, date: dt.date, kind: type[Record]) -> RunFolder | None:
    """The run of ``date`` whose ``kind`` record was written last, or None when none has one."""
    suffix = "/" + kind.NAME
    prefix = layout.report_prefix(date) if kind.IN_REPORTS else layout.runs_prefix(date)
    found = [o for o in store.list(prefix) if o.key.endswith(suffix) and "/run=" in o.key]
    if not found:
        return None
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    key = max(found, key=lambda o: (o.last_modified or epoch, o.key)).key
    run_id = key.removesuffix(suffix).rsplit("/run=", 1)[1]
    return RunFolder(store, date, run_id)


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, default=str).encode()
