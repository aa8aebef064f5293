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

from __future__ import annotations

import datetime as dt
import io
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actrec_batch import layout
from actrec_batch.chains import (
    DEFAULT_TOLERANCE_S,
    Chain,
    chain_index,
    chain_name,
    chain_videos,
    parse_file_time_pattern,
    video_clocks,
)
from actrec_batch.errors import ActrecError, ConfigError
from actrec_batch.events import tiou
from actrec_batch.storage import ObjectStore

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
    "on_chains",
    "predictions_from_table",
    "tiou",
]

REPORT_TIOU = 0.5  # the tIoU of the headline numbers, per-class rows, boundary errors and confusion
# Ground-truth parts of one action across a cut: one ends, and the next starts, within this many
# seconds of the cut (labels are on the frame grid; a hand label may stop a frame or two short).
SEAM_TOUCH_S = 0.1
BACKGROUND = "background"  # confusion row of predictions that overlap no ground-truth event
MISSED = "missed"  # confusion column of ground-truth events that no prediction overlaps
PREDICTION_COLUMNS = {
    "video_key": pa.string(),
    "label": pa.string(),
    "start_s": pa.float64(),
    "end_s": pa.float64(),
    "confidence": pa.float64(),
}


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
        """The ``actrec eval --format json`` object (CONTRACTS.md keys plus details)."""
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


# --- ground truth --------------------------------------------------------------------------------


def labelled_videos(store: ObjectStore, date: dt.date, *, videos: Iterable[str] | None = None) -> list[str]:
    """Store keys, sorted, of the videos of ``date`` (``footage/date=D/camera=C/<file>``) that have a
    ground-truth sidecar; with ``videos``, only those among them.

    Raises ``ActrecError(reason="no_ground_truth")`` when there are none.
    """
    prefix = layout.footage_prefix(date)
    keys = [
        obj.key[: -len(layout.SIDECAR_SUFFIX)]
        for obj in store.list(prefix)
        if layout.is_sidecar(obj.key) and layout.camera_of(obj.key, date) is not None
    ]
    if videos is not None:
        wanted = set(videos)
        keys = [k for k in keys if k in wanted]
    if not keys:
        among = "" if videos is None else " for the requested videos"
        raise ActrecError(
            f"no ground truth for {date.isoformat()}: no *{layout.SIDECAR_SUFFIX} sidecars{among} "
            f"under {store.uri(prefix)}",
            reason="no_ground_truth",
        )
    return sorted(keys)


def load_truth(store: ObjectStore, date: dt.date, *, videos: Iterable[str] | None = None) -> list[GTEvent]:
    """The ground-truth events of ``date`` from its footage's ``<video>.labels.json`` sidecars
    (CONTRACTS.md), sorted by (video, start, end, label); ``GTEvent.video`` is the video's store key.
    ``videos`` restricts them to those video keys.

    Raises ``ActrecError`` with reason ``no_ground_truth`` when there are no sidecars, and
    ``bad_ground_truth`` (naming the sidecar) when one is not valid JSON of the contract's shape or
    has an event with a non-finite time or ``end_s <= start_s``.
    """
    events = []
    for video in labelled_videos(store, date, videos=videos):
        key = layout.sidecar_key(video)
        events += _parse_sidecar(video, store.get_bytes(key), store.uri(key))
    return sorted(events, key=lambda g: (g.video, g.start_s, g.end_s, g.label))


def _parse_sidecar(video: str, data: bytes, uri: str) -> list[GTEvent]:
    def bad(problem: str) -> ActrecError:
        return ActrecError(f"bad ground-truth sidecar {uri}: {problem}", reason="bad_ground_truth")

    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise bad('expected an object with an "events" list')
    events = []
    for i, ev in enumerate(doc["events"]):
        try:
            label, start, end = ev["label"], float(ev["start_s"]), float(ev["end_s"])
        except (TypeError, KeyError, ValueError):
            raise bad(f'event {i} needs "label", "start_s" and "end_s", got {ev!r}') from None
        if not isinstance(label, str) or not label:
            raise bad(f"event {i} has label {label!r}")
        if not (math.isfinite(start) and math.isfinite(end) and start < end):
            raise bad(f"event {i} has start_s={start}, end_s={end}; need finite times with start_s < end_s")
        events.append(GTEvent(video, label, start, end))
    return events


# --- chains of files ------------------------------------------------------------------------------


def load_chains(
    store: ObjectStore,
    date: dt.date,
    *,
    file_time_pattern: str | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> list[Chain]:
    """The chains of ``date``'s manifested videos (:func:`actrec_batch.chains.chain_videos`); empty
    when the date has no manifest (then every file stands alone).

    Raises ``ConfigError`` for a bad ``file_time_pattern``."""
    from actrec_batch.storage import StorageError

    try:
        pattern = parse_file_time_pattern(file_time_pattern)
    except ValueError as exc:
        raise ConfigError(
            f"bad setting file_time_pattern = {file_time_pattern!r} (--file-time-pattern / "
            f"ACTREC_FILE_TIME_PATTERN): {exc}. Fix: use a strftime pattern such as %Y%m%dT%H%M%SZ",
            reason="bad_config",
        ) from None
    try:
        data = store.get_bytes(layout.manifest_key(date))
    except StorageError as exc:
        if exc.reason != "not_found":
            raise
        return []
    # Without Arrow's thread pools (pre-buffering uses the I/O pool): their threads, still alive at
    # interpreter exit, made `actrec eval` abort now and then ("terminate called without an active
    # exception", exit code 134), after it had printed its report.
    columns = ["video_id", "camera_id", "duration_s", "key", "creation_time"]
    rows = (
        pq.ParquetFile(io.BytesIO(data), pre_buffer=False)
        .read(columns=columns, use_threads=False)
        .to_pylist()
    )
    return chain_videos(video_clocks(rows, pattern), tolerance_s)


def on_chains(
    preds: Iterable[PredEvent], truths: Iterable[GTEvent], videos: Iterable[str], chains: Sequence[Chain]
) -> tuple[list[PredEvent], list[GTEvent], list[str]]:
    """Predictions, ground truth and video list moved from files onto chains: an event of file ``k``
    of a chain is placed at ``offsets_s[k]`` plus its times, and its ``video`` becomes the chain's
    name (:func:`actrec_batch.chains.chain_name`). A prediction keeps its length (its ``end_s`` is
    measured from the start of the file it starts in, even when it ends in a later file). Ground-truth
    events of one label that end and start within :data:`SEAM_TOUCH_S` of the same cut are joined.
    Files in no chain are left as they are.
    """
    where = chain_index(chains)
    names = {id(c): chain_name(c) for c in chains}

    def place(video: str) -> tuple[str, float, Chain | None]:
        chain, offset = where.get(video, (None, 0.0))
        return (video, 0.0, None) if chain is None else (names[id(chain)], offset, chain)

    moved_preds = []
    for p in preds:
        name, off, _ = place(p.video)
        moved_preds.append(PredEvent(name, p.label, p.start_s + off, p.end_s + off, p.confidence))
    seams: dict[str, tuple[float, ...]] = {}
    moved: list[GTEvent] = []
    for g in truths:
        name, off, chain = place(g.video)
        if chain is not None:
            seams[name] = chain.seams_s
        moved.append(GTEvent(name, g.label, g.start_s + off, g.end_s + off))
    joined: list[GTEvent] = []
    for g in sorted(moved, key=lambda g: (g.video, g.label, g.start_s, g.end_s)):
        cuts = [cut for cut in seams.get(g.video, ()) if abs(g.start_s - cut) <= SEAM_TOUCH_S]
        part = next(
            (
                i
                for i in range(len(joined) - 1, -1, -1)
                if (joined[i].video, joined[i].label) == (g.video, g.label)
                and any(abs(joined[i].end_s - cut) <= SEAM_TOUCH_S for cut in cuts)
            ),
            None,
        )
        if part is None:
            joined.append(g)
        else:
            joined[part] = GTEvent(g.video, g.label, joined[part].start_s, max(joined[part].end_s, g.end_s))
    joined.sort(key=lambda g: (g.video, g.start_s, g.end_s, g.label))
    return moved_preds, joined, sorted({place(v)[0] for v in videos})


# --- predictions ---------------------------------------------------------------------------------


def _events_prefix(date: dt.date) -> str:
    return f"events/date={date.isoformat()}/"


def load_predictions_parquet(
    store: ObjectStore, date: dt.date, *, model_version: str | None = None
) -> list[PredEvent]:
    """The published events of ``date``: every ``*.parquet`` file under ``events/date=D/`` (Hive
    partition directories below it, such as ``model_version=v3/``, become columns), converted by
    :func:`predictions_from_table`.

    Raises ``ActrecError`` with reason ``no_events`` when there is no events file, ``bad_events``
    when a file is not Parquet or lacks a column, and ``ambiguous_model_version`` as described there.
    """
    prefix = _events_prefix(date)
    keys = [obj.key for obj in store.list(prefix) if obj.key.endswith(".parquet")]
    if not keys:
        raise ActrecError(
            f"no events for {date.isoformat()}: no Parquet files under {store.uri(prefix)}; "
            f"run `actrec run --date {date.isoformat()}` first",
            reason="no_events",
        )
    tables = []
    for key in keys:
        try:
            table = pq.read_table(io.BytesIO(store.get_bytes(key)))
        except (pa.ArrowException, OSError) as exc:
            raise ActrecError(f"bad events file {store.uri(key)}: {exc}", reason="bad_events") from None
        for part in key[len(prefix) :].split("/")[:-1]:
            name, eq, value = part.partition("=")
            if eq and name not in table.column_names:
                table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
        tables.append(_prediction_columns(table, store.uri(key)))
    return predictions_from_table(
        pa.concat_tables(tables), source=store.uri(prefix), model_version=model_version
    )


def _prediction_columns(table: pa.Table, source: str) -> pa.Table:
    """``table`` reduced to the prediction columns, with their types; ``model_version`` null if absent."""
    missing = sorted(set(PREDICTION_COLUMNS) - set(table.column_names))
    if missing:
        raise ActrecError(f"events in {source} lack the columns {missing}", reason="bad_events")
    try:
        columns = {name: table.column(name).cast(kind) for name, kind in PREDICTION_COLUMNS.items()}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ActrecError(
            f"events in {source} have a column of the wrong type: {exc}", reason="bad_events"
        ) from None
    if "model_version" in table.column_names:
        columns["model_version"] = table.column("model_version").cast(pa.string())
    else:
        columns["model_version"] = pa.nulls(table.num_rows, pa.string())
    return pa.table(columns)


def predictions_from_table(
    table: pa.Table, *, source: str, model_version: str | None = None
) -> list[PredEvent]:
    """:class:`PredEvent` s from an Arrow table with the columns ``video_key`` (the video's store key),
    ``label``, ``start_s``, ``end_s``, ``confidence`` and optionally ``model_version``. ``source`` names
    where the table came from, for messages.

    With ``model_version``, only that version's rows are kept. Without it, the table must hold a single
    model version (or none).

    Raises ``ActrecError`` with reason ``bad_events`` for a missing column or a null value,
    ``ambiguous_model_version`` (listing the versions) when several versions are present and none was
    chosen, and ``no_events`` when the chosen version has no rows.
    """
    table = _prediction_columns(table, source)
    versions = sorted(v for v in pc.unique(table.column("model_version")).to_pylist() if v is not None)
    if model_version is not None:
        table = table.filter(pc.equal(table.column("model_version"), model_version))
        if table.num_rows == 0:
            raise ActrecError(
                f"no events of model version {model_version!r} in {source}; found {versions or 'none'}",
                reason="no_events",
            )
    elif len(versions) > 1:
        raise ActrecError(
            f"events in {source} come from several model versions {versions}; choose one of them",
            reason="ambiguous_model_version",
        )
    for name in PREDICTION_COLUMNS:
        if table.column(name).null_count:
            raise ActrecError(f"events in {source} have null values in column {name!r}", reason="bad_events")
    for name in ("start_s", "end_s", "confidence"):
        if pc.any(pc.invert(pc.is_finite(table.column(name)))).as_py():
            raise ActrecError(f"events in {source} have NaN or infinite {name!r} values", reason="bad_events")
    rows = zip(*(table.column(name).to_pylist() for name in PREDICTION_COLUMNS), strict=True)
    return [PredEvent(*row) for row in rows]
