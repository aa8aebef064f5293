"""A run's events after inference: validated, then published to Parquet and the warehouse.

Staging holds one Parquet file per run (``staging/date=D/run=<run_id>/events.parquet``) with
lineage on every row: ``run_id``, model name, version and weights sha256, extractor id, the
video's content id and the code version.

1. :func:`validate_run` runs the Great Expectations events suite over the staged rows (with each
   video's duration from the manifest), writes Data Docs HTML to
   ``reports/date=D/run=<run_id>/data_docs/`` and a validation record beside the run's metrics.
   A failure raises ``ValidationFailed`` naming the failing expectations; nothing is published.
2. :func:`publish_run` refuses a run without a passing record for exactly the staged bytes, then,
   in one warehouse transaction that owns the date, builds the date's file for that model version
   (a ``--camera`` run keeps the other cameras' rows), loads it into ``action_events``, replaces
   the date's ``videos`` and ``quarantine`` rows, makes the version current, and writes
   ``events/date=D/events-<name>-<version>.parquet`` with one atomic put. A reader of the
   Hive-partitioned dataset sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actrec_batch import layout, tables
from actrec_batch.errors import QuarantineStage, ValidationFailed
from actrec_batch.manifest import read_manifest, read_quarantine
from actrec_batch.runs import InferRecord, RunFolder, ValidationRecord
from actrec_batch.storage import ObjectStore
from actrec_batch.storage.io_counts import IO, io_delta

log = logging.getLogger(__name__)

STAGED_EVENTS_SCHEMA = tables.EVENTS_FILE.arrow_schema()
# The published events file: the staged columns without run_id (the last one).
EVENTS_SCHEMA = STAGED_EVENTS_SCHEMA.remove(STAGED_EVENTS_SCHEMA.get_field_index("run_id"))


def events_key(date: dt.date, model_id: str) -> str:
    name, _, version = model_id.partition("@")
    return f"events/date={date.isoformat()}/events-{name}-{version}.parquet"


# Sorted so that a camera's or a video's events are contiguous (row-group statistics then prune
# camera and time filters); row groups of 128k rows keep the footer small and scans parallel.
SORT_KEYS = [
    ("camera_id", "ascending"),
    ("video_key", "ascending"),
    ("start_s", "ascending"),
    ("label", "ascending"),
]
ROW_GROUP_ROWS = 128 * 1024
QUARANTINE_STAGES = tuple(QuarantineStage)


def data_docs_prefix(date: dt.date, run_id: str) -> str:
    return layout.run_report_prefix(date, run_id) + "data_docs/"


# ---------------------------------------------------------------- validation


def validate_run(store: ObjectStore, date: dt.date, run_id: str) -> dict[str, Any]:
    """Validate the staged events of ``run_id``; write the record and Data Docs; return the record.

    Raises ``ValidationFailed`` (after writing both) when an expectation fails.
    """
    from actrec_batch.expectations import validate_events

    t0, io0 = time.perf_counter(), IO.snapshot()
    folder = RunFolder(store, date, run_id)
    infer = folder.read(InferRecord)
    table, sha = folder.read_staged_events()
    durations = {
        r["video_id"]: r["duration_s"]
        for r in read_manifest(store, date).select(["video_id", "duration_s"]).to_pylist()
    }
    df = table.to_pandas()
    df["video_duration_s"] = df["video_id"].map(durations).astype("float64")
    df["end_video_duration_s"] = df["end_video_id"].map(durations).astype("float64")
    with tempfile.TemporaryDirectory(prefix="actrec-docs-") as tmp:
        try:
            result = validate_events(df, date, infer.model_labels, docs_dir=Path(tmp))
            success, summary, docs_index, failure = True, result.summary(), result.docs_index, None
        except ValidationFailed as exc:
            success, summary, docs_index, failure = False, str(exc), getattr(exc, "docs_index", None), exc
        docs_uri = upload_data_docs(store, Path(tmp), docs_index, data_docs_prefix(date, run_id))
    record = ValidationRecord(
        run_id,
        date.isoformat(),
        sha,
        table.num_rows,
        success,
        summary,
        docs_uri,
        wall_s=round(time.perf_counter() - t0, 3),
        io=io_delta(io0),
    )
    folder.write(record)
    if failure is not None:
        message = str(failure)
        if docs_index and docs_uri:  # the temporary directory is gone; name the store's copy
            message = message.replace(docs_index, docs_uri)
        raise ValidationFailed(f"{message}. Nothing was published for run {run_id}") from None
    log.info("events of run %s for %s: %s; Data Docs: %s", run_id, date, summary, docs_uri)
    return record.to_json()


def upload_data_docs(store: ObjectStore, root: Path, index: str | None, prefix: str) -> str | None:
    """Copy the Data Docs site under ``root`` to ``prefix`` in the store; return the index's URI."""
    if not index:
        return None
    store.delete_prefix(prefix)  # a rerun of the same run id replaces its docs, never mixes them
    site = Path(index).parent
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        store.put_bytes(prefix + path.relative_to(site).as_posix(), path.read_bytes())
    return store.uri(prefix + Path(index).name)


# ---------------------------------------------------------------- publishing


@dataclass(frozen=True)
class Published:
    events_uri: str
    events: int  # rows of the date's file for this model version (all cameras)
    videos: int
    quarantined: int
    model_name: str
    model_version: str
    docs_uri: str | None
    publish_s: float = 0.0
    io: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def publish_run(
    store: ObjectStore, warehouse: Any, date: dt.date, run_id: str, cameras: tuple[str, ...] = ()
) -> Published:
    """Publish the validated run ``run_id`` of ``date`` to Parquet and the warehouse (see module doc).

    Raises ``ValidationFailed`` (reason ``not_validated``) for a run whose staged events have no
    passing validation record; the previous partition and rows are then untouched.
    """
    folder = RunFolder(store, date, run_id)
    infer = folder.read(InferRecord)
    name, version = infer.model_name, infer.model_version
    staged, sha = folder.read_staged_events()
    record = folder.get(ValidationRecord)
    if not (record is not None and record.success and record.staged_sha256 == sha):
        raise ValidationFailed(
            f"events of run {run_id} for {date.isoformat()} have not passed validation "
            f"({record.summary if record else 'no validation record'}); nothing was published. "
            "Fix: validate the run first (actrec run does), or rerun the date",
            reason="not_validated",
        )
    key = events_key(date, f"{name}@{version}")
    videos, quarantine = _date_inventory(store, date, run_id)
    with warehouse.date_load(date) as load:
        table = _date_events(store, key, staged, cameras)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        data = buf.getvalue()
        with tempfile.TemporaryDirectory(prefix="actrec-publish-") as tmp:
            local = Path(tmp) / "events.parquet"
            local.write_bytes(data)
            load.replace_events(name, version, table, parquet_path=local)
        load.replace_videos(videos)
        load.replace_quarantine(quarantine)
        load.activate(name, version, run_id, dt.datetime.now(dt.UTC))
        # Last, inside the transaction: if the put fails, the warehouse rolls back with it.
        store.put_bytes(key, data)
    return Published(
        events_uri=store.uri(key),
        events=table.num_rows,
        videos=len(videos),
        quarantined=len(quarantine),
        model_name=name,
        model_version=version,
        docs_uri=record.docs_uri,
    )


def _date_events(store: ObjectStore, key: str, staged: pa.Table, cameras: tuple[str, ...]) -> pa.Table:
    """The date's rows for the staged model version: the staged rows, plus, for a run over some
    ``cameras``, the published rows of the other cameras. Sorted by :data:`SORT_KEYS`."""
    staged = staged.select(STAGED_EVENTS_SCHEMA.names).cast(STAGED_EVENTS_SCHEMA)
    if cameras and store.exists(key):
        old = with_event_ends(pq.ParquetFile(io.BytesIO(store.get_bytes(key))).read())
        keep = pc.invert(pc.is_in(old.column("camera_id"), value_set=pa.array(list(cameras), pa.string())))
        staged = pa.concat_tables(
            [old.filter(keep).select(STAGED_EVENTS_SCHEMA.names).cast(STAGED_EVENTS_SCHEMA), staged]
        )
    return staged.sort_by(SORT_KEYS)


def with_event_ends(table: pa.Table) -> pa.Table:
    """``table`` with ``end_video_id`` and ``end_offset_s``, which events published before chains
    lack: each such event ends in its own video, at ``end_s``."""
    if "end_video_id" not in table.column_names:
        table = table.append_column("end_video_id", table.column("video_id"))
    if "end_offset_s" not in table.column_names:
        table = table.append_column("end_offset_s", table.column("end_s"))
    return table


def _date_inventory(store: ObjectStore, date: dt.date, run_id: str) -> tuple[list[dict], list[dict]]:
    """The date's processed videos (manifest minus what inference quarantined) and every
    quarantine record, as ``videos`` and ``quarantine`` rows. Both files always describe the whole
    date, so a ``--camera`` run still replaces the date's rows consistently."""
    records = []
    for stage in QUARANTINE_STAGES:
        key = layout.quarantine_key(date, stage)
        if store.exists(key):
            records += [{**r, "stage": stage} for r in read_quarantine(store, date, stage).to_pylist()]
    quarantined_uris = {r["uri"] for r in records}
    videos = [
        {**row, "recorded_at": row["creation_time"], "run_id": run_id}
        for row in read_manifest(store, date).to_pylist()
        if row["uri"] not in quarantined_uris
    ]
    quarantine = [{**r, "run_id": run_id, "camera_id": layout.camera_of(r["key"], date)} for r in records]
    return videos, quarantine
