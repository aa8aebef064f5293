"""The global sampling grid: which source frames a model sees, and how they form clips.

Frames are sampled on a time grid ``g_k = k / sample_fps`` (seconds from the video's first
frame), whatever the source frame rate, constant or variable: grid point k shows the source
frame on screen at ``g_k`` (the last frame whose timestamp is <= ``g_k``). Clip ``j`` is grid
frames ``[j * hop, j * hop + clip_len)``; its span is ``[g_first, g_last + 1/sample_fps)`` and its
score is placed at the span's centre. Every frame code also needs the previous grid frame
(motion), so clip ``j`` reads grid frames ``j * hop - 1 .. j * hop + clip_len - 1``.

The grid is anchored to the video, not to a work unit, so cutting a video into segments
changes nothing: a segment ``[start_s, end_s)`` owns the clips whose first grid frame lies in
it, and decodes the few grid frames around it that those clips need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClipGrid:
    """Clip layout of one video. All times are seconds from the first frame."""

    sample_fps: float
    clip_len: int
    clip_hop: int
    grid_times: np.ndarray  # [K] grid times g_k
    grid_frames: np.ndarray  # [K] source frame index shown at g_k

    @property
    def num_clips(self) -> int:
        return max(0, (len(self.grid_times) - self.clip_len) // self.clip_hop + 1)

    @property
    def hop_s(self) -> float:
        return self.clip_hop / self.sample_fps

    def clip_centers(self, clips: range | None = None) -> np.ndarray:
        """Centre time of each clip's span ``[g_first, g_last + 1/fps)``, in seconds."""
        clips = range(self.num_clips) if clips is None else clips
        first = np.asarray(clips, dtype=np.int64) * self.clip_hop
        return (self.grid_times[first] + self.grid_times[first + self.clip_len - 1] + 1 / self.sample_fps) / 2

    def clips_in(self, start_s: float, end_s: float) -> range:
        """Clips whose first grid frame lies in ``[start_s, end_s)``."""
        if self.num_clips == 0:
            return range(0)
        first_times = self.grid_times[np.arange(self.num_clips) * self.clip_hop]
        lo = int(np.searchsorted(first_times, start_s - 1e-9, side="left"))
        hi = int(np.searchsorted(first_times, end_s - 1e-9, side="left"))
        return range(lo, hi)

    def grid_span(self, clips: range) -> range:
        """Grid indices clips need: from the frame before the first clip's first frame to the last frame."""
        if len(clips) == 0:
            return range(0)
        lo = max(0, clips.start * self.clip_hop - 1)
        hi = (clips.stop - 1) * self.clip_hop + self.clip_len
        return range(lo, hi)


def build_grid(
    frame_times: np.ndarray,
    *,
    sample_fps: float,
    clip_len: int,
    clip_hop: int,
    duration_s: float | None = None,
) -> ClipGrid:
    """Build the grid for a video from its frame timestamps (seconds, presentation order)."""
    times = np.asarray(frame_times, dtype=np.float64)
    if times.size == 0:
        return ClipGrid(sample_fps, clip_len, clip_hop, np.zeros(0), np.zeros(0, dtype=np.int64))
    rel = times - times[0]
    if duration_s is None:
        step = float(np.median(np.diff(rel))) if rel.size > 1 else 1 / sample_fps
        duration_s = float(rel[-1] + step)
    count = max(0, math.ceil(duration_s * sample_fps - 1e-9))
    grid = np.arange(count, dtype=np.float64) / sample_fps
    frames = np.searchsorted(rel, grid + 1e-6, side="right") - 1
    frames = np.clip(frames, 0, rel.size - 1).astype(np.int64)
    return ClipGrid(sample_fps, clip_len, clip_hop, grid, frames)


def clip_targets(
    grid: ClipGrid, events: list[dict], labels: list[str], *, min_overlap: float = 0.5
) -> np.ndarray:
    """Multi-hot ``[num_clips, C]`` targets: 1 where an event covers >= ``min_overlap`` of a clip's
    central half (the part of the clip its score stands for)."""
    if grid.num_clips == 0:
        return np.zeros((0, len(labels)), dtype=np.float32)
    return targets_at(grid.clip_centers(), grid.hop_s, events, labels, min_overlap=min_overlap)


def targets_at(
    centers_s: np.ndarray, hop_s: float, events: list[dict], labels: list[str], *, min_overlap: float = 0.5
) -> np.ndarray:
    """:func:`clip_targets` of clips centred at ``centers_s`` (seconds), ``hop_s`` apart: for
    features read back from the cache, whose grid is not at hand."""
    centers = np.asarray(centers_s, dtype=np.float64)
    out = np.zeros((centers.shape[0], len(labels)), dtype=np.float32)
    half = hop_s  # score stands for about one hop around the centre
    lo, hi = centers - half, centers + half
    index = {label: i for i, label in enumerate(labels)}
    for ev in events:
        c = index.get(ev["label"])
        if c is None:
            continue
        overlap = np.clip(np.minimum(hi, ev["end_s"]) - np.maximum(lo, ev["start_s"]), 0, None)
        out[overlap >= min_overlap * (hi - lo), c] = 1.0
    return out


def decode_grid_frames(
    source,
    grid: ClipGrid,
    span: range,
    *,
    width: int | None,
    height: int | None,
    frame_times: np.ndarray | None = None,
    frame_index=None,
    uri: str | None = None,
    stats=None,
    threads: int = 0,
    skip_nonref: bool = True,
) -> np.ndarray:
    """Decode the grid frames ``span`` of a video, resized in libswscale: ``[len(span), H, W, 3]`` uint8.

    ``width`` x ``height``: the output size. When one of them is None, the aspect ratio is kept and
    the other is the length of the frame's *short* side, whichever way the video is turned (the
    ``short_side_crop`` policy of :mod:`actrec_batch.model.video_spec`); every frame of the span comes
    out at the first frame's size.

    ``frame_index``: the video's :class:`~actrec_batch.video.FrameIndex` the grid was built on
    (preferred); else ``frame_times`` (its times), else the index is built here.

    ``threads``: decoder threads (0: FFmpeg chooses, typically one per core; a Ray task passes the
    CPUs it reserved, so it does not take more than its share).

    ``skip_nonref``: let the decoder skip non-reference frames, a grid instant being served by a
    neighbour of its frame (one source frame away) when that stays within half a grid step of the instant (see
    :func:`stand_in_s`); off, or where no neighbour is that close, every grid frame is exact."""
    from actrec_batch.errors import QuarantineReason, VideoError

    if len(span) == 0:
        return np.empty((0, height or width or 0, width or height or 0, 3), dtype=np.uint8)
    indices = grid.grid_frames[span.start : span.stop].tolist()
    options = {
        "frame_times": frame_times,
        "frame_index": frame_index,
        "uri": uri,
        "stats": stats,
        "threads": threads,
    }
    times = frame_index.times_s if frame_index is not None else frame_times
    if skip_nonref and times is not None:
        options["stand_in_s"] = stand_in_s(grid, times)
        options["at_s"] = times[0] + grid.grid_times[span.start : span.stop]
    if width is None or height is None:
        frames = _short_side_frames(source, indices, width or height, options)
    else:
        frames = (rgb for _, _, rgb in _decode(source, indices, width, height, options))
    out = None
    count = 0
    for rgb in frames:
        if out is None:
            out = np.empty((len(span), *rgb.shape), dtype=np.uint8)
        out[count] = rgb if rgb.shape == out.shape[1:] else _nearest_resize(rgb, out.shape[1:3])
        count += 1
    if count != len(span):
        raise VideoError(
            f"{uri or source}: decoded {count} of {len(span)} grid frames", reason=QuarantineReason.TRUNCATED
        )
    return out


STAND_IN_TAG = "nr1"  # in the feature cache's sampling key: grid frames may be stand-ins (see stand_in_s)
STAND_IN_MIN_SHARE = 0.99  # of grid instants with a neighbour close enough for skipping to pay


def stand_in_s(grid: ClipGrid, frame_times: np.ndarray) -> float:
    """How far (seconds) from its grid instant a frame standing in for the grid frame may be:
    half a grid step, when nearly every instant of the video (:data:`STAND_IN_MIN_SHARE`) has a
    neighbour of its frame (the one before or after) that close, else 0 (decode every frame:
    stand-ins would rarely be found, and each miss costs a second decode; an instant without one,
    say at a gap in the timestamps, gets its own frame). Judged over the whole grid, so every
    unit of a video decodes alike."""
    times = np.asarray(frame_times, dtype=np.float64)
    if times.size < 2 or grid.grid_times.size == 0:
        return 0.0
    half = 0.5 / grid.sample_fps - 1e-6
    rel = times - times[0]
    before = grid.grid_times - rel[np.maximum(grid.grid_frames - 1, 0)]
    after = rel[np.minimum(grid.grid_frames + 1, times.size - 1)] - grid.grid_times
    served = float(np.mean((before <= half) | (after <= half)))
    return half if served >= STAND_IN_MIN_SHARE else 0.0


def _decode(source, indices: list[int], width: int | None, height: int | None, options: dict):
    from actrec_batch.video import decode_frames

    return decode_frames(source, indices, width=width, height=height, **options)


def _short_side_frames(source, indices: list[int], short: int, options: dict):
    """Frames scaled, aspect kept, to a short side of ``short`` pixels. The first frame tells whether
    the video is portrait; if so the decode starts again with the width fixed (one frame wasted)."""
    frames = _decode(source, indices, None, short, options)
    first = next(frames, None)
    if first is None:
        return
    if first[2].shape[1] < short:  # portrait (after rotation): the width is the short side
        frames.close()
        frames = _decode(source, indices, short, None, options)
    else:
        yield first[2]
    for _, _, rgb in frames:
        yield rgb


def _nearest_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` at ``size`` (rows, columns), nearest neighbour: for a stream whose frame size changes
    midway, so that the span stays one array."""
    rows = np.minimum((np.arange(size[0]) + 0.5) * rgb.shape[0] / size[0], rgb.shape[0] - 1).astype(np.int64)
    cols = np.minimum((np.arange(size[1]) + 0.5) * rgb.shape[1] / size[1], rgb.shape[1] - 1).astype(np.int64)
    return rgb[rows][:, cols]
