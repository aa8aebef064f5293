"""Frame health: cheap statistics of frames already decoded, to tell a dead or frozen camera.

Computed on the grid frames a work unit decodes for the model (RGB ``uint8`` ``[N, H, W, 3]``, at
the model's sampling rate and size), so they cost no extra decode: one pass of NumPy over arrays
that are in memory anyway.

- a frame is **black** when its mean luma (BT.601: ``0.299 R + 0.587 G + 0.114 B``, 0..255) is
  below :data:`BLACK_LUMA`, the black level of limited-range video plus a margin for noise;
- a frame is **static** when the mean absolute difference of its luma to the previous grid frame
  is below :data:`STATIC_DIFF` (in luma levels): a frozen encoder or a repeated frame gives 0,
  live footage gives at least its sensor noise. The first frame of a unit has no previous frame
  in the unit and is not judged (``pairs`` counts the judged ones).

Whether a camera is dead is decided from the fractions (the drift report's
``drift_dead_fraction``), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BLACK_LUMA = 20.0  # mean luma below this: a black frame (limited-range black is 16)
STATIC_DIFF = 0.5  # mean |luma - previous luma| below this: a static (repeated) frame
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class FrameHealth:
    """Counts over some frames: ``frames`` judged for black, ``pairs`` (consecutive frames)
    judged for static; ``luma_sum`` and ``diff_sum`` give the means. Adds up over units."""

    frames: int = 0
    black: int = 0
    pairs: int = 0
    static: int = 0
    luma_sum: float = 0.0
    diff_sum: float = 0.0

    def __add__(self, other: FrameHealth) -> FrameHealth:
        return FrameHealth(*(a + b for a, b in zip(self.to_tuple(), other.to_tuple(), strict=True)))

    def to_tuple(self) -> tuple:
        return (self.frames, self.black, self.pairs, self.static, self.luma_sum, self.diff_sum)

    @property
    def black_fraction(self) -> float | None:
        return self.black / self.frames if self.frames else None

    @property
    def static_fraction(self) -> float | None:
        return self.static / self.pairs if self.pairs else None

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "black": self.black,
            "pairs": self.pairs,
            "static": self.static,
            "luma_sum": round(self.luma_sum, 3),
            "diff_sum": round(self.diff_sum, 3),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FrameHealth:
        return cls(**data) if data else cls()


def frame_health(frames: np.ndarray) -> FrameHealth:
    """The :class:`FrameHealth` of ``frames`` (``[N, H, W, 3]`` uint8 RGB, in time order)."""
    if frames is None or len(frames) == 0:
        return FrameHealth()
    luma = frames.astype(np.float32) @ _LUMA  # [N, H, W]
    means = luma.reshape(len(luma), -1).mean(axis=1)
    diffs = np.abs(np.diff(luma, axis=0)).reshape(len(luma) - 1, -1).mean(axis=1)
    return FrameHealth(
        frames=len(luma),
        black=int((means < BLACK_LUMA).sum()),
        pairs=len(diffs),
        static=int((diffs < STATIC_DIFF).sum()),
        luma_sum=float(means.sum()),
        diff_sum=float(diffs.sum()),
    )
