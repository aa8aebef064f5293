"""Where each frame of a video is: its presentation time, and how to find it again.

The frame index is what the decoder produces, in presentation order. Most containers store a
presentation time per packet (mp4, mov, Matroska, MPEG-TS), and then the index comes from the
demuxer alone: one pass over the packets, no decoding, and a decoded frame is found again by its
timestamp. Others do not: AVI stores only decode-order times, so with B-frames its packet
timestamps are not the frames' times. Where the container's timestamps are missing, decode-ordered
or disagree with what the decoder outputs, the index is built by decoding the video once, and a
frame is found again by the packet that produced it (see :class:`FrameIndex`).

Internally times are integer ticks of the stream's time base, so decoded frames can be matched
to demuxed packets exactly; the public API speaks float seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
import numpy as np

from actrec_batch.video._source import OpenVideo, VideoSource, open_video
from actrec_batch.video.packets import (
    PacketList,
    PacketTable,
    decode_packet,
    index_table,
    ticks_to_seconds,
)

_STORES_PTS = ("mp4", "mov", "matroska")  # demuxer names whose packets carry presentation times
VERIFY_FRAMES = 48  # decoded frames that must match the packet times before a container is trusted
IndexSource = Literal["container", "decoded"]


def stores_pts(video: OpenVideo) -> bool:
    """Whether the container's packets carry presentation times (mp4, mov, Matroska), so known
    frame times can locate decoded frames without checking them against the decoder first."""
    return any(name in video.container.format.name for name in _STORES_PTS)


@dataclass(frozen=True)
class FrameIndex:
    """Every frame the decoder outputs, in presentation order: frame ``i`` is element ``i``.

    Attributes:
        times_s: presentation time of each frame in float seconds, strictly increasing, on the
            container's clock (the first frame is not necessarily at 0.0).
        source: ``"container"``: the packets' own timestamps are the frames' times, checked
            against the decoder where the container might not store them; a frame is found
            again by its timestamp, after a keyframe seek. ``"decoded"``: the index came from a
            decoding pass, because the container's timestamps are missing, decode-ordered or
            disagree with the decoder's output; a frame is found again by the number of the
            packet that produced it.
        time_base: the stream's time base (seconds per tick).
        keyframe_ticks: sorted stream ticks of the keyframes (container source).
        frame_packets: for ``"decoded"``, the packet (decode-order number, see
            :class:`PacketList`) that produced each frame; ``None`` otherwise.
        packets: for ``"decoded"``, the packet table used to seek and to number packets.
        packets_rejected: packets the decoder rejected while the index was built (damaged
            frames, skipped; see :func:`decode_packet`).
    """

    times_s: np.ndarray
    source: IndexSource
    time_base: Fraction
    keyframe_ticks: np.ndarray
    frame_packets: np.ndarray | None = None
    packets: PacketTable | None = None
    packets_rejected: int = 0

    def __len__(self) -> int:
        return int(self.times_s.size)

    @classmethod
    def from_times(cls, video: OpenVideo, times_s: np.ndarray | list[float]) -> FrameIndex:
        """A container index from known frame times, e.g. an earlier :func:`frame_timestamps`.

        Sound only where the decoded frames carry these times (:func:`stores_pts`); an AVI's
        frames carry decode-order times, which can be another frame's.
        """
        keyframes = index_table(video)
        keyframe_ticks = None if keyframes is None else np.sort(keyframes[0][keyframes[1]])
        return cls(
            np.asarray(times_s, dtype=np.float64),
            "container",
            video.stream.time_base,
            np.zeros(0, np.int64) if keyframe_ticks is None else keyframe_ticks,
        )


def _decode_tagged(
    video: OpenVideo,
    packets: Iterator[av.Packet],
    number: Callable[[av.Packet], int | None],
    rejected: list[int],
) -> Iterator[int]:
    """Decode ``packets`` with each packet's number as its pts; yield each output frame's number.

    The decoder hands a packet's pts on to the frame it produces, whatever order it outputs
    frames in, so the numbers say which packet made each frame. The numbers of packets the
    decoder rejects (see :func:`decode_packet`) are appended to ``rejected``.
    """
    stream = video.stream
    for packet in packets:
        tag = None
        if packet.size:
            tag = number(packet)
            if tag is None:
                continue
            packet.pts = tag
        frames = decode_packet(stream, packet)
        if frames is None:
            rejected.append(tag)
            continue
        for frame in frames:
            if frame.pts is not None:
                yield int(frame.pts)


def _scan_and_check(
    video: OpenVideo, verify: bool, *, full: bool = False
) -> tuple[PacketTable, list[int], bool, int]:
    """One pass over the file from where the demuxer stands (the start): demux every packet
    and, when ``verify``, decode as long as needed (``full``: to the end).

    Returns the packet table, the packet numbers of the frames decoded (output order),
    whether decoding went to the end of the stream, and how many packets the decoder rejected. Decoding stops after ``VERIFY_FRAMES``
    frames whose packet timestamps come out increasing; once they do not, it runs to the end.

    Raises:
        VideoError: ``truncated`` or ``decode_error`` if demuxing or decoding fails, or the
            demuxer finds fewer frames than the header lists.
    """
    collected = PacketList()
    tags: list[int] = []
    rejected: list[int] = []
    decoding = verify
    stream = video.stream

    def demuxed() -> Iterator[av.Packet]:
        for packet in video.container.demux(stream):
            if packet.size:
                collected.add(packet)
            yield packet

    def numbered(packet: av.Packet) -> int:
        return len(collected.stamps) - 1

    try:
        packets = demuxed()
        if decoding:
            in_order = True
            for tag in _decode_tagged(video, packets, numbered, rejected):
                tags.append(tag)
                stamp = collected.stamps[tag]
                in_order = in_order and (len(tags) == 1 or stamp > collected.stamps[tags[-2]])
                if in_order and len(tags) >= VERIFY_FRAMES and not full:
                    decoding = False
                    break
        for _ in packets:
            pass
    except av.FFmpegError as error:
        raise video.failure("demuxing or decoding failed", error) from error
    table = collected.table(stream.time_base)
    if stream.frames > table.stamps.size:
        raise video.failure(
            f"only {table.stamps.size} of the {stream.frames} frames its header lists could be read"
        )
    return table, tags, verify and decoding, len(rejected)


def decoded_index(video: OpenVideo) -> FrameIndex:
    """The index from decoding the whole stream once, from the container's start.

    Times: the container's sorted packet times when they are as many as the frames (a
    decode-ordered container such as AVI lists each frame's slot, just not in display order);
    else the decoded frames' own packet times when they increase; else evenly spaced at the
    stream's average rate from the first packet time.

    Raises:
        VideoError: ``truncated`` or ``decode_error`` if the decoder fails, or outputs nothing.
    """
    try:
        video.container.seek(0)
    except av.FFmpegError as error:
        raise video.failure("cannot seek back to the start", error) from error
    table, tags, _, rejected = _scan_and_check(video, verify=True, full=True)
    return _index_from_tags(video, table, tags, rejected)


def _index_from_tags(video: OpenVideo, table: PacketTable, tags: list[int], rejected: int) -> FrameIndex:
    if not tags:
        raise video.failure("the decoder outputs no picture")
    frame_packets = np.asarray(tags, dtype=np.int64)
    stamps = table.stamps[frame_packets]
    if table.pts.size == frame_packets.size:
        ticks = table.pts
    elif np.all(stamps >= 0) and np.all(np.diff(stamps) > 0):
        ticks = stamps
    else:
        rate = video.stream.average_rate or video.stream.guessed_rate or 30
        step = 1 / (float(rate) * float(table.time_base))
        first = int(table.pts[0]) if table.pts.size else 0
        ticks = first + np.rint(np.arange(frame_packets.size) * step).astype(np.int64)
    return FrameIndex(
        times_s=np.asarray(ticks_to_seconds(ticks, table.time_base)),
        source="decoded",
        time_base=table.time_base,
        keyframe_ticks=table.keyframe_pts,
        frame_packets=frame_packets,
        packets=table,
        packets_rejected=rejected,
    )


def build_index(video: OpenVideo) -> FrameIndex:
    """The frame index of an open video (reads the whole file; decodes only where needed).

    Containers that store presentation times (mp4, mov, Matroska) are indexed from their
    packets alone when every packet has its own timestamp. Any other container (AVI, MPEG-TS,
    ...) is checked: the first ``VERIFY_FRAMES`` decoded frames must come out with the packet
    times in increasing order, equal to the smallest packet times. When they do not, the whole
    stream is decoded once and the index comes from the decoder (source ``"decoded"``).

    Raises:
        VideoError: ``truncated`` or ``decode_error``.
    """
    trusted = stores_pts(video)
    table, tags, complete, rejected = _scan_and_check(video, verify=not trusted)
    if trusted and table.all_pts:
        return _container_index(table)
    if not tags and not trusted:
        raise video.failure("the decoder outputs no picture")
    stamps = table.stamps[np.asarray(tags, dtype=np.int64)] if tags else np.zeros(0, np.int64)
    prefix = table.pts[: stamps.size]
    agrees = stamps.size == prefix.size and np.array_equal(stamps, prefix)
    if tags and agrees and not rejected and (not complete or stamps.size == table.pts.size):
        return _container_index(table)
    if complete:
        return _index_from_tags(video, table, tags, rejected)
    return decoded_index(video)


def _container_index(table: PacketTable) -> FrameIndex:
    return FrameIndex(
        times_s=np.asarray(ticks_to_seconds(table.pts, table.time_base)),
        source="container",
        time_base=table.time_base,
        keyframe_ticks=table.keyframe_pts,
    )


def frame_index(source: VideoSource, *, uri: str | None = None, size_bytes: int | None = None) -> FrameIndex:
    """The :class:`FrameIndex` of a video: what the decoder outputs, in presentation order.

    Reads the whole file once; decodes only where the container's timestamps cannot be taken
    as the frames' times (see :func:`build_index`).

    Raises:
        VideoError: any reason from :func:`actrec_batch.video.probe` except ``too_large``.
    """
    with open_video(source, uri=uri, size_bytes=size_bytes) as video:
        return build_index(video)


def frame_timestamps(
    source: VideoSource, *, uri: str | None = None, size_bytes: int | None = None
) -> np.ndarray:
    """Presentation time, in seconds, of every frame the decoder outputs, in presentation order.

    Frame ``i`` of every index-based API in this package is element ``i`` of this array. It
    reads the whole file once, demuxing only, except where the container's timestamps must be
    checked against the decoder (see :func:`frame_index`). Times are relative to the
    container's clock, so the first frame is not necessarily at 0.0.

    Raises:
        VideoError: any reason from :func:`actrec_batch.video.probe` except ``too_large``.
    """
    return frame_index(source, uri=uri, size_bytes=size_bytes).times_s
