"""What :func:`~actrec_batch.evaluation.evaluate` compares: the ground-truth events of a date's
footage (its ``<video>.labels.json`` sidecars) and the published predictions (Parquet events, or any
Arrow table of them)."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actrec_batch import layout
from actrec_batch.errors import ActrecError
from actrec_batch.evaluation.metrics import GTEvent, PredEvent
from actrec_batch.storage import ObjectStore

PREDICTION_COLUMNS = {
    "video_key": pa.string(),
    "label": pa.string(),
    "start_s": pa.float64(),
    "end_s": pa.float64(),
    "confidence": pa.float64(),
}


# --- ground truth --------------------------------------------------------------------------------


def labelled_videos(store: ObjectStore, date: dt.date, *, videos: Iterable[str] | None = None) -> list[str]:
    """Store keys, sorted, of the videos of ``date`` (``footage/date=D/camera=C/<file>``) that have a
    ground-truth sidecar; with ``videos``, only those among them.

    Raises ``ActrecError(reason="no_ground_truth")`` when there are none.
    """
    prefix = layout.footage_prefix(date)
    keys = [
        obj.key[: -len(layout.SIDECAR_SUFFIX)]
        for obj in store.list(prefix)
        if layout.is_sidecar(obj.key) and layout.camera_of(obj.key, date) is not None
    ]
    if videos is not None:
        wanted = set(videos)
        keys = [k for k in keys if k in wanted]
    if not keys:
        among = "" if videos is None else " for the requested videos"
        raise ActrecError(
            f"no ground truth for {date.isoformat()}: no *{layout.SIDECAR_SUFFIX} sidecars{among} "
            f"under {store.uri(prefix)}",
            reason="no_ground_truth",
        )
    return sorted(keys)


def load_truth(store: ObjectStore, date: dt.date, *, videos: Iterable[str] | None = None) -> list[GTEvent]:
    """The ground-truth events of ``date`` from its footage's ``<video>.labels.json`` sidecars
    (docs/reference.md#object-store-layout), sorted by (video, start, end, label); ``GTEvent.video`` is the video's store key.
    ``videos`` restricts them to those video keys.

    Raises ``ActrecError`` with reason ``no_ground_truth`` when there are no sidecars, and
    ``bad_ground_truth`` (naming the sidecar) when one is not valid JSON of the contract's shape or
    has an event with a non-finite time or ``end_s <= start_s``.
    """
    events = []
    for video in labelled_videos(store, date, videos=videos):
        key = layout.sidecar_key(video)
        events += _parse_sidecar(video, store.get_bytes(key), store.uri(key))
    return sorted(events, key=lambda g: (g.video, g.start_s, g.end_s, g.label))


def _parse_sidecar(video: str, data: bytes, uri: str) -> list[GTEvent]:
    def bad(problem: str) -> ActrecError:
        return ActrecError(f"bad ground-truth sidecar {uri}: {problem}", reason="bad_ground_truth")

    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise bad('expected an object with an "events" list')
    events = []
    for i, ev in enumerate(doc["events"]):
        try:
            label, start, end = ev["label"], float(ev["start_s"]), float(ev["end_s"])
        except (TypeError, KeyError, ValueError):
            raise bad(f'event {i} needs "label", "start_s" and "end_s", got {ev!r}') from None
        if not isinstance(label, str) or not label:
            raise bad(f"event {i} has label {label!r}")
        if not (math.isfinite(start) and math.isfinite(end) and start < end):
            raise bad(f"event {i} has start_s={start}, end_s={end}; need finite times with start_s < end_s")
        events.append(GTEvent(video, label, start, end))
    return events


# --- predictions ---------------------------------------------------------------------------------


def _events_prefix(date: dt.date) -> str:
    return f"events/date={date.isoformat()}/"


def load_predictions_parquet(
    store: ObjectStore, date: dt.date, *, model_version: str | None = None
) -> list[PredEvent]:
    """The published events of ``date``: every ``*.parquet`` file under ``events/date=D/`` (Hive
    partition directories below it, such as ``model_version=v3/``, become columns), converted by
    :func:`predictions_from_table`.

    Raises ``ActrecError`` with reason ``no_events`` when there is no events file, ``bad_events``
    when a file is not Parquet or lacks a column, and ``ambiguous_model_version`` as described there.
    """
    prefix = _events_prefix(date)
    keys = [obj.key for obj in store.list(prefix) if obj.key.endswith(".parquet")]
    if not keys:
        raise ActrecError(
            f"no events for {date.isoformat()}: no Parquet files under {store.uri(prefix)}; "
            f"run `actrec run --date {date.isoformat()}` first",
            reason="no_events",
        )
    tables = []
    for key in keys:
        try:
            table = pq.read_table(io.BytesIO(store.get_bytes(key)))
        except (pa.ArrowException, OSError) as exc:
            raise ActrecError(f"bad events file {store.uri(key)}: {exc}", reason="bad_events") from None
        for part in key[len(prefix) :].split("/")[:-1]:
            name, eq, value = part.partition("=")
            if eq and name not in table.column_names:
                table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
        tables.append(_prediction_columns(table, store.uri(key)))
    return predictions_from_table(
        pa.concat_tables(tables), source=store.uri(prefix), model_version=model_version
    )


def _prediction_columns(table: pa.Table, source: str) -> pa.Table:
    """``table`` reduced to the prediction columns, with their types; ``model_version`` null if absent."""
    missing = sorted(set(PREDICTION_COLUMNS) - set(table.column_names))
    if missing:
        raise ActrecError(f"events in {source} lack the columns {missing}", reason="bad_events")
    try:
        columns = {name: table.column(name).cast(kind) for name, kind in PREDICTION_COLUMNS.items()}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ActrecError(
            f"events in {source} have a column of the wrong type: {exc}", reason="bad_events"
        ) from None
    if "model_version" in table.column_names:
        columns["model_version"] = table.column("model_version").cast(pa.string())
    else:
        columns["model_version"] = pa.nulls(table.num_rows, pa.string())
    return pa.table(columns)


def predictions_from_table(
    table: pa.Table, *, source: str, model_version: str | None = None
) -> list[PredEvent]:
    """:class:`PredEvent` s from an Arrow table with the columns ``video_key`` (the video's store key),
    ``label``, ``start_s``, ``end_s``, ``confidence`` and optionally ``model_version``. ``source`` names
    where the table came from, for messages.

    With ``model_version``, only that version's rows are kept. Without it, the table must hold a single
    model version (or none).

    Raises ``ActrecError`` with reason ``bad_events`` for a missing column or a null value,
    ``ambiguous_model_version`` (listing the versions) when several versions are present and none was
    chosen, and ``no_events`` when the chosen version has no rows.
    """
    table = _prediction_columns(table, source)
    versions = sorted(v for v in pc.unique(table.column("model_version")).to_pylist() if v is not None)
    if model_version is not None:
        table = table.filter(pc.equal(table.column("model_version"), model_version))
        if table.num_rows == 0:
            raise ActrecError(
                f"no events of model version {model_version!r} in {source}; found {versions or 'none'}",
                reason="no_events",
            )
    elif len(versions) > 1:
        raise ActrecError(
            f"events in {source} come from several model versions {versions}; choose one of them",
            reason="ambiguous_model_version",
        )
    for name in PREDICTION_COLUMNS:
        if table.column(name).null_count:
            raise ActrecError(f"events in {source} have null values in column {name!r}", reason="bad_events")
    for name in ("start_s", "end_s", "confidence"):
        if pc.any(pc.invert(pc.is_finite(table.column(name)))).as_py():
            raise ActrecError(f"events in {source} have NaN or infinite {name!r} values", reason="bad_events")
    rows = zip(*(table.column(name).to_pylist() for name in PREDICTION_COLUMNS), strict=True)
    return [PredEvent(*row) for row in rows]
