"""The manifest and quarantine tables: their Parquet files (columns: :mod:`actrec_batch.tables`).

A manifest row is one probed, readable video of a logical date. A quarantine row is one
discovered object that cannot be processed, with a reason code. Both are written atomically
to the store, and a rerun of the date replaces them.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from actrec_batch import layout, tables
from actrec_batch.errors import QuarantineReason, QuarantineStage
from actrec_batch.storage import ObjectStore

MANIFEST_SCHEMA = tables.MANIFEST.arrow_schema()
QUARANTINE_SCHEMA = tables.QUARANTINE_FILE.arrow_schema()


@dataclass(frozen=True)
class QuarantineRecord:
    """One object that cannot be processed. ``reason`` is a :class:`QuarantineReason` code (a
    ``StrEnum``, so the plain string is accepted too); ``stage`` a :class:`QuarantineStage`."""

    uri: str
    key: str
    logical_date: str
    stage: QuarantineStage | str
    reason: QuarantineReason | str
    detail: str
    size_bytes: int | None = None

    @classmethod
    def for_video(
        cls, row: Mapping[str, Any], stage: QuarantineStage | str, reason: QuarantineReason | str, detail: str
    ) -> QuarantineRecord:
        """The record of a manifested video (a manifest row) that failed at ``stage``; ``detail`` is
        made one line of at most 500 characters."""
        return cls(
            uri=row["uri"],
            key=row["key"],
            logical_date=row["logical_date"],
            stage=stage,
            reason=reason,
            detail=" ".join(detail.split())[:500],
            size_bytes=row["size_bytes"],
        )


def _to_parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def manifest_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = sorted(rows, key=lambda r: r["key"])
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def quarantine_table(records: Iterable[QuarantineRecord]) -> pa.Table:
    rows = sorted((asdict(r) for r in records), key=lambda r: r["key"])
    return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)


def write_manifest(store: ObjectStore, date: dt.date, table: pa.Table) -> str:
    """Atomically replace the manifest of ``date``; returns its URI."""
    key = layout.manifest_key(date)
    store.put_bytes(key, _to_parquet_bytes(table))
    return store.uri(key)


def write_quarantine(
    store: ObjectStore, date: dt.date, stage: str, records: Iterable[QuarantineRecord]
) -> str:
    """Atomically replace the quarantine file of (``date``, ``stage``); returns its URI.

    An empty file is written when nothing is quarantined, so a rerun that fixed every input
    also clears the earlier records.
    """
    key = layout.quarantine_key(date, stage)
    store.put_bytes(key, _to_parquet_bytes(quarantine_table(records)))
    return store.uri(key)


def read_manifest(store: ObjectStore, date: dt.date) -> pa.Table:
    """The manifest of ``date``. Raises StorageError(reason='not_found') if discovery has not run."""
    return _read(store.get_bytes(layout.manifest_key(date)), MANIFEST_SCHEMA)


def read_quarantine(store: ObjectStore, date: dt.date, stage: str) -> pa.Table:
    return _read(store.get_bytes(layout.quarantine_key(date, stage)), QUARANTINE_SCHEMA)


def _read(data: bytes, schema: pa.Schema) -> pa.Table:
    # ParquetFile, not read_table: read_table imports pyarrow.dataset (and pandas), half a second
    # that a rescore over cached features would otherwise spend on imports.
    return pq.ParquetFile(io.BytesIO(data)).read(columns=schema.names).cast(schema)
