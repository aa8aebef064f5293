"""The event post-processing of a trained model, tuned on held-out videos: the
:class:`~actrec_batch.events.EventParams` with the best event F1@0.5 (`actrec train`, `actrec train-head`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from actrec_batch.training.data import VideoArrays

# Post-processing candidates tuned on the validation footage (never on evaluation seeds).
_TUNE_GRID = {
    "smooth_s": (0.0, 0.5, 0.8),
    "on_threshold": (0.4, 0.5, 0.6, 0.7),
    "off_threshold": (0.25, 0.35, 0.45),
    "min_duration_s": (0.3, 0.6, 0.9),
    "merge_gap_s": (0.3, 0.6),
}


# Labels that may suppress each other (EventParams.exclusive), kept only when that raises F1 on the
# validation footage: a figure walking is not also running, though the head, multi-label, often
# fires both during a brisk walk.
_EXCLUSIVE_CANDIDATES = ([["walk", "run"]],)


def _validation_f1(scored: list[tuple[VideoArrays, np.ndarray]], truths: list, labels: list[str], params):
    """Event F1@0.5 (and the report) of ``params`` on pre-scored validation videos (anything with the
    ``key``, ``centers_s``, ``hop_s`` and ``duration_s`` of :class:`VideoArrays`)."""
    from actrec_batch.evaluation import PredEvent, evaluate
    from actrec_batch.events import scores_to_events

    preds = [
        PredEvent(v.key, ev.label, ev.start_s, ev.end_s, ev.confidence)
        for v, p in scored
        for ev in scores_to_events(v.centers_s, p, labels, params, hop_s=v.hop_s, duration_s=v.duration_s)
    ]
    report = evaluate(preds, truths, labels)
    return report.to_json()["f1"], report


def tune_postprocess(scored: list[tuple[VideoArrays, np.ndarray]], labels: list[str]):
    """Pick the EventParams with the best event F1@0.5 on the validation videos (see
    :func:`_validation_f1`; ``v.events`` are the sidecar's event dicts). Returns (params, report).

    First a grid over the shared parameters, then each class's on-threshold, one class at a time,
    then mutually exclusive labels (``_EXCLUSIVE_CANDIDATES``), keeping a change only when it raises
    overall F1.
    """
    import itertools

    from actrec_batch.evaluation import GTEvent
    from actrec_batch.events import EventParams

    truths = [GTEvent(v.key, e["label"], e["start_s"], e["end_s"]) for v, _ in scored for e in v.events]
    candidates = [
        dict(zip(_TUNE_GRID, values, strict=True)) for values in itertools.product(*_TUNE_GRID.values())
    ]
    best = None
    for kw in candidates:
        if kw["off_threshold"] <= kw["on_threshold"]:
            f1, report = _validation_f1(scored, truths, labels, EventParams(**kw))
            if best is None or f1 > best[0] + 1e-9:
                best = (f1, EventParams(**kw), report)
    for label in labels:
        for on in (0.3, 0.4, 0.5, 0.6, 0.7):
            base = best[1]
            per_class = {
                **base.per_class,
                label: {"on_threshold": on, "off_threshold": min(base.off_threshold, on)},
            }
            params = EventParams(**{**base.to_dict(), "per_class": per_class})
            f1, report = _validation_f1(scored, truths, labels, params)
            if f1 > best[0] + 1e-9:
                best = (f1, params, report)
    for groups in _EXCLUSIVE_CANDIDATES:
        if not all(x in labels for group in groups for x in group):
            continue
        for at in (0.2, 0.35, 0.5):
            params = replace(best[1], exclusive=groups, exclusive_tiou=at)
            f1, report = _validation_f1(scored, truths, labels, params)
            if f1 > best[0] + 1e-9:
                best = (f1, params, report)
    return best[1], best[2]
