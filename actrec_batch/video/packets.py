"""A video stream's packets: their times in stream ticks, the container's packet list and frame
index, packet numbers that survive a seek, and one packet decoded. :mod:`.timing` builds the frame
index from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from actrec_batch.video._source import OpenVideo


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
    """The video packets of a stream as the container lists them, and the frame times they imply.

    ``pts``: sorted unique int64 ticks of the packets' timestamps (presentation time, or decode
    time where the container stores no other), one per frame if the container is consistent.
    ``keyframe_pts``: sorted int64 ticks of the keyframes (decoding can start there).
    ``stamps``: each packet's timestamp in decode order (``pts``, else ``dts``; -1 if neither).
    ``pos``: each packet's byte position in decode order (-1 if the demuxer does not say).
    ``keyframe``: whether each packet is a keyframe.
    ``all_pts``: every shown packet had its own presentation timestamp, none repeated.
    """

    pts: np.ndarray
    keyframe_pts: np.ndarray
    time_base: Fraction
    stamps: np.ndarray
    pos: np.ndarray
    keyframe: np.ndarray
    all_pts: bool


@dataclass
class PacketList:
    """Collects packets in decode order while demuxing; :meth:`table` turns them into a PacketTable.

    Empty packets (demuxer flushes) are not counted, so packet ``p`` means the same packet in
    every pass over the file. Packets the demuxer marks as discard (e.g. before an mp4 edit
    list's start) are counted but give no frame time, since decoders never output them.
    """

    stamps: list[int] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    keyframe: list[bool] = field(default_factory=list)
    shown: list[int] = field(default_factory=list)
    missing_pts: int = 0

    def add(self, packet: av.Packet) -> None:
        stamp = packet.pts if packet.pts is not None else packet.dts
        self.stamps.append(-1 if stamp is None else stamp)
        self.pos.append(-1 if packet.pos is None else packet.pos)
        self.keyframe.append(bool(packet.is_keyframe))
        if not packet.is_discard and stamp is not None:
            self.shown.append(stamp)
            self.missing_pts += packet.pts is None

    def table(self, time_base: Fraction) -> PacketTable:
        stamps = np.asarray(self.stamps, dtype=np.int64)
        keyframe = np.asarray(self.keyframe, dtype=bool)
        pts = np.unique(np.asarray(self.shown, dtype=np.int64))
        return PacketTable(
            pts=pts,
            keyframe_pts=np.unique(stamps[keyframe & (stamps >= 0)]),
            time_base=time_base,
            stamps=stamps,
            pos=np.asarray(self.pos, dtype=np.int64),
            keyframe=keyframe,
            all_pts=self.missing_pts == 0 and pts.size == len(self.shown),
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


class PacketNumbers:
    """Numbers demuxed packets as :class:`PacketList` did, also after a seek (by byte position)."""

    def __init__(self, table: PacketTable) -> None:
        positions, counts = np.unique(table.pos[table.pos >= 0], return_counts=True)
        unique = set(positions[counts == 1].tolist())
        self._by_pos = {int(pos): p for p, pos in enumerate(table.pos.tolist()) if pos in unique}
        self._next: int | None = 0

    def restart(self, at_start: bool) -> None:
        """After a seek: the next packet is the first one (``at_start``) or must be found by position."""
        self._next = 0 if at_start else None

    def number(self, packet: av.Packet) -> int | None:
        """The packet's number, or ``None`` if it cannot be told (unknown position after a seek)."""
        found = self._by_pos.get(packet.pos) if packet.pos is not None and packet.pos >= 0 else None
        number = found if found is not None else self._next
        self._next = None if number is None else number + 1
        return number


def decode_packet(stream: av.video.stream.VideoStream, packet: av.Packet) -> list[av.VideoFrame] | None:
    """The frames the decoder outputs after ``packet``, or ``None`` if it rejects the packet's data.

    A damaged frame in an otherwise good file is skipped, as FFmpeg's own tools do: the file is
    still what its decoder makes of it. Only the end-of-stream flush may not fail.

    Raises:
        av.FFmpegError: any other decoder failure.
    """
    try:
        return stream.decode(packet)
    except av.InvalidDataError:
        if not packet.size:
            raise
        return None
