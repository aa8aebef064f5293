"""The nightly pipeline of one logical date, as stage functions.

``actrec run`` calls :func:`run_nightly`, and the Airflow DAG calls the same stage functions one
task at a time: discover -> validate manifest -> infer -> validate events -> publish (Parquet +
warehouse, and the run's ``runs`` row) -> cost -> quality. Every stage reads what the previous
ones left in the object store, keyed by date and run id, so a task can be retried on its own.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.pipeline.spec import RunSpec
from actrec_batch.storage import ObjectStore, open_store

log = logging.getLogger(__name__)


def discover_stage(
    settings: Settings, date: dt.date, store: ObjectStore | None = None, progress: bool = False
):
    from actrec_batch.discovery import discover

    return discover(settings, date, store=store, progress=progress)


def infer_stage(
    settings: Settings, spec: RunSpec, *, store: ObjectStore | None = None, progress: bool = False
):
    """The inference of ``spec``'s run (:class:`~actrec_batch.pipeline.job.InferenceJob`), on the
    settings' runner; its events go to the run's staging area."""
    from actrec_batch.pipeline.job import InferenceJob

    return InferenceJob(settings, spec, store=store, progress=progress).run()


def validate_manifest_stage(store: ObjectStore, date: dt.date) -> dict[str, Any]:
    """GX over the date's stored manifest again, with Data Docs to ``reports/date=D/manifest/``
    (discovery quarantined every row the suite refuses and wrote the rest, so this audit fails only
    if the stored manifest was altered since). Raises ValidationFailed."""
    import tempfile
    from pathlib import Path

    from actrec_batch.expectations import validate_manifest
    from actrec_batch.manifest import read_manifest
    from actrec_batch.pipeline.outputs import upload_data_docs

    manifest = read_manifest(store, date)
    with tempfile.TemporaryDirectory(prefix="actrec-docs-") as tmp:
        result = validate_manifest(manifest.to_pandas(), date, docs_dir=Path(tmp))
        docs = upload_data_docs(store, Path(tmp), result.docs_index, layout.report_prefix(date) + "manifest/")
    return {
        "logical_date": date.isoformat(),
        "videos": manifest.num_rows,
        "docs_uri": docs,
        "summary": result.summary(),
    }


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


def cost_stage(
    settings: Settings, store: ObjectStore, date: dt.date, run_id: str, warehouse=None
) -> dict[str, Any]:
    """Price the run (``actrec_batch.costs``); write its ``job_costs`` rows and ``runs.cost_usd``."""
    from actrec_batch.costs import cost_key, price_run, render_html, with_run_info

    report = price_run(settings, store, date, run_id)
    key = cost_key(date, run_id)  # a page beside the ledger, for whoever browses the store
    store.put_bytes(
        key.removesuffix(".json") + ".html", render_html(with_run_info(store, key, report)).encode()
    )
    own = warehouse is None
    warehouse = warehouse_stage(settings) if own else warehouse
    try:
        warehouse.replace_costs(run_id, report["rows"], report["cost_usd"])
    finally:
        if own:
            warehouse.dispose()
    _patch_summary(store, date, run_id, cost_usd=report["cost_usd"])
    return report


def quality_stage(store: ObjectStore, date: dt.date, run_id: str) -> dict[str, Any]:
    """The run's quality report (``actrec_batch.quality``): event statistics, and F1 where ground truth exists."""
    from actrec_batch.quality import quality_report

    report = quality_report(store, date, run_id)
    evaluation = report.get("evaluation") or {}
    _patch_summary(store, date, run_id, quality_uri=report["uri"], f1=evaluation.get("f1"))
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
    stages: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Build the run's summary (CONTRACTS.md keys) from what its stages left in the store, write
    ``runs/date=D/run=<id>/summary.json`` and the run's ``runs`` row; return the summary."""
    summary = run_summary(store, date, run_id, published, cameras=cameras, wall_s=wall_s, stages=stages)
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
    warehouse.record_run(row)
    store.put_bytes(_summary_key(date, run_id), json.dumps(summary, indent=1, default=str).encode())
    return summary


def run_nightly(
    settings: Settings, spec: RunSpec, *, progress: bool = False, discover_first: bool = True
) -> dict[str, Any]:
    """The whole pipeline of one date, through the stage functions the DAG calls one task at a
    time: discover -> validate manifest -> infer -> validate events -> publish -> cost -> quality.
    Returns the summary (CONTRACTS.md keys). The warehouse is migrated first, so an unreachable one
    fails before any work. Every run gets its ``runs`` row, a failed one too (then the error is
    raised again)."""
    t0 = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC)
    store = open_store(settings.store)
    date, cameras, run_id = spec.date, spec.cameras, spec.run_id
    warehouse = warehouse_stage(settings)
    stages: list[str] = []
    try:
        if discover_first:
            discover_stage(settings, date, store=store, progress=progress)
            validate_manifest_stage(store, date)
            stages += ["discover", "validate_manifest"]
        infer_stage(settings, spec, store=store, progress=progress)
        stages.append("infer")
        validate_stage(store, date, run_id)
        stages.append("validate_events")
        published = publish_stage(settings, store, date, run_id, cameras, warehouse=warehouse)
        stages.append("publish")
        stages += ["cost", "quality"]
        record_run_stage(
            warehouse,
            store,
            date,
            run_id,
            published,
            cameras=cameras,
            started_at=started_at,
            wall_s=time.perf_counter() - t0,
            stages=tuple(stages),
        )
        cost_stage(settings, store, date, run_id, warehouse=warehouse)
        quality_stage(store, date, run_id)
    except BaseException as exc:
        row = {"run_id": run_id, "logical_date": date, "started_at": started_at, "status": "failed"}
        row.update(
            cameras=",".join(cameras) or None, error=" ".join(str(exc).split())[:2000] or type(exc).__name__
        )
        _record_failed_run(warehouse, row, t0)
        raise
    finally:
        warehouse.dispose()
    summary = json.loads(store.get_bytes(_summary_key(date, run_id)))
    summary["wall_s"] = round(time.perf_counter() - t0, 3)
    summary["video_s_per_wall_s"] = round(summary["video_seconds"] / max(summary["wall_s"], 1e-9), 2)
    store.put_bytes(_summary_key(date, run_id), json.dumps(summary, indent=1, default=str).encode())
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


def _summary_key(date: dt.date, run_id: str) -> str:
    return layout.run_prefix(date, run_id) + "summary.json"


def run_summary(
    store: ObjectStore,
    date: dt.date,
    run_id: str,
    published,
    *,
    cameras: tuple[str, ...] = (),
    wall_s: float | None = None,
    stages: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The run's summary from its ``infer.json`` and the date's discovery quarantine (only
    ``cameras``' records for a run over some cameras). ``status`` is ``failed`` when the videos do
    not reconcile: discovered = processed + quarantined."""
    from actrec_batch import __version__
    from actrec_batch.manifest import read_quarantine
    from actrec_batch.pipeline.outputs import read_infer_summary

    infer = read_infer_summary(store, date, run_id)
    discovery_quarantine = [
        q
        for q in read_quarantine(store, date, "discover").to_pylist()
        if not cameras or layout.camera_of(q["key"], date) in cameras
    ]
    quarantined = len(discovery_quarantine) + infer["videos_quarantined"]
    discovered = infer["videos_manifested"] + len(discovery_quarantine)
    wall = round(wall_s if wall_s is not None else infer["wall_s"], 3)
    summary = {
        **{k: v for k, v in infer.items() if k not in ("model_labels",)},
        "status": "success",
        "videos_discovered": discovered,
        "videos_quarantined": quarantined,
        "quarantine": [
            {"uri": q["uri"], "reason": q["reason"], "stage": "discover"} for q in discovery_quarantine
        ]
        + [{"uri": q["uri"], "reason": q["reason"], "stage": "infer"} for q in infer["quarantine"]],
        "wall_s": wall,
        "infer_wall_s": infer["wall_s"],
        "cost_usd": None,  # set by the cost stage
        "stages": list(stages),
        "events_uri": published.events_uri,
        "docs_uri": published.docs_uri,
        "warehouse_videos": published.videos,
        "warehouse_quarantine": published.quarantined,
        "code_version": __version__,
    }
    summary["video_s_per_wall_s"] = round(infer["video_seconds"] / max(wall, 1e-9), 2)
    if discovered != summary["videos_processed"] + quarantined:
        summary["status"] = "failed"
    return summary


def _patch_summary(store: ObjectStore, date: dt.date, run_id: str, **values: Any) -> None:
    key = _summary_key(date, run_id)
    if store.exists(key):
        summary = json.loads(store.get_bytes(key))
        summary.update(values)
        store.put_bytes(key, json.dumps(summary, indent=1, default=str).encode())


def _record_failed_run(warehouse, row: dict[str, Any], t0: float) -> None:
    row["finished_at"] = dt.datetime.now(dt.UTC)
    row["wall_s"] = round(time.perf_counter() - t0, 3)
    try:
        warehouse.record_run(row)
    except Exception as exc:  # noqa: BLE001 - the run's own error is the one to report
        log.warning("could not record failed run %s in the warehouse: %s", row["run_id"], exc)
