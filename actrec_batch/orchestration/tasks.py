"""What the DAGs' tasks call: one function per task, JSON in and JSON out.

Each function takes the footage date as ``YYYY-MM-DD`` and the pipeline run id (both from XCom
or the task context), reads its settings from the environment (``ACTREC_*``, as every command
does) completed from Airflow Connections (:mod:`~actrec_batch.orchestration.connections`), calls one stage of :mod:`actrec_batch.pipeline.nightly`, and returns a small dict of ids,
counts and URIs for XCom, never data. Every function is idempotent for its date and run id: a
retry or a cleared task replaces what the previous try wrote.

The logical-date mapping (see the nightly DAG's ``doc_md``): the footage date of a run is the
start of its data interval, in UTC. The run id is derived from the DAG run, so every task of a
run, and every retry, agrees on it without passing state around.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from actrec_batch.config import Settings

log = logging.getLogger(__name__)


def footage_date(data_interval_start: dt.datetime) -> str:
    """The footage date a run covers: its data interval's start, as a UTC date."""
    return data_interval_start.astimezone(dt.UTC).date().isoformat()


def pipeline_run_id(dag_id: str, dag_run_id: str, date: str) -> str:
    """A run id that is the same for every task and try of one DAG run (and differs between runs)."""
    digest = hashlib.sha256(f"{dag_id}\n{dag_run_id}".encode()).hexdigest()[:12]
    return f"{date}-af-{digest}"


def _settings() -> Settings:
    """The ``ACTREC_*`` settings completed from Airflow Connections (store credentials, warehouse,
    Ray address; :mod:`actrec_batch.orchestration.connections`)."""
    from actrec_batch.orchestration.connections import task_settings

    return task_settings()


def _store(settings: Settings):
    from actrec_batch.storage import open_store

    return open_store(settings.store)


def discover(date: str, run_id: str | None = None) -> dict[str, Any]:
    from actrec_batch.pipeline.nightly import discover_stage

    settings = _settings()
    day = dt.date.fromisoformat(date)
    out = discover_stage(settings, day, store=_store(settings), run_id=run_id).to_json()
    return {
        k: out[k]
        for k in (
            "logical_date",
            "videos_discovered",
            "videos_manifested",
            "videos_quarantined",
            "manifest_uri",
        )
    }


def validate_manifest(date: str, run_id: str | None = None) -> dict[str, Any]:
    from actrec_batch.pipeline.nightly import validate_manifest_stage, warehouse_stage

    settings = _settings()
    warehouse_stage(settings).dispose()  # migrate (and fail on an unreachable warehouse) before the long work
    return validate_manifest_stage(_store(settings), dt.date.fromisoformat(date), run_id)


def infer_local(date: str, run_id: str, model: str, cameras: list[str], force: bool) -> dict[str, Any]:
    """The infer stage in this process, on a local Ray (or ``ray_address``'s cluster as a driver)."""
    from actrec_batch.pipeline.nightly import infer_stage
    from actrec_batch.pipeline.spec import RunSpec

    settings = _settings()
    spec = RunSpec(
        dt.date.fromisoformat(date), model_ref=model, cameras=tuple(cameras), force=force, run_id=run_id
    )
    result = infer_stage(settings, spec, store=_store(settings))
    return infer_result(date, result.run_id)


def infer_result(date: str, run_id: str) -> dict[str, Any]:
    """The infer stage's record of ``run_id``, read from the store, as XCom (ids and counters);
    the task log gets the date's quarantine and where the events went."""
    from actrec_batch.runs import InferRecord, RunFolder

    settings = _settings()
    folder = RunFolder(_store(settings), dt.date.fromisoformat(date), run_id)
    record = folder.read(InferRecord)
    _log_outcome(settings, folder, record)
    return infer_xcom(record.to_json())


def _log_outcome(settings: Settings, folder, record) -> None:
    from actrec_batch import layout
    from actrec_batch.manifest import read_quarantine
    from actrec_batch.pipeline.outputs import events_key
    from actrec_batch.warehouse.core import redacted

    store, day = folder.store, folder.date
    found = []
    if store.exists(layout.quarantine_key(day, "discover")):
        found = [{**q, "stage": "discover"} for q in read_quarantine(store, day, "discover").to_pylist()]
    for q in found + [{**q, "stage": "infer"} for q in record.quarantine]:
        log.warning("quarantined %s [%s] (%s)", q["uri"], q["reason"], q["stage"])
    log.info(
        "infer %s: %d events staged at %s; publish writes them to %s and the warehouse %s",
        day,
        record.events,
        record.staging_uri,
        store.uri(events_key(day, f"{record.model_name}@{record.model_version}")),
        redacted(settings.warehouse_url),
    )


def report_uris(date: str, run_id: str) -> dict[str, str]:
    """Where the run's pages go, by the infer task's link XCom key: the events Data Docs' index
    (``validate_events`` writes it), ``cost.html`` (``cost``) and ``quality.html`` (``quality``)."""
    from actrec_batch.layout import cost_report_key, run_report_prefix
    from actrec_batch.orchestration.links import COST_REPORT_URI, DATA_DOCS_URI, QUALITY_REPORT_URI
    from actrec_batch.pipeline.outputs import data_docs_prefix
    from actrec_batch.runs import QUALITY_PAGE_NAME

    day, store = dt.date.fromisoformat(date), _store(_settings())
    return {
        DATA_DOCS_URI: store.uri(data_docs_prefix(day, run_id) + "index.html"),
        COST_REPORT_URI: store.uri(cost_report_key(day, run_id)),
        QUALITY_REPORT_URI: store.uri(run_report_prefix(day, run_id) + QUALITY_PAGE_NAME),
    }


def infer_xcom(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("run_id", "logical_date", "model", "videos_processed", "videos_quarantined", "units_total")
    keys += (
        "units_skipped_checkpoint",
        "cache_hits",
        "frames_decoded",
        "events",
        "staging_uri",
        "metrics_uri",
    )
    return {k: summary.get(k) for k in keys}


def validate_events(date: str, run_id: str) -> dict[str, Any]:
    from actrec_batch.pipeline.nightly import validate_stage

    settings = _settings()
    record = validate_stage(_store(settings), dt.date.fromisoformat(date), run_id)
    return {k: record.get(k) for k in ("run_id", "rows", "success", "docs_uri")}


def publish(date: str, run_id: str, cameras: list[str], started_at: str | None = None) -> dict[str, Any]:
    """Parquet + warehouse for the validated run, then its publish record, ``runs`` row and summary."""
    from actrec_batch.pipeline.nightly import publish_stage, record_run_stage, warehouse_stage

    settings = _settings()
    store = _store(settings)
    day = dt.date.fromisoformat(date)
    warehouse = warehouse_stage(settings)
    try:
        published = publish_stage(settings, store, day, run_id, tuple(cameras), warehouse=warehouse)
        summary = record_run_stage(
            warehouse,
            store,
            day,
            run_id,
            published,
            cameras=tuple(cameras),
            started_at=dt.datetime.fromisoformat(started_at) if started_at else None,
        )
    finally:
        warehouse.dispose()
    out = published.to_json()
    out.update(
        {k: summary[k] for k in ("status", "videos_discovered", "videos_processed", "videos_quarantined")}
    )
    return out  # record_run_stage raised ReconcileError if the videos do not reconcile


def cost(date: str, run_id: str) -> dict[str, Any]:
    from actrec_batch.pipeline.nightly import cost_stage

    settings = _settings()
    report = cost_stage(settings, _store(settings), dt.date.fromisoformat(date), run_id)
    log.info("cost report of run %s: %s", run_id, report["report_uri"])  # the task log links the page
    keys = ("run_id", "cost_usd", "video_hours", "usd_per_video_hour", "usd_per_1k_inferences", "report_uri")
    return {k: report.get(k) for k in keys}


def quality(date: str, run_id: str) -> dict[str, Any]:
    """The quality stage, with the drift report. XCom: ``alert`` (true when the report has one),
    ``alerts`` (one line each) and ``report_uri`` (``quality.html``); every alert is also a WARNING
    line of the task log. Raises DriftAlert when ``drift_fail_on_alert`` is set (the task fails)."""
    from actrec_batch.pipeline.nightly import quality_stage

    settings = _settings()
    report = quality_stage(_store(settings), dt.date.fromisoformat(date), run_id, settings=settings)
    evaluation = report.get("evaluation") or {}
    drift = report.get("drift") or {}
    return {
        "run_id": run_id,
        "uri": report["uri"],
        "events": report["events"]["count"],
        "f1": evaluation.get("f1"),
        "alert": bool(drift.get("alert")),
        "alerts": [a["message"] for a in drift.get("alerts", [])],
        "baseline": drift.get("baseline"),
        "report_uri": drift.get("page_uri"),
    }


def rescore_dates(date_from: str, date_to: str) -> list[str]:
    """The dates from ``date_from`` to ``date_to`` inclusive (ConfigError naming the param if reversed)."""
    from actrec_batch.config import logical_date_range

    days = logical_date_range(date_from, date_to, settings=("params.from_date", "params.to_date"))
    return [d.isoformat() for d in days]
