"""Matching predicted events to ground-truth events, and the report (:mod:`actrec_batch.evaluation`
describes the rules)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from actrec_batch.events import tiou

REPORT_TIOU = 0.5  # the tIoU of the headline numbers, per-class rows, boundary errors and confusion
BACKGROUND = "background"  # confusion row of predictions that overlap no ground-truth event
MISSED = "missed"  # confusion column of ground-truth events that no prediction overlaps


@dataclass(frozen=True)
class GTEvent:
    """A ground-truth action over ``[start_s, end_s)`` seconds; ``video`` is the video's store key."""

    video: str
    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PredEvent:
    """A predicted action over ``[start_s, end_s)`` seconds with ``confidence`` in ``[0, 1]``."""

    video: str
    label: str
    start_s: float
    end_s: float
    confidence: float


@dataclass(frozen=True)
class MatchCounts:
    """TP, FP and FN counts and the ratios derived from them (0 when undefined, see module docstring)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: MatchCounts) -> MatchCounts:
        return MatchCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def support(self) -> int:
        """The number of ground-truth events."""
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def ratios(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}


@dataclass(frozen=True)
class EvalReport:
    """The result of :func:`evaluate`. Per-class counts are kept for every tIoU in ``tious``."""

    labels: tuple[str, ...]
    tious: tuple[float, ...]
    per_class_at_tiou: dict[float, dict[str, MatchCounts]]
    confusion: dict[str, dict[str, int]]
    median_boundary_error_s: float | None
    median_start_error_s: float | None
    median_end_error_s: float | None
    videos: int
    gt_events: int
    pred_events: int
    tiou: float = REPORT_TIOU

    def overall(self, threshold: float) -> MatchCounts:
        """Counts summed over the labels (micro average) at ``threshold``."""
        return sum(self.per_class_at_tiou[threshold].values(), MatchCounts())

    @property
    def per_class(self) -> dict[str, MatchCounts]:
        return self.per_class_at_tiou[self.tiou]

    @property
    def precision(self) -> float:
        return self.overall(self.tiou).precision

    @property
    def recall(self) -> float:
        return self.overall(self.tiou).recall

    @property
    def f1(self) -> float:
        return self.overall(self.tiou).f1

    def to_json(self) -> dict:
        """The ``actrec eval --format json`` object (docs/reference.md#actrec-eval keys plus details)."""
        return {
            **self.overall(self.tiou).ratios(),
            "per_class": {
                label: {**counts.ratios(), "support": counts.support}
                for label, counts in self.per_class.items()
            },
            "tiou": self.tiou,
            "at_tiou": {
                f"{t:g}": {**(c := self.overall(t)).ratios(), "tp": c.tp, "fp": c.fp, "fn": c.fn}
                for t in self.tious
            },
            "median_boundary_error_s": self.median_boundary_error_s,
            "median_start_error_s": self.median_start_error_s,
            "median_end_error_s": self.median_end_error_s,
            "confusion": {row: dict(counts) for row, counts in self.confusion.items()},
            "videos": self.videos,
            "gt_events": self.gt_events,
            "pred_events": self.pred_events,
        }

    def to_table(self) -> str:
        """A plain-text report: overall rows per tIoU, per-class rows and the confusion matrix."""

        def row(cells: Sequence[object], widths: Sequence[int]) -> str:
            return "  ".join(
                f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        def ratio_cells(c: MatchCounts) -> list[str]:
            return [f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.tp), str(c.fp), str(c.fn)]

        def seconds(x: float | None) -> str:
            return "n/a (no matches)" if x is None else f"{x:.3f} s"

        lines = [
            f"Event-level evaluation: {self.videos} videos, {self.gt_events} ground-truth events, "
            f"{self.pred_events} predicted events",
            "",
        ]
        widths = [6, 9, 6, 6, 5, 5, 5]
        lines.append(row(["tIoU", "precision", "recall", "f1", "TP", "FP", "FN"], widths))
        lines += [row([f"{t:g}", *ratio_cells(self.overall(t))], widths) for t in self.tious]

        lines += ["", f"Per class at tIoU {self.tiou:g}"]
        widths = [max(len("label"), *map(len, self.labels)), 7, 9, 6, 6, 5, 5, 5]
        lines.append(row(["label", "support", "precision", "recall", "f1", "TP", "FP", "FN"], widths))
        for label, c in self.per_class.items():
            lines.append(row([label, str(c.support), *ratio_cells(c)], widths))

        lines += [
            "",
            f"Median boundary error at tIoU {self.tiou:g}: {seconds(self.median_boundary_error_s)} "
            f"(start {seconds(self.median_start_error_s)}, end {seconds(self.median_end_error_s)})",
            "",
            f"Confusion at tIoU {self.tiou:g} (rows: ground truth, columns: prediction)",
        ]
        columns = [*self.labels, MISSED]
        first = max(len("gt \\ pred"), len(BACKGROUND), *map(len, self.labels))
        widths = [first, *(max(len(c), *(len(str(r[c])) for r in self.confusion.values())) for c in columns)]
        lines.append(row(["gt \\ pred", *columns], widths))
        for gt_label, counts in self.confusion.items():
            lines.append(row([gt_label, *(str(counts[c]) for c in columns)], widths))
        return "\n".join(lines) + "\n"


def evaluate(
    preds: Iterable[PredEvent],
    truths: Iterable[GTEvent],
    labels: Sequence[str],
    *,
    tious: Sequence[float] = (0.3, 0.5, 0.7),
    videos: Iterable[str] | None = None,
) -> EvalReport:
    """Match ``preds`` to ``truths`` (see the module docstring) at each tIoU of ``tious`` (in ``(0, 1]``;
    0.5 is always added, since the headline numbers use it).

    ``labels`` fixes the order of the per-class rows and gives every label a row, even with support 0;
    a label that occurs only in the events is appended (sorted), so no event is left out.
    ``videos``, when given, restricts the evaluation to those videos (the labelled ones, see
    :func:`labelled_videos`): predictions on unlabelled footage are neither right nor wrong. By
    default every video that has an event is evaluated.

    Also computed, at tIoU 0.5: the median boundary error over the TP matches (each match's error is
    the mean of its absolute start and end differences, in seconds; ``None`` without matches), and the
    confusion matrix ``{gt_label | "background": {pred_label | "missed": count}}``. Each ground-truth
    event counts under the label of the prediction (of any label) with the highest tIoU with it, if
    that tIoU is at least 0.5, else under "missed"; each prediction whose tIoU with every ground-truth
    event (of any label) is below 0.5 counts in the "background" row.

    Raises ``ValueError`` for a tIoU outside ``(0, 1]`` or a label named "background" or "missed".
    """
    preds, truths = list(preds), list(truths)
    if videos is not None:
        video_set = set(videos)
        preds = [p for p in preds if p.video in video_set]
        truths = [g for g in truths if g.video in video_set]
    else:
        video_set = {e.video for e in [*preds, *truths]}
    seen_labels = {e.label for e in [*preds, *truths]}
    all_labels = tuple(labels) + tuple(sorted(seen_labels - set(labels)))
    reserved = {BACKGROUND, MISSED} & set(all_labels)
    if reserved:
        raise ValueError(f"labels {sorted(reserved)} are reserved for the confusion matrix")
    thresholds = tuple(sorted({float(t) for t in tious} | {REPORT_TIOU}))
    if not all(0 < t <= 1 for t in thresholds):
        raise ValueError(f"tIoU thresholds must be in (0, 1], got {list(tious)}")

    preds_by_key: dict[tuple[str, str], list[PredEvent]] = defaultdict(list)
    truths_by_key: dict[tuple[str, str], list[GTEvent]] = defaultdict(list)
    for p in preds:
        preds_by_key[p.video, p.label].append(p)
    for g in truths:
        truths_by_key[g.video, g.label].append(g)
    keys = sorted(preds_by_key.keys() | truths_by_key.keys())

    per_class_at_tiou: dict[float, dict[str, MatchCounts]] = {}
    matches_at_report: list[tuple[PredEvent, GTEvent]] = []
    for t in thresholds:
        counts = {label: MatchCounts() for label in all_labels}
        for key in keys:
            group_preds, group_truths = preds_by_key.get(key, []), truths_by_key.get(key, [])
            matches = _match(group_preds, group_truths, t)
            n = len(matches)
            counts[key[1]] += MatchCounts(n, len(group_preds) - n, len(group_truths) - n)
            if t == REPORT_TIOU:
                matches_at_report += matches
        per_class_at_tiou[t] = counts

    start_errors = [abs(p.start_s - g.start_s) for p, g in matches_at_report]
    end_errors = [abs(p.end_s - g.end_s) for p, g in matches_at_report]
    return EvalReport(
        labels=all_labels,
        tious=thresholds,
        per_class_at_tiou=per_class_at_tiou,
        confusion=_confusion(preds, truths, all_labels),
        median_boundary_error_s=_median([(s + e) / 2 for s, e in zip(start_errors, end_errors, strict=True)]),
        median_start_error_s=_median(start_errors),
        median_end_error_s=_median(end_errors),
        videos=len(video_set),
        gt_events=len(truths),
        pred_events=len(preds),
    )


def _match(
    preds: list[PredEvent], truths: list[GTEvent], threshold: float
) -> list[tuple[PredEvent, GTEvent]]:
    """Greedy matching of one (video, label): by confidence, each prediction takes the unmatched ground
    truth with the highest tIoU >= ``threshold`` (ties: the earlier ground truth)."""
    truths = sorted(truths, key=lambda g: (g.start_s, g.end_s))
    taken = [False] * len(truths)
    matches = []
    for p in sorted(preds, key=lambda p: (-p.confidence, p.start_s, p.end_s)):
        best, best_iou = -1, threshold
        for j, g in enumerate(truths):
            iou = tiou(p.start_s, p.end_s, g.start_s, g.end_s)
            if not taken[j] and iou >= best_iou and (best < 0 or iou > best_iou):
                best, best_iou = j, iou
        if best >= 0:
            taken[best] = True
            matches.append((p, truths[best]))
    return matches


def _confusion(
    preds: list[PredEvent], truths: list[GTEvent], labels: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    columns = [*labels, MISSED]
    confusion = {row: dict.fromkeys(columns, 0) for row in [*labels, BACKGROUND]}
    preds_by_video: dict[str, list[PredEvent]] = defaultdict(list)
    truths_by_video: dict[str, list[GTEvent]] = defaultdict(list)
    for p in preds:
        preds_by_video[p.video].append(p)
    for g in truths:
        truths_by_video[g.video].append(g)
    for g in truths:
        # best overlap first; on a tie prefer the right label, then the more confident prediction
        best = max(
            preds_by_video.get(g.video, []),
            key=lambda p: (tiou(p.start_s, p.end_s, g.start_s, g.end_s), p.label == g.label, p.confidence),
            default=None,
        )
        hit = best is not None and tiou(best.start_s, best.end_s, g.start_s, g.end_s) >= REPORT_TIOU
        confusion[g.label][best.label if hit else MISSED] += 1
    for p in preds:
        overlaps = (tiou(p.start_s, p.end_s, g.start_s, g.end_s) for g in truths_by_video.get(p.video, []))
        if max(overlaps, default=0.0) < REPORT_TIOU:
            confusion[BACKGROUND][p.label] += 1
    return confusion


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def markdown_rows(report: dict) -> list[str]:
    """Markdown lines of a report's ``to_json()`` object (``gt_events`` may be any text): overall
    precision, recall and F1 at each tIoU, per class at 0.5, then the median boundary error."""
    lines = ["| | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for t in ("0.3", "0.5", "0.7"):
        m = report["at_tiou"][t]
        lines.append(
            f"| all, tIoU {t} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {report['gt_events']} |"
        )
    for label, m in report["per_class"].items():
        lines.append(
            f"| {label}, tIoU 0.5 | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        )
    mb = report.get("median_boundary_error_s")
    lines.append("")
    lines.append(f"Median boundary error (matched events, tIoU 0.5): {mb:.2f} s." if mb is not None else "")
    return lines
