"""Choosing which frames make up each clip, and the clip container itself.

Pure functions over frame timestamps (float seconds); nothing here touches a video file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClipIndex:
    """Which frames a clip is made of.

    Attributes:
        frame_indices: frame numbers in presentation order (strictly increasing).
        timestamps_s: presentation time of each frame in seconds.
        start_s: time of the first frame, in seconds.
        end_s: time of the last frame plus its duration, so the clip covers ``[start_s, end_s)``.
    """

    frame_indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not self.frame_indices or len(self.frame_indices) != len(self.timestamps_s):
            raise ValueError(
                f"a clip needs one timestamp per frame and at least one frame, got "
                f"{len(self.frame_indices)} indices and {len(self.timestamps_s)} timestamps"
            )
        if any(b <= a for a, b in zip(self.frame_indices, self.frame_indices[1:], strict=False)):
            raise ValueError(f"clip frame indices must be strictly increasing: {self.frame_indices}")
        if self.end_s < self.start_s:
            raise ValueError(f"clip ends ({self.end_s} s) before it starts ({self.start_s} s)")

    @property
    def clip_len(self) -> int:
        """Number of frames, T."""
        return len(self.frame_indices)


@dataclass(frozen=True)
class Clip:
    """Decoded frames of one clip.

    Attributes:
        frames: ``[T, H, W, 3]`` uint8 RGB array (made read-only).
        frame_indices, timestamps_s, start_s, end_s: as in :class:`ClipIndex`.
    """

    frames: np.ndarray
    frame_indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        shape = self.frames.shape
        if self.frames.ndim != 4 or shape[3] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(
                f"clip frames must be a [T, H, W, 3] uint8 array, got {shape} {self.frames.dtype}"
            )
        if not shape[0] == len(self.frame_indices) == len(self.timestamps_s):
            raise ValueError(
                f"clip has {shape[0]} frames but {len(self.frame_indices)} indices "
                f"and {len(self.timestamps_s)} timestamps"
            )
        self.frames.flags.writeable = False

    @classmethod
    def from_index(cls, index: ClipIndex, frames: np.ndarray) -> Clip:
        """The clip ``index`` describes, holding ``frames``. Raises ValueError on a shape mismatch."""
        return cls(frames, index.frame_indices, index.timestamps_s, index.start_s, index.end_s)


def _frame_end_s(times: np.ndarray, i: int) -> float:
    """End of frame ``i``: the next frame's time, or for the last frame its predecessor's duration."""
    if i + 1 < times.size:
        return float(times[i + 1])
    if i > 0:
        return float(times[i] + (times[i] - times[i - 1]))
    return float(times[i])


def sample_clips(
    frame_times: Sequence[float] | np.ndarray,
    start_s: float,
    end_s: float,
    clip_len: int,
    stride: int,
    hop: int | None = None,
) -> list[ClipIndex]:
    """Cut the frames whose time lies in ``[start_s, end_s)`` into clips of ``clip_len`` frames.

    A clip takes every ``stride``-th frame: frames ``s, s + stride, ..., s + (clip_len - 1) * stride``.
    The first clip starts at the first frame in range and consecutive clips start ``hop`` frames
    apart (default ``clip_len * stride``: back to back, no overlap). Only clips whose frames all
    lie in the range are returned, so a short tail is dropped.

    Args:
        frame_times: presentation time of every frame in seconds, non-decreasing, as from
            :func:`actrec_batch.video.frame_timestamps`; index ``i`` is frame ``i``.
        start_s, end_s: the half-open time range in seconds.
        clip_len: frames per clip, T >= 1.
        stride: step between sampled frames, >= 1.
        hop: step between clip starts in frames, >= 1.

    Returns:
        Clips in time order. A clip's ``end_s`` is its last frame's time plus that frame's
        duration (the gap to the next frame; for the video's last frame, the previous gap).

    Raises:
        ValueError: a parameter below 1, or ``frame_times`` not a 1-D non-decreasing sequence.
    """
    if clip_len < 1 or stride < 1 or (hop is not None and hop < 1):
        raise ValueError(f"clip_len, stride and hop must be >= 1, got {clip_len}, {stride}, {hop}")
    times = np.asarray(frame_times, dtype=np.float64)
    if times.ndim != 1:
        raise ValueError(f"frame_times must be one-dimensional, got shape {times.shape}")
    if times.size > 1 and np.any(np.diff(times) < 0):
        raise ValueError("frame_times must be non-decreasing (presentation order)")
    hop = clip_len * stride if hop is None else hop
    first = int(np.searchsorted(times, start_s, side="left"))
    stop = int(np.searchsorted(times, end_s, side="left"))  # frames [first, stop) are in range
    span = (clip_len - 1) * stride
    clips = []
    for s in range(first, stop - span, hop):
        indices = tuple(range(s, s + span + 1, stride))
        stamps = tuple(float(times[i]) for i in indices)
        clips.append(ClipIndex(indices, stamps, stamps[0], _frame_end_s(times, indices[-1])))
    return clips


def stride_for_fps(source_fps: float, target_fps: float) -> int:
    """Frame stride that brings ``source_fps`` closest to ``target_fps``: ``max(1, round(ratio))``.

    Raises:
        ValueError: either rate is not positive.
    """
    if source_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {source_fps} and {target_fps}")
    return max(1, round(source_fps / target_fps))
