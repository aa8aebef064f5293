"""The run's event table: its schema, and publishing a staged run to ``events/date=D/``.

Staging holds one Parquet file per run (``staging/date=D/run=<run_id>/events.parquet``) with
lineage on every row: ``run_id``, model name, version and weights sha256, extractor id and
version, the video's content id and the code version. Publishing copies a run's staged events to
the date's partition of the public dataset, replacing that model version's file atomically.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from actrec_batch import layout
from actrec_batch.inference import EVENTS_SCHEMA, events_key
from actrec_batch.storage import ObjectStore

STAGED_EVENTS_SCHEMA = EVENTS_SCHEMA.append(pa.field("run_id", pa.string()))


def publish_staged(store: ObjectStore, date: dt.date, run_id: str, model_id: str) -> str:
    """Copy the run's staged events to ``events/date=D/events-<name>-<version>.parquet`` (atomic
    replace of that model version's file) and return its URI."""
    data = store.get_bytes(layout.staging_events_key(date, run_id))
    key = events_key(date, model_id)
    store.put_bytes(key, data)
    return store.uri(key)
