"""The timeline of one synthetic video: who is where, doing what, when.

Everything downstream (poses, frames, labels) is derived from a :class:`Timeline`, so labels
and pixels cannot disagree. Times are integer frame indices internally and float seconds
(``frame / fps``) in :class:`Event`; every range is half-open ``[start, end)``.

Geometry is in *frame-height units*: ``y`` runs from 0 (top edge) to 1 (bottom edge), ``x``
from 0 to ``stage.aspect`` (the frame's width/height). A figure stands with its feet at
``ground_y`` and is ``stage.figure_height(ground_y) * size`` tall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LABELS: tuple[str, ...] = ("walk", "run", "wave", "jump", "fall", "sit_down", "stand_up")
# Unlabelled ("no action") segment kinds. ``hold`` raises an arm and keeps it still: a raised
# arm alone is not ``wave``.
IDLE_KINDS: tuple[str, ...] = ("idle", "hold", "seated", "lying")
DISTRACTOR_KINDS: tuple[str, ...] = ("ball", "cart", "swing")

GAIT_RAMP_S = 0.35  # walk/run speed up from, and slow down to, standing still over this long
FADE_S = 0.6  # figures fade in/out at episode boundaries (not at the video's own edges)
MIN_GAP_S = 1.0  # no-action time between consecutive (non-overlapping) events
LYING_SPAN = 0.95  # body heights from the feet to the head of a lying figure


@dataclass(frozen=True)
class Stage:
    """Camera geometry the planner needs: frame aspect and ground-plane perspective."""

    aspect: float = 4 / 3
    horizon_y: float = 0.42  # wall/floor boundary
    near_height: float = 0.56  # figure height when its feet touch the bottom edge
    lamp_x: float = 0.25  # where the (sometimes swinging) hanging lamp is

    def figure_height(self, ground_y: float) -> float:
        """Height, in frame-height units, of a standard figure whose feet are at ``ground_y``."""
        return self.near_height * (ground_y - self.horizon_y) / (1.0 - self.horizon_y)

    @property
    def ground_range(self) -> tuple[float, float]:
        """Feet positions that give figures between ~0.28 and ``near_height`` of the frame tall."""
        lo = self.horizon_y + 0.28 * (1.0 - self.horizon_y) / self.near_height
        return (min(lo, 0.9), 0.97)


@dataclass(frozen=True)
class Look:
    """Per-figure appearance (RGB 0..255 colours, thickness multiplier)."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    shirt: tuple[float, float, float]
    trousers: tuple[float, float, float]
    shoes: tuple[float, float, float]
    short_sleeves: bool
    build: float  # limb thickness multiplier


@dataclass(frozen=True)
class Figure:
    """One figure's life in the video, with its placement and the chair it may sit on."""

    track: int
    start_frame: int
    end_frame: int
    fade_in: int  # frames of fade at start (0 when present from the video's first frame)
    fade_out: int
    ground_y: float
    size: float  # multiplier on stage.figure_height(ground_y)
    x0: float
    facing0: int  # +1 faces right, -1 left
    has_chair: bool
    seated0: bool
    sit_lean: float  # peak forward lean (rad) while sitting down / standing up
    sway_phase: float
    look: Look

    def height(self, stage: Stage) -> float:
        return stage.figure_height(self.ground_y) * self.size


@dataclass(frozen=True)
class Segment:
    """What one figure does over ``[start_frame, end_frame)``. ``kind`` is a label or an idle kind."""

    track: int
    kind: str
    start_frame: int
    end_frame: int
    params: dict[str, float] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.start_frame


@dataclass(frozen=True)
class Distractor:
    """Non-human motion: a bouncing ball, a sliding cart, or the hanging lamp swinging."""

    kind: str
    start_frame: int
    end_frame: int
    params: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """A ground-truth action: ``label`` rendered over ``[start_s, end_s)`` by figure ``track``."""

    label: str
    start_s: float
    end_s: float
    track: int

    def to_json(self) -> dict:
        return {"label": self.label, "start_s": self.start_s, "end_s": self.end_s, "track": self.track}


@dataclass(frozen=True)
class Timeline:
    fps: float
    n_frames: int
    stage: Stage
    figures: tuple[Figure, ...]
    segments: tuple[Segment, ...]  # per track, contiguous, covering the figure's life
    distractors: tuple[Distractor, ...]

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def events(self) -> tuple[Event, ...]:
        """Labelled segments as events in seconds, sorted by (start, end, label, track)."""
        evs = [
            Event(s.kind, round(s.start_frame / self.fps, 6), round(s.end_frame / self.fps, 6), s.track)
            for s in self.segments
            if s.kind in LABELS
        ]
        return tuple(sorted(evs, key=lambda e: (e.start_s, e.end_s, e.label, e.track)))


def gait_envelope(n: int, fps: float) -> np.ndarray:
    """Walk/run intensity per frame: 0 on the first and last frame, 1 in the middle (float64, ``(n,)``)."""
    ramp = max(1.0, min(GAIT_RAMP_S * fps, n / 3.0))
    i = np.arange(n, dtype=np.float64)
    up = np.clip(i / ramp, 0.0, 1.0)
    down = np.clip((n - 1 - i) / ramp, 0.0, 1.0)
    e = np.minimum(up, down)
    return e * e * (3.0 - 2.0 * e)


def fold_path(
    x0: float, facing0: int, distance: np.ndarray, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and facings of a figure that walks ``distance`` (cumulative, >= 0) from ``x0``
    and turns around whenever it reaches ``lo`` or ``hi`` (pacing back and forth)."""
    span = max(hi - lo, 1e-6)
    unfolded = (x0 - lo) + facing0 * distance
    y = np.mod(unfolded, 2.0 * span)
    outbound = y < span
    x = np.where(outbound, lo + y, hi - (y - span))
    facing = np.where(outbound, 1, -1) * facing0  # outbound legs move along the unfolded axis
    return x, facing.astype(np.int8)


def walk_bounds(stage: Stage, height: float) -> tuple[float, float]:
    margin = 0.3 * height + 0.02
    return margin, stage.aspect - margin


POSTURES: tuple[str, ...] = ("stand", "seated", "lying", "walking", "running", "arm_up")
_POSTURE_OF_KIND = {
    "idle": "stand",
    "walk": "stand",
    "run": "stand",
    "jump": "stand",
    "seated": "seated",
    "lying": "lying",
}
_MOVE_OF_KIND = {"walk": "walking", "run": "running", "wave": "arm_up", "hold": "arm_up"}


def posture_frames(timeline: Timeline) -> np.ndarray:
    """Per frame, whether some figure is standing, seated or lying, and whether some figure is in a
    walking or running stride or has an arm raised: ``[n_frames, len(POSTURES)]`` float32 in
    :data:`POSTURES` order. Transitions (``fall``, ``sit_down``, ``stand_up``) are in no posture, and
    ``wave``/``hold`` follow their ``seated`` parameter. A training signal, not a label: what a
    still frame shows (a seated figure, a runner's bent arms and long stride), so that the
    direction of a posture change, or a walk from a run, is easy to read."""
    out = np.zeros((timeline.n_frames, len(POSTURES)), dtype=np.float32)
    for seg in timeline.segments:
        if seg.kind in ("wave", "hold"):
            posture = "seated" if seg.params.get("seated") else "stand"
        else:
            posture = _POSTURE_OF_KIND.get(seg.kind)
        span = slice(max(0, seg.start_frame), min(timeline.n_frames, seg.end_frame))
        if posture is not None:
            out[span, POSTURES.index(posture)] = 1.0
        if seg.kind in _MOVE_OF_KIND:
            out[span, POSTURES.index(_MOVE_OF_KIND[seg.kind])] = 1.0
    return out
