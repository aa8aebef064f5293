"""Frame timestamps from the demuxer alone (no decoding).

Internally times are integer ticks of the stream's time base, so decoded frames can be matched
to demuxed packets exactly; the public API speaks float seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from actrec_batch.video._source import OpenVideo, VideoSource, open_video


def ticks_to_seconds(ticks: np.ndarray | int, time_base: Fraction) -> np.ndarray | float:
    """Stream ticks to float seconds, computed the same way everywhere so values compare equal."""
    return np.asarray(ticks, dtype=np.float64) * time_base.numerator / time_base.denominator


def seconds_to_ticks(seconds: np.ndarray | float, time_base: Fraction) -> np.ndarray:
    """Float seconds to the nearest stream tick (int64)."""
    return np.rint(
        np.asarray(seconds, dtype=np.float64) * time_base.denominator / time_base.numerator
    ).astype(np.int64)


@dataclass(frozen=True)
class PacketTable:
    """Presentation times of every frame of a stream, and which frames are keyframes.

    ``pts``: sorted int64 ticks, one per frame, in presentation order.
    ``keyframe_pts``: sorted int64 ticks of the keyframes (decoding can start there).
    """

    pts: np.ndarray
    keyframe_pts: np.ndarray
    time_base: Fraction


def scan_packets(video: OpenVideo) -> PacketTable:
    """Demux every packet of the video stream without decoding (reads the whole file once).

    Packets the demuxer marks as discard (e.g. before an mp4 edit list's start) are skipped,
    since decoders never output them.

    Raises:
        VideoError: ``truncated`` or ``decode_error`` if demuxing fails or finds fewer frames
            than the header lists.
    """
    stream = video.stream
    pts: list[int] = []
    keyframes: list[int] = []
    packets = 0
    try:
        for packet in video.container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if packet.is_discard:
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                continue
            pts.append(stamp)
            if packet.is_keyframe:
                keyframes.append(stamp)
    except av.FFmpegError as error:
        raise video.failure("demuxing failed", error) from error
    if stream.frames > packets:
        raise video.failure(f"only {packets} of the {stream.frames} frames its header lists could be read")
    return PacketTable(
        pts=np.unique(np.asarray(pts, dtype=np.int64)),
        keyframe_pts=np.unique(np.asarray(keyframes, dtype=np.int64)),
        time_base=stream.time_base,
    )


def index_table(video: OpenVideo, limit: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Timestamps (int64 ticks, decode order) and keyframe flags of the container's frame index.

    Only an index that lists every frame counts (mp4, mov and avi have one); Matroska cues name
    a few keyframes and are not used, so this returns ``None`` for them. ``limit`` reads only
    the first entries. No bytes are read: the index was loaded with the header.
    """
    entries = video.stream.index_entries
    if len(entries) < 2 or len(entries) != video.stream.frames:
        return None
    listed = entries[: min(len(entries), limit)] if limit is not None else list(entries)
    kept = [entry for entry in listed if not entry.is_discard]
    return (
        np.fromiter((entry.timestamp for entry in kept), dtype=np.int64, count=len(kept)),
        np.fromiter((entry.is_keyframe for entry in kept), dtype=bool, count=len(kept)),
    )


def frame_timestamps(
    source: VideoSource, *, uri: str | None = None, size_bytes: int | None = None
) -> np.ndarray:
    """Presentation time, in seconds, of every frame of the video stream, in presentation order.

    Frame ``i`` of every index-based API in this package is element ``i`` of this array. Only
    the demuxer runs (no decoding), but it reads the whole file once. Times are relative to the
    container's clock, so the first frame is not necessarily at 0.0.

    Raises:
        VideoError: any reason from :func:`actrec_batch.video.probe` except ``too_large``.
    """
    with open_video(source, uri=uri, size_bytes=size_bytes) as video:
        table = scan_packets(video)
    return ticks_to_seconds(table.pts, table.time_base)
