"""Per-clip action scores of one video -> timed action events.

The model scores clips on a regular time grid: clip ``k`` is centred at ``times_s[k]`` (seconds from
the start of the video), the centres are ``hop_s`` apart (about 0.27 s), and every clip gets one
probability in ``[0, 1]`` per label (multi-label: events of different labels may overlap in time,
since several people can be in view). Background is every label scoring low.

:func:`scores_to_events` turns one label's score sequence into events in these steps:

1. **Smoothing**: a centred moving average over ``smooth_s`` seconds (see :func:`smooth_scores`).
2. **Hysteresis**: an event starts at a clip whose smoothed score rises to ``on_threshold`` or above
   and lasts while the score stays at ``off_threshold`` or above. A hole in the clip grid (spacing
   above ``1.5 * hop_s``) ends an event: the model said nothing about the missing time. A gap that
   holds a *seam* (where one file of a camera's chain ends and the next begins, see
   :mod:`actrec_batch.chains`) is no hole: no clip can straddle two files, but the footage goes on.
3. **Boundaries**, in seconds, with sub-hop precision: the start is where the smoothed score crosses
   ``on_threshold``, the end where it crosses ``off_threshold``, found by linear interpolation
   between the centres of the clips on either side of the crossing. So the start lies within one hop
   before the first active clip's centre, and the end within one hop after the last active clip's
   centre, i.e. within ``hop_s / 2`` of ``centre - hop_s / 2`` and ``centre + hop_s / 2``. Where no
   neighbouring clip exists (the video's edges, a hole) the boundary is ``centre -/+ hop_s / 2``.
   Then ``pad_s`` widens the event on both sides (a negative pad shrinks it), and the result is
   clipped to ``[0, duration_s]``.
4. **Merging** of same-label events separated by a gap shorter than ``merge_gap_s``.
5. **Dropping** events shorter than ``min_duration_s``.
6. **Confidence**: the mean smoothed score over the event's clips (from its first to its last active
   clip, including any clips of a merged gap), in ``[0, 1]``.
7. **Temporal NMS** among same-label events (:func:`temporal_nms`). Hysteresis runs never overlap, so
   this only acts when padding makes events overlap and merging is disabled.
8. **Exclusive labels** (:func:`exclusive_nms`): labels in one of ``exclusive`` (e.g. ``walk`` and
   ``run``: one figure does not do both at once) suppress each other: of two such events overlapping
   with temporal IoU ``>= exclusive_tiou``, the less confident is dropped. Two people, one walking and
   one running side by side, then give one event; the tuning on validation footage decides whether
   that trade is worth it (it is empty by default).

Split invariance: smoothing, hysteresis and merging look across clip boundaries, so events must be
computed from the scores of a *whole video*. A pipeline that scores a video in several work units
concatenates their outputs with :func:`concat_segment_scores` first and post-processes once; the
events then do not depend on how the video was cut. Post-processing each unit separately would cut
or drop events at unit boundaries. The same holds one level up, for the consecutive files of a
camera (:mod:`actrec_batch.chains`): their clip scores are laid end to end in chain time and
post-processed once, with the cuts between files passed as ``seams_s``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from actrec_batch.clip_scores import (
    GRID_HOLE_HOPS,
    check_labels,
    check_scores,
    clip_hop,
    concat_segment_scores,
)

_OVERRIDABLE = ("on_threshold", "off_threshold", "min_duration_s")
_EVENT_ID_SCHEME = "actrec.event/v1"
__all__ = [
    "GRID_HOLE_HOPS",
    "DetectedEvent",
    "EventParams",
    "concat_segment_scores",
    "event_id",
    "exclusive_nms",
    "scores_to_events",
    "smooth_scores",
    "temporal_nms",
    "tiou",
]


@dataclass(frozen=True)
class EventParams:
    """Post-processing settings; they live in the model card. Times are in seconds.

    - ``smooth_s`` (>= 0): width of the centred moving average; 0 turns smoothing off.
    - ``on_threshold``, ``off_threshold`` (``0 <= off <= on <= 1``, ``on > 0``): hysteresis thresholds.
    - ``per_class``: per-label overrides of ``on_threshold``, ``off_threshold`` and ``min_duration_s``,
      e.g. ``{"fall": {"on_threshold": 0.4}}``.
    - ``min_duration_s`` (>= 0): shorter events are dropped.
    - ``merge_gap_s``: same-label events whose gap is shorter than this merge. 0 merges only
      overlapping events; ``-inf`` disables merging.
    - ``nms_tiou`` (in ``(0, 1]``): of two same-label events overlapping with at least this temporal
      IoU, the less confident one is dropped.
    - ``pad_s``: added to both ends, widening each event (negative: narrowing).
    - ``exclusive``: groups of labels that suppress each other (step 8), e.g. ``[["walk", "run"]]``.
    - ``exclusive_tiou`` (in ``(0, 1]``): the temporal IoU at which they do.

    Raises ``ValueError`` naming the bad setting.
    """

    smooth_s: float = 0.8
    on_threshold: float = 0.5
    off_threshold: float = 0.35
    per_class: dict[str, dict] = field(default_factory=dict)
    min_duration_s: float = 0.5
    merge_gap_s: float = 0.4
    nms_tiou: float = 0.6
    pad_s: float = 0.0
    exclusive: list[list[str]] = field(default_factory=list)
    exclusive_tiou: float = 0.5

    def __post_init__(self) -> None:
        for name in (
            "smooth_s",
            "on_threshold",
            "off_threshold",
            "min_duration_s",
            "nms_tiou",
            "pad_s",
            "exclusive_tiou",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"EventParams.{name} must be a finite number, got {value!r}")
        if not isinstance(self.merge_gap_s, int | float) or math.isnan(self.merge_gap_s):
            raise ValueError(f"EventParams.merge_gap_s must be a number, got {self.merge_gap_s!r}")
        if self.smooth_s < 0:
            raise ValueError(f"EventParams.smooth_s must be >= 0 seconds, got {self.smooth_s}")
        if not 0 <= self.off_threshold <= self.on_threshold <= 1 or self.on_threshold == 0:
            raise ValueError(
                "EventParams thresholds must satisfy 0 <= off_threshold <= on_threshold <= 1 and "
                f"on_threshold > 0, got on={self.on_threshold}, off={self.off_threshold}"
            )
        if self.min_duration_s < 0:
            raise ValueError(f"EventParams.min_duration_s must be >= 0 seconds, got {self.min_duration_s}")
        if not 0 < self.nms_tiou <= 1:
            raise ValueError(f"EventParams.nms_tiou must be in (0, 1], got {self.nms_tiou}")
        if not 0 < self.exclusive_tiou <= 1:
            raise ValueError(f"EventParams.exclusive_tiou must be in (0, 1], got {self.exclusive_tiou}")
        groups = self.exclusive
        if (
            isinstance(groups, str | bytes)
            or not isinstance(groups, Sequence)
            or any(
                isinstance(g, str | bytes)
                or not isinstance(g, Sequence)
                or not all(isinstance(x, str) for x in g)
                for g in groups
            )
        ):
            raise ValueError(f"EventParams.exclusive must be a list of label lists, got {groups!r}")
        object.__setattr__(self, "exclusive", [list(g) for g in groups])  # a private copy, JSON-shaped
        if not isinstance(self.per_class, Mapping):
            raise ValueError(f"EventParams.per_class must map labels to overrides, got {self.per_class!r}")
        per_class = {str(label): dict(overrides) for label, overrides in self.per_class.items()}
        object.__setattr__(self, "per_class", per_class)  # a private copy: the dataclass is frozen
        for label, overrides in per_class.items():
            unknown = sorted(set(overrides) - set(_OVERRIDABLE))
            if unknown:
                raise ValueError(
                    f"EventParams.per_class[{label!r}] has unknown keys {unknown}; allowed: {list(_OVERRIDABLE)}"
                )
            try:
                self.for_label(label)
            except ValueError as exc:
                raise ValueError(f"EventParams.per_class[{label!r}]: {exc}") from None

    def for_label(self, label: str) -> EventParams:
        """These settings with ``label``'s overrides applied (and no per-class table)."""
        if not self.per_class:
            return self
        return replace(self, per_class={}, **self.per_class.get(label, {}))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> EventParams:
        """Inverse of :meth:`to_dict`. Raises ``ValueError`` on unknown keys or bad values."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown EventParams keys {unknown}")
        return cls(**d)


@dataclass(frozen=True)
class DetectedEvent:
    """One action: ``label`` over the half-open range ``[start_s, end_s)`` in seconds from the start of
    the video, with ``confidence`` in ``[0, 1]``."""

    label: str
    start_s: float
    end_s: float
    confidence: float


@dataclass
class _Span:
    """An event being built: its time range and its clips ``first..last`` (inclusive)."""

    start_s: float
    end_s: float
    first: int
    last: int


def scores_to_events(
    times_s: Sequence[float] | np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str],
    params: EventParams | None = None,
    *,
    hop_s: float | None = None,
    duration_s: float | None = None,
    seams_s: Sequence[float] = (),
) -> list[DetectedEvent]:
    """The events of one whole video, or chain of files (see the module docstring for the steps).

    ``times_s`` (shape ``[T]``, seconds, strictly increasing) are the clip centres; ``scores``
    (shape ``[T, len(labels)]``, or ``[T]`` for one label) are probabilities in ``[0, 1]``. ``hop_s`` is
    the clip spacing in seconds; by default it is the median spacing of ``times_s``, so it must be
    given for a single clip. ``duration_s`` (seconds), when given, bounds the event ends; starts are
    never below 0. ``seams_s`` (seconds) are the cuts between the files of a chain: the clip spacing
    around each is not a hole (step 2). Empty input gives no events.

    Returns the events sorted by ``(start_s, label, end_s)``; the result depends only on the inputs.
    Raises ``ValueError`` naming the problem: NaN or infinite values, times not increasing, shapes
    that do not match ``labels``, scores outside ``[0, 1]`` (logits instead of probabilities), or
    ``params.per_class`` naming a label the model does not have.
    """
    params = params or EventParams()
    labels = check_labels(labels)
    times, probs = check_scores(times_s, scores, len(labels))
    if times.size == 0:
        return []
    unknown = sorted(set(params.per_class) - set(labels))
    if unknown:
        raise ValueError(f"EventParams.per_class names labels {unknown} that are not among {labels}")
    unknown = sorted({x for group in params.exclusive for x in group} - set(labels))
    if unknown:
        raise ValueError(f"EventParams.exclusive names labels {unknown} that are not among {labels}")
    hop = clip_hop(np.diff(times), hop_s)
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration_s must be a finite number of seconds >= 0, got {duration_s!r}")
    upper = math.inf if duration_s is None else float(duration_s)

    smoothed = smooth_scores(times, probs, params.smooth_s)
    # breaks[k]: clip k and clip k+1 are not neighbours on the grid
    breaks = np.diff(times) > GRID_HOLE_HOPS * hop
    after_seam = np.searchsorted(times, np.asarray(seams_s, dtype=np.float64), side="left")
    bridged = after_seam[(after_seam > 0) & (after_seam < times.size)] - 1  # times[k] < seam <= times[k+1]
    breaks[bridged] = False
    events: list[DetectedEvent] = []
    for c, label in enumerate(labels):
        p = params.for_label(label)
        s = smoothed[:, c]
        spans = []
        for first, last in _hysteresis_runs(s, p.on_threshold, p.off_threshold, breaks):
            start, end = _run_bounds(times, s, first, last, p, hop, breaks)
            start, end = max(start - p.pad_s, 0.0), min(end + p.pad_s, upper)
            if end > start:
                spans.append(_Span(start, end, first, last))
        spans = [sp for sp in _merge(spans, p.merge_gap_s) if sp.end_s - sp.start_s >= p.min_duration_s]
        candidates = [
            DetectedEvent(label, sp.start_s, sp.end_s, float(np.clip(s[sp.first : sp.last + 1].mean(), 0, 1)))
            for sp in spans
        ]
        events.extend(temporal_nms(candidates, p.nms_tiou))
    events = exclusive_nms(events, params.exclusive, params.exclusive_tiou)
    return sorted(events, key=lambda e: (e.start_s, e.label, e.end_s))


def smooth_scores(times_s: np.ndarray, scores: np.ndarray, smooth_s: float) -> np.ndarray:
    """Centred moving average over time: each clip's score becomes the mean over the clips whose centres
    lie within ``smooth_s / 2`` seconds of its own. Near the video's edges the window holds fewer
    clips, and the mean is over those (no zero padding, which would bias edge events down).

    ``times_s`` is ``[T]``, ``scores`` ``[T, C]``; returns float64 ``[T, C]``. ``smooth_s`` of 0, or
    below the clip spacing, returns the scores unchanged.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if smooth_s <= 0 or len(times_s) < 2:
        return scores.copy()
    half = smooth_s / 2 + 1e-9  # a clip exactly smooth_s/2 away is inside, despite rounding
    lo = np.searchsorted(times_s, times_s - half, side="left")
    hi = np.searchsorted(times_s, times_s + half, side="right")
    total = np.zeros_like(scores)
    # Summing window positions one by one (windows are a few clips wide) makes each window's sum
    # independent of where it sits in the video (a constant stays exactly constant), unlike
    # differences of a running sum, whose rounding grows along the video.
    for offset in range(int((hi - lo).max())):
        idx = lo + offset
        inside = idx < hi
        total[inside] += scores[idx[inside]]
    return total / (hi - lo)[:, None]


def _hysteresis_runs(s: np.ndarray, on: float, off: float, breaks: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive clip ranges ``(first, last)`` that are active: ``first`` is the first clip of a stretch
    of scores ``>= off`` to reach ``on``, and ``last`` the stretch's last clip."""
    above = s >= off
    # stretches of `above` clips, cut at grid holes
    edges = np.flatnonzero(np.diff(above.astype(np.int8)) | breaks) + 1
    runs = []
    for lo, hi in zip(np.r_[0, edges], np.r_[edges, len(s)], strict=True):
        if not above[lo]:
            continue
        hits = np.flatnonzero(s[lo:hi] >= on)
        if hits.size:
            runs.append((int(lo + hits[0]), int(hi - 1)))
    return runs


def _run_bounds(
    times: np.ndarray, s: np.ndarray, first: int, last: int, p: EventParams, hop: float, breaks: np.ndarray
) -> tuple[float, float]:
    """Start and end in seconds: the interpolated threshold crossings, or centre -/+ hop/2 at an edge."""
    if first > 0 and not breaks[first - 1]:
        t0, t1, s0, s1 = times[first - 1], times[first], s[first - 1], s[first]
        start = t0 + (p.on_threshold - s0) / (s1 - s0) * (t1 - t0)  # s0 < on <= s1
    else:
        start = times[first] - hop / 2
    if last < len(times) - 1 and not breaks[last]:
        t0, t1, s0, s1 = times[last], times[last + 1], s[last], s[last + 1]
        end = t0 + (s0 - p.off_threshold) / (s0 - s1) * (t1 - t0)  # s1 < off <= s0
    else:
        end = times[last] + hop / 2
    return float(start), float(end)


def _merge(spans: list[_Span], gap_s: float) -> list[_Span]:
    merged: list[_Span] = []
    for sp in sorted(spans, key=lambda sp: (sp.start_s, sp.end_s)):
        prev = merged[-1] if merged else None
        if prev is not None and sp.start_s - prev.end_s < gap_s:
            prev.end_s = max(prev.end_s, sp.end_s)
            prev.first, prev.last = min(prev.first, sp.first), max(prev.last, sp.last)
        else:
            merged.append(_Span(sp.start_s, sp.end_s, sp.first, sp.last))
    return merged


def tiou(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Temporal intersection over union of ``[a_start, a_end)`` and ``[b_start, b_end)``, in ``[0, 1]``.

    Empty or reversed ranges have no overlap, so their tIoU is 0.
    """
    inter = min(a_end, b_end) - max(a_start, b_start)
    if inter <= 0:
        return 0.0
    union = max(a_end - a_start, 0.0) + max(b_end - b_start, 0.0) - inter
    return inter / union


def temporal_nms(events: Sequence[DetectedEvent], tiou_threshold: float) -> list[DetectedEvent]:
    """Greedy non-maximum suppression within each label: in order of confidence (highest first, ties by
    start then end), an event is kept unless it overlaps an already-kept event of its label with tIoU
    ``>= tiou_threshold``. Returns the kept events in that order."""
    return _suppress(events, tiou_threshold, lambda kept, new: kept == new)


def exclusive_nms(
    events: Sequence[DetectedEvent], groups: Sequence[Sequence[str]], tiou_threshold: float
) -> list[DetectedEvent]:
    """Greedy suppression across labels that exclude each other: in order of confidence (as
    :func:`temporal_nms`), an event is kept unless it overlaps an already-kept event of another label
    of one of its ``groups`` with tIoU ``>= tiou_threshold``. Labels in no group are never touched."""
    rivals: dict[str, set[str]] = {}
    for group in groups:
        for label in group:
            rivals.setdefault(label, set()).update(x for x in group if x != label)
    if not rivals:
        return list(events)
    return _suppress(events, tiou_threshold, lambda kept, new: kept in rivals.get(new, ()))


def _suppress(
    events: Sequence[DetectedEvent], tiou_threshold: float, clash: Callable[[str, str], bool]
) -> list[DetectedEvent]:
    """Greedy suppression shared by the NMS steps: most confident first (ties by start, end, label),
    an event is dropped when a kept event whose label ``clash(kept_label, its_label)`` overlaps it
    with tIoU ``>= tiou_threshold``."""
    kept: list[DetectedEvent] = []
    for ev in sorted(events, key=lambda e: (-e.confidence, e.start_s, e.end_s, e.label)):
        if all(
            not clash(k.label, ev.label) or tiou(k.start_s, k.end_s, ev.start_s, ev.end_s) < tiou_threshold
            for k in kept
        ):
            kept.append(ev)
    return kept


def event_id(video_id: str, label: str, start_s: float, end_s: float, model_version: str) -> str:
    """A deterministic event id: 32 hex characters of the SHA-256 of a canonical JSON string of the
    inputs, with the times rounded to the nearest millisecond. Reruns of the same model version over
    the same video therefore give the same ids. Raises ``ValueError`` for non-finite times."""
    for name, value in (("start_s", start_s), ("end_s", end_s)):
        if not math.isfinite(value):
            raise ValueError(f"event_id: {name} must be finite, got {value!r}")
    canonical = json.dumps(
        [_EVENT_ID_SCHEME, video_id, label, round(start_s * 1000), round(end_s * 1000), model_version],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
