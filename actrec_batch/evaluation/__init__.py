"""Event-level evaluation of predicted action events against ground truth (``actrec eval``).

Matching is ActivityNet-style and done separately for each (video, label): predictions are taken in
order of confidence, highest first, and each one matches the still-unmatched ground-truth event of
its video and label with the highest temporal IoU, if that tIoU reaches the threshold. Matched
predictions are true positives (TP), the other predictions false positives (FP), and unmatched
ground-truth events false negatives (FN). This is done at each tIoU threshold; the headline numbers
are at tIoU 0.5.

Conventions for undefined ratios: precision = TP / (TP + FP) is 0 without predictions, recall =
TP / (TP + FN) is 0 without ground truth, and F1 (their harmonic mean) is 0 when both are 0. So a
label that has neither ground truth nor predictions scores 0 / 0 / 0 with support 0. Every label of
``labels`` gets a row; it adds no counts to the overall (micro-averaged) numbers, which sum TP, FP
and FN over the labels.

Sources: :func:`evaluate` takes plain lists of :class:`GTEvent` and :class:`PredEvent`, so each source
is a loader that returns one of those lists.

- Ground truth: :func:`load_truth` reads the ``<video>.labels.json`` sidecars of a date's footage;
  :func:`labelled_videos` lists the videos that have one.
- Cameras that write rolling files: :func:`on_chains` moves both onto the camera's chains of
  abutting files (:mod:`actrec_batch.chains`, the pipeline's chaining rule), so a ground-truth action
  that a cut split into two sidecar events is one event again, and is matched against one prediction.
- Predictions: :func:`load_predictions_parquet` reads the published Parquet events of a date, and
  :func:`predictions_from_table` turns any Arrow table of events into :class:`PredEvent` s. A warehouse
  source (the ``current_action_events`` view) fetches its rows as an Arrow table and converts them
  with the same function, after mapping ``video_id`` to the video's store key.
"""

from actrec_batch.evaluation.chains import SEAM_TOUCH_S, load_chains, on_chains
from actrec_batch.evaluation.metrics import (
    REPORT_TIOU,
    EvalReport,
    GTEvent,
    MatchCounts,
    PredEvent,
    evaluate,
    markdown_rows,
    tiou,
)
from actrec_batch.evaluation.sources import (
    labelled_videos,
    load_predictions_parquet,
    load_truth,
    predictions_from_table,
)

__all__ = [
    "REPORT_TIOU",
    "SEAM_TOUCH_S",
    "EvalReport",
    "GTEvent",
    "MatchCounts",
    "PredEvent",
    "evaluate",
    "labelled_videos",
    "load_predictions_parquet",
    "load_chains",
    "load_truth",
    "markdown_rows",
    "on_chains",
    "predictions_from_table",
    "tiou",
]
