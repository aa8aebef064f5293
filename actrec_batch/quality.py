"""The quality report of one run: what the model said, and, where ground truth exists, how right.

Written to ``reports/date=D/run=<id>/quality.json``:

- ``events``: count, per-label counts and mean confidence, events per hour of footage;
- ``evaluation``: when the date's footage has ground-truth sidecars (synthetic or hand-labelled),
  event-level precision, recall and F1 at tIoU 0.5, overall and per class (``actrec eval``'s
  figures, on the camera chains the run used: its ``infer.json`` records the chaining settings);
  otherwise null;
- ``drift``: the nightly drift report (:mod:`actrec_batch.drift`) against the previous nights in
  the warehouse: ``window``, ``alert``, ``alerts``, ``metrics`` (also the date's
  ``quality_metrics`` rows), ``tonight`` and ``window_figures`` (the counts compared),
  ``frame_health`` (per camera and per video, from the decode; null when nothing was decoded),
  ``page_uri`` (``quality.html``, the report with its plots, beside this file).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from actrec_batch.errors import ActrecError
from actrec_batch.runs import QUALITY_PAGE_NAME, InferRecord, MetricsDocument, QualityRecord, RunFolder


def quality_report(store, date: dt.date, run_id: str, *, settings=None, warehouse=None) -> dict[str, Any]:
    """Build, write and return the quality report of ``run_id`` (see the module doc): its
    ``quality.json`` and ``quality.html``, and, with a ``warehouse`` (and the ``settings`` whose
    ``drift_*`` thresholds judge it), the drift report and the date's ``quality_metrics`` rows
    (replaced). Without a warehouse ``drift`` is null."""
    from actrec_batch.evaluation import (
        evaluate,
        labelled_videos,
        load_chains,
        load_truth,
        on_chains,
        predictions_from_table,
    )

    folder = RunFolder(store, date, run_id)
    infer = folder.read(InferRecord)
    table, _ = folder.read_staged_events()
    labels = list(infer.model_labels)
    per_label: dict[str, dict[str, float]] = {}
    for row in table.select(["label", "confidence"]).to_pylist():
        entry = per_label.setdefault(row["label"], {"events": 0, "confidence_sum": 0.0})
        entry["events"] += 1
        entry["confidence_sum"] += row["confidence"]
    hours = float(infer.video_seconds or 0.0) / 3600.0
    events = {
        "count": table.num_rows,
        "per_hour": round(table.num_rows / hours, 3) if hours else None,
        "per_label": {
            label: {
                "events": int(per_label.get(label, {}).get("events", 0)),
                "mean_confidence": round(v["confidence_sum"] / v["events"], 4)
                if (v := per_label.get(label))
                else None,
            }
            for label in labels
        },
    }
    evaluation = None
    try:
        truths = load_truth(store, date)
    except ActrecError as exc:
        if exc.reason != "no_ground_truth":
            raise
        truths = []  # real footage has no sidecars: the report holds the event statistics only
    if truths:
        preds = predictions_from_table(table, source=f"run {run_id}")
        chains = []  # a run from before chains (no "chaining" record): every file stood alone
        if chaining := infer.chaining:
            chains = load_chains(
                store,
                date,
                file_time_pattern=chaining["file_time_pattern"],
                tolerance_s=chaining["tolerance_s"],
            )
        preds, truths, videos = on_chains(preds, truths, labelled_videos(store, date), chains)
        result = evaluate(preds, truths, labels, videos=videos).to_json()
        evaluation = {k: result[k] for k in ("precision", "recall", "f1", "per_class", "tiou")}
    from actrec_batch.quality_page import render_quality_page

    drift = None
    if warehouse is not None:
        drift = drift_section(settings, folder, warehouse, infer, evaluation)
        warehouse.replace_quality_metrics(date, [{**row, "run_id": run_id} for row in drift["metrics"]])
        drift["page_uri"] = folder.uri(QualityRecord).removesuffix(QualityRecord.NAME) + QUALITY_PAGE_NAME
    record = QualityRecord(run_id, date.isoformat(), infer.model, events, evaluation, drift)
    folder.write_page(QUALITY_PAGE_NAME, render_quality_page(record.to_json()), in_reports=True)
    return {**record.to_json(), "uri": folder.write(record)}


def drift_section(settings, folder: RunFolder, warehouse, infer: InferRecord, evaluation) -> dict[str, Any]:
    """The ``drift`` key of ``quality.json`` (the module doc), without ``page_uri``."""
    from actrec_batch.drift import ALERT, CONFIDENCE_BINS, DriftLimits, alert_text, drift_rows, pooled
    from actrec_batch.warehouse.queries import night_figures

    limits = DriftLimits.of(settings)
    date = folder.date
    first = date - dt.timedelta(days=limits.window_nights)
    figures = night_figures(warehouse, first, date, CONFIDENCE_BINS)
    tonight = figures.pop(date, None) or pooled({})
    health, per_video = frame_health_of(folder, infer)
    rows = drift_rows(tonight, figures, health, evaluation, limits)
    alerts = [{**r, "message": alert_text(r)} for r in rows if r["alert_status"] == ALERT]
    return {
        "window": {
            "source": "warehouse",
            "nights": limits.window_nights,
            "first": first.isoformat(),
            "last": (date - dt.timedelta(days=1)).isoformat(),
            "dates": sorted(d.isoformat() for d in figures),
        },
        "baseline": bool(figures),
        "alert": bool(alerts),
        "alerts": alerts,
        "metrics": rows,
        "tonight": tonight,
        "window_figures": pooled(figures),
        "frame_health": {
            "measured": bool(health),
            "units_decoded": infer.units_computed,
            "units_total": infer.units_total,
            "cameras": {
                c: {**h.to_json(), "black_fraction": h.black_fraction, "static_fraction": h.static_fraction}
                for c, h in health.items()
            },
            "videos": per_video,
        },
        "limits": limits.__dict__,
    }


def frame_health_of(folder: RunFolder, infer: InferRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """Frame health per camera (:class:`~actrec_batch.video.health.FrameHealth`) and per video key
    (``black_fraction``, ``static_fraction``, ``frames``), from the units the run decoded
    (``metrics.json``); both empty when it decoded none (features from the cache)."""
    from actrec_batch.manifest import read_manifest
    from actrec_batch.video.health import FrameHealth

    metrics = folder.get(MetricsDocument)
    if metrics is None or not infer.units_computed:
        return {}, {}
    videos = {r["video_id"]: r for r in read_manifest(folder.store, folder.date).to_pylist()}
    by_video: dict[str, FrameHealth] = {}
    for unit in metrics.units:
        if unit.get("frame_health") and unit["video_id"] in videos:
            by_video[unit["video_id"]] = by_video.get(
                unit["video_id"], FrameHealth()
            ) + FrameHealth.from_json(unit["frame_health"])
    cameras: dict[str, FrameHealth] = {}
    for video_id, h in by_video.items():
        camera = videos[video_id]["camera_id"]
        cameras[camera] = cameras.get(camera, FrameHealth()) + h
    per_video = {
        videos[v]["key"]: {
            "frames": h.frames,
            "black_fraction": h.black_fraction,
            "static_fraction": h.static_fraction,
        }
        for v, h in sorted(by_video.items(), key=lambda kv: videos[kv[0]]["key"])
    }
    return cameras, per_video
