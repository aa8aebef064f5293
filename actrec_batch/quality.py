"""The quality report of one run: what the model said, and, where ground truth exists, how right.

Written to ``reports/date=D/run=<id>/quality.json``:

- ``events``: count, per-label counts and mean confidence, events per hour of footage;
- ``evaluation``: when the date's footage has ground-truth sidecars (synthetic or hand-labelled),
  event-level precision, recall and F1 at tIoU 0.5, overall and per class (``actrec eval``'s
  figures, on the camera chains the run used: its ``infer.json`` records the chaining settings);
  otherwise null.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from actrec_batch.errors import ActrecError
from actrec_batch.runs import InferRecord, QualityRecord, RunFolder


def quality_report(store, date: dt.date, run_id: str) -> dict[str, Any]:
    """Build, write and return the quality report of ``run_id`` (see the module doc)."""
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
    record = QualityRecord(run_id, date.isoformat(), infer.model, events, evaluation)
    return {**record.to_json(), "uri": folder.write(record)}
