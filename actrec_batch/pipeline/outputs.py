"""The run's event table: its schema, and publishing a staged run to ``events/date=D/``.

Staging holds one Parquet file per run (``staging/date=D/run=<run_id>/events.parquet``) with
lineage on every row: ``run_id``, model name, version and weights sha256, extractor id and
version, the video's content id and the code version. Publishing copies a run's staged events to
the date's partition of the public dataset, replacing that model version's file atomically.
"""

from __future__ import annotations

import datetime as dt
import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actrec_batch import layout
from actrec_batch.inference import EVENTS_SCHEMA, events_key
from actrec_batch.storage import ObjectStore

STAGED_EVENTS_SCHEMA = EVENTS_SCHEMA.append(pa.field("run_id", pa.string()))


def publish_staged(
    store: ObjectStore, date: dt.date, run_id: str, model_id: str, cameras: tuple[str, ...] = ()
) -> str:
    """Copy the run's staged events to ``events/date=D/events-<name>-<version>.parquet`` (atomic
    replace of that model version's file) and return its URI. A run over some ``cameras`` replaces
    only those cameras' rows and keeps the others'."""
    data = store.get_bytes(layout.staging_events_key(date, run_id))
    key = events_key(date, model_id)
    if cameras and store.exists(key):
        staged = pq.ParquetFile(io.BytesIO(data)).read()
        old = pq.ParquetFile(io.BytesIO(store.get_bytes(key))).read()
        keep = pc.invert(pc.is_in(old.column("camera_id"), value_set=pa.array(list(cameras), pa.string())))
        merged = pa.concat_tables([old.filter(keep).select(staged.column_names).cast(staged.schema), staged])
        merged = merged.sort_by(
            [("video_key", "ascending"), ("start_s", "ascending"), ("label", "ascending")]
        )
        buf = io.BytesIO()
        pq.write_table(merged, buf, compression="zstd")
        data = buf.getvalue()
    store.put_bytes(key, data)
    return store.uri(key)
