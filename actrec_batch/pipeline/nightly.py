"""The nightly pipeline of one logical date, as stage functions.

``actrec run`` calls :func:`run_nightly`, and the Airflow DAG calls the same stage functions one
task at a time: discover (with the manifest's validation) -> infer -> publish. The stages that
later issues add (event validation, the warehouse, the cost ledger and the quality report) slot in
between; the summary says which stages ran.
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


def publish_stage(
    store: ObjectStore, date: dt.date, run_id: str, model_id: str, cameras: tuple[str, ...] = ()
) -> str:
    from actrec_batch.pipeline.outputs import publish_staged

    return publish_staged(store, date, run_id, model_id, cameras)


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
    """discover -> infer -> publish for one date; returns the summary (CONTRACTS.md keys)."""
    from actrec_batch.manifest import read_quarantine
    from actrec_batch.pipeline.job import new_run_id

    t0 = time.perf_counter()
    store = open_store(settings.store)
    run_id = new_run_id(date)
    stages = []
    if discover_first:
        discover_stage(settings, date, store=store, progress=progress)
        stages.append("discover")
    found = json.loads(store.get_bytes(layout.discovery_summary_key(date)))
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
    events_uri = publish_stage(store, date, run_id, job.model_id, cameras)
    stages.append("publish")
    discovery_quarantine = [
        q
        for q in read_quarantine(store, date, "discover").to_pylist()
        if not cameras or layout.camera_of(q["key"], date) in cameras
    ]
    quarantined = len(discovery_quarantine) + len(job.quarantine)
    discovered = job.videos + len(discovery_quarantine)
    wall_s = round(time.perf_counter() - t0, 3)
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
        "events_uri": events_uri,
        "manifest_discovered": found.get("videos_discovered"),
    }
    summary["video_s_per_wall_s"] = round(job.video_seconds / max(summary["wall_s"], 1e-9), 2)
    if discovered != summary["videos_processed"] + quarantined:
        summary["status"] = "failed"
    key = layout.run_prefix(date, run_id) + "summary.json"
    store.put_bytes(key, json.dumps(summary, indent=1).encode())
    return summary
