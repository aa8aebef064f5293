"""The nightly pipeline of one logical date, as stage functions.

``actrec run`` calls :func:`run_nightly`, and the Airflow DAG calls the same stage functions one
task at a time: discover (with the manifest's validation) -> infer -> validate events -> publish
(Parquet + warehouse). The stages that later issues add (the cost ledger and the quality report)
slot in after publish; the summary says which stages ran.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.model import DEFAULT_MODEL
from actrec_batch.storage import ObjectStore, open_store

log = logging.getLogger(__name__)


def discover_stage(
    settings: Settings, date: dt.date, store: ObjectStore | None = None, progress: bool = False
):
    from actrec_batch.discovery import discover

    return discover(settings, date, store=store, progress=progress)


def infer_stage(
    settings: Settings,
    date: dt.date,
    *,
    model_ref: str = DEFAULT_MODEL,
    cameras: tuple[str, ...] = (),
    run_id: str | None = None,
    force: bool = False,
    store: ObjectStore | None = None,
    progress: bool = False,
):
    from actrec_batch.pipeline.job import InferenceJob

    job = InferenceJob(
        settings,
        date,
        model_ref=model_ref,
        store=store,
        run_id=run_id,
        progress=progress,
        force=force,
        cameras=cameras,
    )
    return job.run()


def validate_stage(store: ObjectStore, date: dt.date, run_id: str) -> dict[str, Any]:
    """GX over the run's staged events; Data Docs to the store. Raises ValidationFailed."""
    from actrec_batch.pipeline.outputs import validate_run

    return validate_run(store, date, run_id)


def warehouse_stage(settings: Settings):
    """The warehouse, reachable and migrated to the latest revision (ConfigError if unreachable)."""
    from actrec_batch.warehouse import open_warehouse

    return open_warehouse(settings.warehouse_url, upgrade=True)


def publish_stage(
    settings: Settings,
    store: ObjectStore,
    date: dt.date,
    run_id: str,
    cameras: tuple[str, ...] = (),
    warehouse=None,
):
    """Parquet partition + warehouse rows of a validated run, in one transaction per date."""
    from actrec_batch.pipeline.outputs import publish_run

    own = warehouse is None
    warehouse = warehouse_stage(settings) if own else warehouse
    try:
        return publish_run(store, warehouse, date, run_id, cameras)
    finally:
        if own:
            warehouse.dispose()


def run_nightly(
    settings: Settings,
    date: dt.date,
    *,
    model_ref: str = DEFAULT_MODEL,
    cameras: tuple[str, ...] = (),
    force: bool = False,
    progress: bool = False,
    discover_first: bool = True,
) -> dict[str, Any]:
    """discover -> infer -> validate -> publish for one date; returns the summary (CONTRACTS.md
    keys). The warehouse is migrated first, so an unreachable one fails before any work. Every run
    gets its ``runs`` row, a failed one too (then the error is raised again)."""
    from actrec_batch.pipeline.job import new_run_id

    t0 = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC)
    store = open_store(settings.store)
    run_id = new_run_id(date)
    warehouse = warehouse_stage(settings)
    stages: list[str] = []
    run_row: dict[str, Any] = {"run_id": run_id, "logical_date": date, "started_at": started_at}
    run_row["cameras"] = ",".join(cameras) or None
    try:
        if discover_first:
            discover_stage(settings, date, store=store, progress=progress)
            stages.append("discover")
        job = infer_stage(
            settings,
            date,
            model_ref=model_ref,
            cameras=cameras,
            run_id=run_id,
            force=force,
            store=store,
            progress=progress,
        )
        stages.append("infer")
        validate_stage(store, date, run_id)
        stages.append("validate")
        published = publish_stage(settings, store, date, run_id, cameras, warehouse=warehouse)
        stages.append("publish")
        summary = _summary(store, date, job, cameras, published, stages, t0)
    except BaseException as exc:
        run_row.update(status="failed", error=" ".join(str(exc).split())[:2000] or type(exc).__name__)
        _record_failed_run(warehouse, run_row, t0)
        raise
    finally:
        warehouse.dispose()
    run_row.update(
        {k: summary.get(k) for k in _RUN_COLUMNS},
        status=summary["status"],
        finished_at=dt.datetime.now(dt.UTC),
        model_name=published.model_name,
        model_version=published.model_version,
    )
    warehouse.record_run(run_row)
    key = layout.run_prefix(date, run_id) + "summary.json"
    store.put_bytes(key, json.dumps(summary, indent=1, default=str).encode())
    return summary


# Summary keys copied to the run's row in ``runs``.
_RUN_COLUMNS = (
    "videos_discovered",
    "videos_processed",
    "videos_quarantined",
    "events",
    "video_seconds",
    "wall_s",
    "cost_usd",
    "events_uri",
    "docs_uri",
    "model_sha256",
    "extractor_id",
    "code_version",
)


def _summary(store, date, job, cameras, published, stages, t0) -> dict[str, Any]:
    from actrec_batch import __version__
    from actrec_batch.manifest import read_quarantine

    discovery_quarantine = [
        q
        for q in read_quarantine(store, date, "discover").to_pylist()
        if not cameras or layout.camera_of(q["key"], date) in cameras
    ]
    quarantined = len(discovery_quarantine) + len(job.quarantine)
    discovered = job.videos + len(discovery_quarantine)
    wall_s = round(time.perf_counter() - t0, 3)
    from actrec_batch.pipeline.outputs import read_infer_summary

    infer = read_infer_summary(store, date, job.run_id)
    summary = {
        **job.to_json(),  # the infer stage's counters, with the whole pipeline's view below
        "status": "success",
        "videos_discovered": discovered,
        "videos_quarantined": quarantined,
        "quarantine": [
            {"uri": q["uri"], "reason": q["reason"], "stage": "discover"} for q in discovery_quarantine
        ]
        + [{"uri": q.uri, "reason": q.reason, "stage": "infer"} for q in job.quarantine],
        "wall_s": wall_s,
        "infer_wall_s": round(job.wall_s, 3),
        "cost_usd": None,  # the cost ledger fills this in once it exists
        "stages": stages,
        "events_uri": published.events_uri,
        "docs_uri": published.docs_uri,
        "warehouse_videos": published.videos,
        "warehouse_quarantine": published.quarantined,
        "model_sha256": infer.get("model_sha256"),
        "extractor_id": infer.get("extractor_id"),
        "code_version": __version__,
    }
    summary["video_s_per_wall_s"] = round(job.video_seconds / max(wall_s, 1e-9), 2)
    if discovered != summary["videos_processed"] + quarantined:
        summary["status"] = "failed"
    return summary


def _record_failed_run(warehouse, row: dict[str, Any], t0: float) -> None:
    row["finished_at"] = dt.datetime.now(dt.UTC)
    row["wall_s"] = round(time.perf_counter() - t0, 3)
    try:
        warehouse.record_run(row)
    except Exception as exc:  # noqa: BLE001 - the run's own error is the one to report
        log.warning("could not record failed run %s in the warehouse: %s", row["run_id"], exc)
