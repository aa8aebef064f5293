"""Probe a video: what it is, how long, how fast, and whether it is whole.

Probing reads the container header, the packets of the first ~2 s and (with ``check_tail``)
the last group of pictures, so its cost follows the header size and bit rate, not the file size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Literal

import av
import numpy as np

from actrec_batch.errors import VideoError
from actrec_batch.video._source import OpenVideo, VideoSource, open_video
from actrec_batch.video.packets import index_table

HEAD_WINDOW_S = 2.0  # packets demuxed from the start to judge the frame rate mode
_MAX_PACKETS_FOR_FIRST_FRAME = 600
_MAX_INDEX_ENTRIES = 2000  # enough index entries to judge frame rate mode and GOP size
# A stream whose headers give no length (a raw .h264/.hevc/.m2v elementary stream) is measured by
# counting its packets, a demux without decoding, for files up to this size; larger ones stay at 0 s.
_MAX_COUNTED_BYTES = 512 * 2**20
_MAX_REORDER = 16  # frames a decoder may hold back for reordering (H.264/HEVC allow up to 16)
_CFR_TOLERANCE = 0.02  # relative jitter of frame durations still called constant


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found out about a video.

    Attributes:
        container: FFmpeg demuxer name, e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"`` or ``"matroska,webm"``.
        codec: video decoder name, e.g. ``"h264"``, ``"vp9"``, ``"ffv1"``.
        pix_fmt: decoded pixel format, e.g. ``"yuv420p"``, or ``None`` if unknown.
        width, height: coded frame size in pixels.
        display_width, display_height: size after applying ``rotation``.
        fps: average frame rate in frames per second.
        fps_mode: ``"constant"`` or ``"variable"`` (frame durations differ by more than 2 %).
        start_s: presentation time of the first frame in seconds (often 0.0).
        duration_s: duration of the video stream in seconds.
        frame_count: number of frames; exact if ``frame_count_exact``, else ``duration_s * fps``.
        rotation: counter-clockwise display rotation in degrees: 0, 90, 180 or 270.
        creation_time: container ``creation_time`` metadata (timezone-aware), or ``None``.
        size_bytes: file size in bytes.
        bit_rate: container bit rate in bits per second, or ``None`` if unknown.
        has_audio: whether the container has an audio stream.
        keyframe_interval: typical distance between keyframes in frames, ``None`` if unknown.
    """

    container: str
    codec: str
    pix_fmt: str | None
    width: int
    height: int
    display_width: int
    display_height: int
    fps: float
    fps_mode: Literal["constant", "variable"]
    start_s: float
    duration_s: float
    frame_count: int
    frame_count_exact: bool
    rotation: int
    creation_time: datetime | None
    size_bytes: int
    bit_rate: int | None
    has_audio: bool
    keyframe_interval: int | None


@dataclass
class _Head:
    """What the first packets of the stream revealed."""

    rotation: int
    pts: list[int]  # packet timestamps in decode order, first HEAD_WINDOW_S only
    keyframe_positions: list[int]  # positions of keyframes within ``pts``


def normalise_rotation(degrees: float) -> int:
    """A display rotation snapped to 0, 90, 180 or 270 degrees counter-clockwise."""
    return int(round(degrees / 90.0)) % 4 * 90


def _read_head(video: OpenVideo, need_timing: bool) -> _Head:
    """Decode the first frame and collect packet timing of the first ``HEAD_WINDOW_S`` seconds."""
    stream = video.stream
    stream.codec_context.thread_count = 1  # frame threads would delay the first frame
    window = None if stream.time_base is None else int(HEAD_WINDOW_S / stream.time_base)
    first_frame = None
    pts: list[int] = []
    keyframes: list[int] = []
    try:
        for packet in video.container.demux(stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.size and stamp is not None and not packet.is_discard:
                if packet.is_keyframe:
                    keyframes.append(len(pts))
                pts.append(stamp)
            if first_frame is None:
                frames = stream.decode(packet)
                first_frame = frames[0] if frames else None
                if first_frame is None and len(pts) > _MAX_PACKETS_FOR_FIRST_FRAME:
                    break
            timing_done = not need_timing or (window is not None and pts and pts[-1] - pts[0] > window)
            if first_frame is not None and timing_done:
                break
    except av.FFmpegError as error:
        raise video.failure("cannot decode the first frame", error) from error
    if first_frame is None:
        if not pts:
            raise video.failure("the video stream has no packets")
        raise video.failure(f"cannot decode the first frame (no picture from {len(pts)} packets)")
    return _Head(rotation=normalise_rotation(first_frame.rotation), pts=pts, keyframe_positions=keyframes)


def _settled(decode_order_pts: list[int]) -> np.ndarray:
    """The timestamps of a stream prefix with no frames still missing to reordering.

    Packets come in decode order; with B-frames the last few demuxed frames can leave gaps in
    presentation order that a longer read would fill, so frames after the smallest timestamp of
    the last ``_MAX_REORDER`` packets are dropped.
    """
    pts = np.asarray(decode_order_pts, dtype=np.int64)
    if pts.size > _MAX_REORDER + 2:
        pts = pts[pts <= pts[-_MAX_REORDER:].min()]
    return pts


def _is_variable(timestamps: np.ndarray) -> bool:
    """Whether frame durations vary by more than the container's rounding (1 tick) and jitter."""
    deltas = np.diff(np.unique(timestamps))
    if deltas.size < 2:
        return False
    typical = float(np.median(deltas))
    tolerance = max(1.0, _CFR_TOLERANCE * typical)
    return bool(np.max(np.abs(deltas - typical)) > tolerance)


def _median_gap(positions: list[int] | np.ndarray) -> int | None:
    if len(positions) < 2:
        return None
    return int(np.median(np.diff(np.asarray(positions))))


def _declared_duration_s(video: OpenVideo) -> float | None:
    """Duration of the video stream from headers: stream duration, Matroska tag, or container.

    Matroska's segment duration and DURATION tags are end times on the segment's clock, which
    starts at zero, so a stream whose first frame is late has that start taken off.
    """
    stream = video.stream
    if stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    end = _matroska_tag_s(stream.metadata.get("DURATION"))
    if end is None and video.container.duration:
        end = video.container.duration / av.time_base
    if end is None:
        return None
    if "matroska" in video.container.format.name and stream.start_time and stream.time_base is not None:
        start = float(stream.start_time * stream.time_base)
        return end - start if end > start else end
    return end


def _matroska_tag_s(tag: str | None) -> float | None:
    """Seconds of a Matroska ``HH:MM:SS.nnnnnnnnn`` tag, or ``None``."""
    if not tag:
        return None
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _scan_tail(video: OpenVideo) -> float | None:
    """Check the end of the file; return the end time of the last frame in seconds, if known.

    First the container structure is compared with the file size, then the last group of
    pictures is demuxed and decoded.

    Raises:
        VideoError: ``truncated`` if the structure shows a cut or the last packets cannot be
            decoded at the end of the file, else ``decode_error``.
    """
    stream = video.stream
    evidence = video.truncation_evidence()
    if evidence is not None:
        raise video.failure("its end cannot be read")
    declared = _declared_duration_s(video)
    if stream.time_base is None:
        return declared
    start = stream.start_time or 0
    end_ticks = start + int((declared or 0.0) / stream.time_base) if declared else 2**62
    try:
        video.container.seek(end_ticks, backward=True, any_frame=False, stream=stream)
    except av.FFmpegError:
        return declared  # no index to seek with; the structural check above is all we can afford
    # Demux to the end (the seek lands on the last indexed keyframe, for Matroska the last
    # cluster), but decode only the packets from the last keyframe on.
    last_gop: list[av.Packet] = []
    last_end: int | None = None
    try:
        for packet in video.container.demux(stream):
            if not packet.size:
                continue
            if packet.is_keyframe:
                last_gop = []
            last_gop.append(packet)
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is not None:
                end = stamp + (packet.duration or 0)
                last_end = end if last_end is None else max(last_end, end)
    except av.FFmpegError as error:
        raise video.failure("its last packets cannot be read", error) from error
    if last_gop and not last_gop[0].is_keyframe:
        # The seek landed after the last keyframe (MPEG-TS seeks by byte position): packets that
        # follow no keyframe cannot be decoded by anyone, so they say nothing about the file.
        last_gop = []
    at_eof = (
        bool(last_gop)
        and (last_gop[-1].pos or -1) >= 0  # MPEG-PS packets have no position
        and last_gop[-1].pos + last_gop[-1].size >= video.size_bytes
    )
    decoded = 0
    try:
        for packet in last_gop:
            decoded += len(stream.decode(packet))
        decoded += len(stream.decode(None))
    except av.FFmpegError as error:
        raise video.failure("its last frames cannot be decoded", error, at_eof=at_eof) from error
    if last_gop and decoded == 0:
        raise video.failure("its last group of pictures decodes to no picture", at_eof=at_eof)
    if last_end is None:
        return declared
    return float((last_end - start) * stream.time_base)


def _average_fps(video: OpenVideo, variable: bool, timestamps: np.ndarray, duration_s: float) -> float:
    """Frames per second: the declared rate for constant-rate video, else counted frames over time.

    Matroska declares the nominal rate even for variable-rate video, so a variable stream's rate
    comes from its frame count and duration, or from the timestamps read at the start.
    """
    stream = video.stream
    declared = stream.average_rate or stream.guessed_rate or stream.base_rate
    if variable and stream.frames > 0 and duration_s > 0:
        return stream.frames / duration_s
    if variable and timestamps.size > 1 and stream.time_base is not None:
        span_s = float((timestamps.max() - timestamps.min()) * stream.time_base)
        if span_s > 0:
            return (np.unique(timestamps).size - 1) / span_s
    if declared:
        return float(declared)
    return stream.frames / duration_s if stream.frames > 0 and duration_s > 0 else 0.0


def _count_packets(source: VideoSource, *, uri: str | None, size_bytes: int) -> int:
    """The number of video packets in the file (one a frame, for the parsers of elementary
    streams), demuxed from the start on a second opening; 0 if demuxing fails."""
    try:
        with open_video(source, uri=uri, size_bytes=size_bytes) as video:
            return sum(1 for packet in video.container.demux(video.stream) if packet.size)
    except (av.FFmpegError, VideoError):
        return 0


def _parse_creation_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def probe(
    source: VideoSource,
    *,
    uri: str | None = None,
    size_bytes: int | None = None,
    max_bytes: int | None = None,
    check_tail: bool = True,
) -> VideoInfo:
    """Describe a video and check that it can be decoded.

    Args:
        source: local path or seekable binary file object.
        uri: name used in error messages (defaults to the path or the object's ``name``).
        size_bytes: file size in bytes, if the caller knows it (saves a seek to the end).
        max_bytes: refuse files larger than this many bytes before reading them.
        check_tail: also check that the file is whole: container structure against the file
            size, and the last group of pictures demuxes and decodes.

    Raises:
        VideoError: with ``reason``
            ``empty`` (0 bytes), ``too_large`` (over ``max_bytes``), ``not_a_video``
            (unrecognised format), ``no_video_stream`` (e.g. audio only), ``unsupported_codec``
            (no decoder), ``truncated`` (file cut short), ``decode_error`` (first or last frames
            cannot be decoded). The message names the source.
        FileNotFoundError: ``source`` is a path that does not exist.
    """
    with open_video(source, uri=uri, size_bytes=size_bytes, max_bytes=max_bytes) as video:
        stream = video.stream
        index = index_table(video, limit=_MAX_INDEX_ENTRIES)
        head = _read_head(video, need_timing=index is None)
        if index is not None:
            timestamps, keyframe_positions = index[0], np.flatnonzero(index[1])
        else:
            timestamps, keyframe_positions = _settled(head.pts), head.keyframe_positions
        variable = _is_variable(timestamps)

        declared = _declared_duration_s(video)
        if check_tail or declared is None:
            tail_end = _scan_tail(video)
            duration_s = declared if declared is not None else tail_end
        else:
            duration_s = declared
        duration_s = max(0.0, duration_s or 0.0)

        exact = stream.frames > 0
        fps = _average_fps(video, variable, timestamps, duration_s)
        frame_count = stream.frames if exact else max(1, math.floor(duration_s * fps + 0.5))
        if duration_s == 0.0 and fps > 0 and video.size_bytes <= _MAX_COUNTED_BYTES:
            counted = _count_packets(source, uri=uri, size_bytes=video.size_bytes)
            if counted:
                # The rate is FFmpeg's assumption for untimed streams too, so the frame index agrees.
                duration_s, frame_count, exact = counted / fps, counted, True

        rotation = head.rotation
        width, height = stream.codec_context.width, stream.codec_context.height
        swapped = rotation in (90, 270)
        start_ticks = stream.start_time or 0
        time_base = stream.time_base or Fraction(0)
        creation = video.container.metadata.get("creation_time") or stream.metadata.get("creation_time")
        return VideoInfo(
            container=video.container.format.name,
            codec=stream.codec_context.name,
            pix_fmt=stream.codec_context.pix_fmt,
            width=width,
            height=height,
            display_width=height if swapped else width,
            display_height=width if swapped else height,
            fps=fps,
            fps_mode="variable" if variable else "constant",
            start_s=float(start_ticks * time_base),
            duration_s=duration_s,
            frame_count=frame_count,
            frame_count_exact=exact,
            rotation=rotation,
            creation_time=_parse_creation_time(creation),
            size_bytes=video.size_bytes,
            bit_rate=video.container.bit_rate or None,
            has_audio=bool(video.container.streams.audio),
            keyframe_interval=_median_gap(keyframe_positions),
        )
