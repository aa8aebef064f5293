"""The nightly pipeline of one logical date, as stage functions.

``actrec run`` calls :func:`run_nightly`, and the Airflow DAG calls the same stage functions one
task at a time: discover -> validate manifest -> infer -> validate events -> publish (Parquet +
warehouse, and the run's ``runs`` row) -> cost -> quality. Every stage reads what the previous
ones left in the object store, keyed by date and run id, so a task can be retried on its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import replace
from typing import Any

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.errors import DriftAlert, ReconcileError, RunStatus
from actrec_batch.pipeline.spec import RunSpec
from actrec_batch.reconcile import reconcile
from actrec_batch.runs import (
    DiscoverRecord,
    InferRecord,
    ManifestValidationRecord,
    PublishRecord,
    RunFolder,
)
from actrec_batch.storage import ObjectStore, open_store
from actrec_batch.storage.io_counts import IO, io_delta

log = logging.getLogger(__name__)
HISTORY_RUNS = 14  # runs the cost report's cost-per-video-hour plot looks back over


def discover_stage(
    settings: Settings,
    date: dt.date,
    store: ObjectStore | None = None,
    progress: bool = False,
    run_id: str | None = None,
):
    """Discover the date's footage; with a ``run_id``, record it as that run's discover stage."""
    from actrec_batch.discovery import discover

    store = store if store is not None else open_store(settings.store)
    io0 = IO.snapshot()
    result = discover(settings, date, store=store, progress=progress)
    if run_id is not None:
        record = {**result.to_json(), "run_id": run_id, "io": io_delta(io0)}
        RunFolder(store, date, run_id).write(DiscoverRecord.from_json(record))
    return result


def infer_stage(
    settings: Settings, spec: RunSpec, *, store: ObjectStore | None = None, progress: bool = False
):
    """The inference of ``spec``'s run (:class:`~actrec_batch.pipeline.job.InferenceJob`), on the
    settings' runner; its events go to the run's staging area."""
    from actrec_batch.pipeline.job import InferenceJob

    return InferenceJob(settings, spec, store=store, progress=progress).run()


def validate_manifest_stage(store: ObjectStore, date: dt.date, run_id: str | None = None) -> dict[str, Any]:
    """GX over the date's stored manifest again, with Data Docs to ``reports/date=D/manifest/``
    (discovery quarantined every row the suite refuses and wrote the rest, so this audit fails only
    if the stored manifest was altered since); with a ``run_id``, recorded as that run's
    validate_manifest stage. Raises ValidationFailed."""
    import tempfile
    from pathlib import Path

    from actrec_batch.expectations import validate_manifest
    from actrec_batch.manifest import read_manifest
    from actrec_batch.pipeline.outputs import upload_data_docs

    t0, io0 = time.perf_counter(), IO.snapshot()
    manifest = read_manifest(store, date)
    with tempfile.TemporaryDirectory(prefix="actrec-docs-") as tmp:
        result = validate_manifest(manifest.to_pandas(), date, docs_dir=Path(tmp))
        docs = upload_data_docs(store, Path(tmp), result.docs_index, layout.report_prefix(date) + "manifest/")
    out = {
        "logical_date": date.isoformat(),
        "videos": manifest.num_rows,
        "docs_uri": docs,
        "summary": result.summary(),
        "wall_s": round(time.perf_counter() - t0, 3),
        "io": io_delta(io0),
    }
    if run_id is not None:
        RunFolder(store, date, run_id).write(ManifestValidationRecord.from_json({**out, "run_id": run_id}))
    return out


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
    t0, io0 = time.perf_counter(), IO.snapshot()
    try:
        published = publish_run(store, warehouse, date, run_id, cameras)
        return replace(published, publish_s=round(time.perf_counter() - t0, 3), io=io_delta(io0))
    finally:
        if own:
            warehouse.dispose()


def cost_stage(
    settings: Settings, store: ObjectStore, date: dt.date, run_id: str, warehouse=None
) -> dict[str, Any]:
    """Price the run (``actrec_batch.costs``): its cost record, its report
    (``reports/date=D/run=<id>/cost.html``, with the last runs' cost per video-hour), its
    ``job_costs`` and ``job_cost_usage`` rows and ``runs.cost_usd``; the summary when quality has
    finished too. Returns the cost record plus ``report_uri``."""
    from actrec_batch.cost_report import recent_costs, render_report
    from actrec_batch.costs import price_run, with_run_info

    folder = RunFolder(store, date, run_id)
    report = price_run(settings, store, date, run_id)
    page = render_report(
        with_run_info(folder, report), recent_costs(store, HISTORY_RUNS, until=(date.isoformat(), run_id))
    )
    store.put_bytes(folder.cost_page_key, page.encode())
    report_uri = store.uri(folder.cost_page_key)
    log.info("cost of run %s: %s USD; report %s", run_id, report["cost_usd"], report_uri)
    own = warehouse is None
    warehouse = warehouse_stage(settings) if own else warehouse
    try:
        warehouse.replace_costs(run_id, report["rows"], report["cost_usd"], report.get("usage") or ())
    finally:
        if own:
            warehouse.dispose()
    folder.write_summary_if_complete()
    return {**report, "report_uri": report_uri}


def quality_stage(
    store: ObjectStore, date: dt.date, run_id: str, *, settings: Settings | None = None, warehouse=None
) -> dict[str, Any]:
    """The run's quality report (``actrec_batch.quality``): event statistics, F1 where ground truth
    exists and, with ``settings`` (the warehouse's and the drift thresholds), the drift report
    against the previous nights with its ``quality_metrics`` rows; the summary when cost has
    finished too. Alerts are logged as warnings; with ``drift_fail_on_alert`` they raise
    :class:`~actrec_batch.errors.DriftAlert` (after everything is written)."""
    from actrec_batch.quality import quality_report

    own = warehouse is None and settings is not None
    warehouse = warehouse_stage(settings) if own else warehouse
    try:
        report = quality_report(store, date, run_id, settings=settings, warehouse=warehouse)
    finally:
        if own:
            warehouse.dispose()
    RunFolder(store, date, run_id).write_summary_if_complete()
    drift = report.get("drift") or {}
    for alert in drift.get("alerts", []):
        log.warning(
            "drift alert for %s (run %s): %s; report %s", date, run_id, alert["message"], drift["page_uri"]
        )
    if drift.get("alert") and settings is not None and settings.drift_fail_on_alert:
        names = "; ".join(a["message"] for a in drift["alerts"])
        raise DriftAlert(f"drift alert for {date} (run {run_id}): {names}; report {drift['page_uri']}")
    return report


def record_run_stage(
    warehouse,
    store: ObjectStore,
    date: dt.date,
    run_id: str,
    published,
    *,
    cameras: tuple[str, ...] = (),
    started_at: dt.datetime | None = None,
    wall_s: float | None = None,
) -> dict[str, Any]:
    """The publish stage's record (the run's reconciliation, from what its stages left in the
    store), the run's ``runs`` row, and its summary (docs/reference.md#summaryjson keys), written and returned."""
    folder = RunFolder(store, date, run_id)
    record = publish_record(folder, published, cameras=cameras, started_at=started_at, wall_s=wall_s)
    folder.write(record)
    summary = folder.summary()
    row = {k: summary.get(k) for k in _RUN_COLUMNS}
    row.update(
        run_id=run_id,
        logical_date=date,
        status=summary["status"],
        started_at=started_at,
        finished_at=dt.datetime.now(dt.UTC),
        model_name=published.model_name,
        model_version=published.model_version,
        cameras=",".join(cameras) or None,
    )
    row["error"] = record.error
    warehouse.record_run(row)
    summary = folder.write_summary()
    if record.error is not None:  # recorded failed, with its counts; now fail the run
        raise ReconcileError(record.error)
    return summary


def run_nightly(
    settings: Settings, spec: RunSpec, *, progress: bool = False, discover_first: bool = True
) -> dict[str, Any]:
    """The whole pipeline of one date, through the stage functions the DAG calls one task at a
    time: discover -> validate manifest -> infer -> validate events -> publish -> cost -> quality.
    Returns the summary (docs/reference.md#summaryjson keys). The warehouse is migrated first, so an
    unreachable one fails before any work. Every run gets its ``runs`` row, a failed one too (then the error is
    raised again).

    With ``discover_first`` (a night's run, which will decode) and the Ray runner, this thread
    connects to Ray while discovery and manifest validation run in another (bench/e2e.py: a local
    Ray's start-up off the run's wall time); a Ray that inference did not take is stopped at the
    end. Without it (a rescore, served from the feature cache) Ray starts only if a unit must be
    computed."""
    from actrec_batch.pipeline import ray_connect

    try:
        return _run_nightly(settings, spec, progress=progress, discover_first=discover_first)
    finally:
        ray_connect.release_early()


def _run_nightly(
    settings: Settings, spec: RunSpec, *, progress: bool, discover_first: bool
) -> dict[str, Any]:
    t0 = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC)
    store = open_store(settings.store)
    date, cameras, run_id = spec.date, spec.cameras, spec.run_id
    warehouse = warehouse_stage(settings)
    try:
        if discover_first:
            _discover_validate(settings, store, spec, progress)
        infer_stage(settings, spec, store=store, progress=progress)
        validate_stage(store, date, run_id)
        published = publish_stage(settings, store, date, run_id, cameras, warehouse=warehouse)
        record_run_stage(
            warehouse,
            store,
            date,
            run_id,
            published,
            cameras=cameras,
            started_at=started_at,
            wall_s=time.perf_counter() - t0,
        )
        cost_stage(settings, store, date, run_id, warehouse=warehouse)
        quality_stage(store, date, run_id, settings=settings, warehouse=warehouse)
    except BaseException as exc:
        row = {"run_id": run_id, "logical_date": date, "started_at": started_at, "status": RunStatus.FAILED}
        row.update(
            cameras=",".join(cameras) or None, error=" ".join(str(exc).split())[:2000] or type(exc).__name__
        )
        # A run that does not reconcile at publishing has its failed row, with its counts, already;
        # a drift alert (drift_fail_on_alert) fails the command, not the published run's row.
        recorded = isinstance(exc, ReconcileError) and RunFolder(store, date, run_id).has(PublishRecord)
        if not (recorded or isinstance(exc, DriftAlert)):
            _record_failed_run(warehouse, row, t0)
        raise
    finally:
        warehouse.dispose()
    return RunFolder(store, date, run_id).write_summary(wall_s=time.perf_counter() - t0)


def _discover_validate(settings: Settings, store: ObjectStore, spec: RunSpec, progress: bool) -> None:
    """Discovery and manifest validation of ``spec``'s run; with the Ray runner, in a worker thread
    while this one connects to Ray (:func:`~actrec_batch.pipeline.ray_connect.connect_ahead`)."""
    from concurrent.futures import ThreadPoolExecutor

    from actrec_batch.pipeline import ray_connect

    def stages() -> None:
        discover_stage(settings, spec.date, store=store, progress=progress, run_id=spec.run_id)
        validate_manifest_stage(store, spec.date, spec.run_id)

    if settings.runner != "ray":
        stages()
        return
    pool = ThreadPoolExecutor(1, thread_name_prefix="actrec-discover")
    try:
        done = pool.submit(stages)
        ray_connect.connect_ahead(settings)
        done.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


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


def publish_record(
    folder: RunFolder,
    published,
    *,
    cameras: tuple[str, ...] = (),
    started_at: dt.datetime | None = None,
    wall_s: float | None = None,
) -> PublishRecord:
    """The publish record of ``folder``'s run: ``published`` (an ``outputs.Published``) and the
    reconciliation of its infer record with the date's discovery quarantine (only ``cameras``'
    records for a run over some cameras). ``status`` is ``failed``, and ``error`` names the counts,
    when the videos do not reconcile: discovered = processed + quarantined. ``wall_s`` defaults to the infer stage's."""
    from actrec_batch import __version__
    from actrec_batch.manifest import read_quarantine

    infer = folder.read(InferRecord)
    discovery_quarantine = [
        q
        for q in read_quarantine(folder.store, folder.date, "discover").to_pylist()
        if not cameras or layout.camera_of(q["key"], folder.date) in cameras
    ]
    quarantined = len(discovery_quarantine) + infer.videos_quarantined
    discovered = infer.videos_manifested + len(discovery_quarantine)
    quarantine = [{"uri": q["uri"], "reason": q["reason"], "stage": "discover"} for q in discovery_quarantine]
    quarantine += [{"uri": q["uri"], "reason": q["reason"], "stage": "infer"} for q in infer.quarantine]
    error = None
    try:
        reconcile(f"run {folder.run_id} of {folder.date}", discovered, infer.videos_processed, quarantined)
    except ReconcileError as exc:
        error = str(exc)
    return PublishRecord(
        run_id=folder.run_id,
        logical_date=folder.date.isoformat(),
        status=RunStatus.SUCCESS if error is None else RunStatus.FAILED,
        error=error,
        videos_discovered=discovered,
        videos_quarantined=quarantined,
        quarantine=quarantine,
        **published.to_json(),
        cameras=list(cameras),
        started_at=started_at.isoformat() if started_at else None,
        wall_s=round(wall_s if wall_s is not None else infer.wall_s, 3),
        code_version=__version__,
    )


def _record_failed_run(warehouse, row: dict[str, Any], t0: float) -> None:
    row["finished_at"] = dt.datetime.now(dt.UTC)
    row["wall_s"] = round(time.perf_counter() - t0, 3)
    try:
        warehouse.record_run(row)
    except Exception as exc:  # noqa: BLE001 - the run's own error is the one to report
        log.warning("could not record failed run %s in the warehouse: %s", row["run_id"], exc)
