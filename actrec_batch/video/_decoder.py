"""A decoder positioned in a stream that finds frames of a :class:`FrameIndex` again.

With a ``"container"`` index a decoded frame is known by its timestamp; with a ``"decoded"``
index by the packet that produced it (each packet goes into the decoder with its number as
pts, and the decoder hands that on to the frame). :class:`OutOfStep` says the decoder did not
produce what the index promised; the caller then rebuilds the index from the decoder or
decodes sequentially, since that is an inconsistency of ours, not a fault of the file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from actrec_batch.video._source import OpenVideo
from actrec_batch.video.packets import PacketNumbers, decode_packet, seconds_to_ticks, ticks_to_seconds
from actrec_batch.video.probe import normalise_rotation
from actrec_batch.video.timing import FrameIndex

SEEK_GAP_S = 2.0  # without a keyframe index, seek when the next wanted frame is further ahead
SEEK_MIN_SAVING_FRAMES = 4  # with one, seek when it skips more frames than this
_SEEK_TRIES = 3  # keyframes tried (each further back) before a decoded-index seek rewinds
# Decoders with a reduced-resolution path (FFmpeg's ``lowres``: decode at 1/2, 1/4 or 1/8 size).
# H.264, HEVC, VP9 and AV1 have none.
LOWRES_CODECS = {"mjpeg": 3}


class OutOfStep(Exception):
    """The decoder did not produce a frame where the index says one is."""


def _output_size(width: int | None, height: int | None, src_w: int, src_h: int) -> tuple[int, int]:
    """Requested size; a missing side keeps the source aspect ratio."""
    if width is not None and width < 1 or height is not None and height < 1:
        raise ValueError(f"width and height must be >= 1, got {width}x{height}")
    if width is None and height is None:
        return src_w, src_h
    if width is None:
        return max(1, round(src_w * height / src_h)), height  # type: ignore[operator]
    if height is None:
        return width, max(1, round(src_h * width / src_w))
    return width, height


def frame_to_rgb(
    frame: av.VideoFrame,
    width: int | None,
    height: int | None,
    rotate: bool,
    reformatter: VideoReformatter | None = None,
) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB, scaled by libswscale (bilinear), then turned upright if ``rotate``.

    ``width``/``height`` are the output (upright) size; rotation is applied to the small array.
    Passing the same ``reformatter`` for every frame of a stream reuses its swscale context,
    which is several times faster than building one per frame.
    """
    quarter_turns = normalise_rotation(frame.rotation) // 90 if rotate else 0
    sideways = quarter_turns % 2 == 1
    src_w, src_h = (frame.height, frame.width) if sideways else (frame.width, frame.height)
    out_w, out_h = _output_size(width, height, src_w, src_h)
    coded_w, coded_h = (out_h, out_w) if sideways else (out_w, out_h)
    reformatter = VideoReformatter() if reformatter is None else reformatter
    rgb = reformatter.reformat(frame, format="rgb24", width=coded_w, height=coded_h).to_ndarray()
    if quarter_turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    return rgb


def _frame_ticks(frame: av.VideoFrame) -> int | None:
    return frame.pts if frame.pts is not None else frame.dts


def frame_duration_s(video: OpenVideo) -> float:
    rate = video.stream.average_rate or video.stream.guessed_rate
    return 1 / float(rate) if rate else 1 / 30


def reduce_resolution(context: av.CodecContext, min_side: int) -> int:
    """Let a codec with a reduced-resolution path (:data:`LOWRES_CODECS`) decode at the smallest
    1/2**n size whose both sides stay >= ``min_side`` pixels (so frames are only ever scaled
    down afterwards). Must come before the codec opens. Returns n (0: full size)."""
    steps = LOWRES_CODECS.get(context.name, 0)
    n = 0
    while n < steps and min(context.width, context.height) >> (n + 1) >= min_side:
        n += 1
    if n:
        context.options = {**context.options, "lowres": str(n)}
    return n


class FrameDecoder:
    """Hands out the frames of ``index`` in presentation order, seeking where that saves work.

    A frame's *key* orders frames: its stream ticks for a container index, its frame number
    for a decoded one. ``stats`` is a :class:`~actrec_batch.video.DecodeStats`.
    """

    def __init__(
        self, video: OpenVideo, index: FrameIndex, threads: int, stats: Any, min_side: int | None = None
    ) -> None:
        self.video = video
        self.index = index
        self.stats = stats
        self.threads = threads
        context = video.stream.codec_context
        if not context.is_open:  # a fallback reuses the codec an earlier pass opened
            context.thread_type = "AUTO"
            context.thread_count = threads
            if min_side is not None:
                reduce_resolution(context, min_side)
        self.reformatter = VideoReformatter()
        self.decoded = index.source == "decoded"
        self.sequential = False  # set after a decoded-index seek went wrong: decode straight through
        self._ordinal = -1  # sequential mode: output number of the last frame since the start
        self._frames: Iterator[av.VideoFrame] | None = None
        self._packets: Iterator[av.Packet] | None = None
        self._pending: av.VideoFrame | None = None
        self.position: int | None = None  # key of the last frame handed out; None: at the start
        self.start = video.stream.start_time or 0
        self.one_second = max(1, int(1 / video.stream.time_base))
        self.frame_s = frame_duration_s(video)
        if self.decoded:
            table, frame_packets = index.packets, index.frame_packets
            assert table is not None and frame_packets is not None
            self.numbers = PacketNumbers(table)
            self.frame_of_packet = {int(p): i for i, p in enumerate(frame_packets.tolist())}
            packet_frame = np.full(table.stamps.size, -1, np.int64)
            packet_frame[frame_packets] = np.arange(frame_packets.size)
            self.keyframe_packets = np.flatnonzero(table.keyframe & (packet_frame >= 0))
            self.keyframe_frames = packet_frame[self.keyframe_packets]
            self.keys = np.sort(self.keyframe_frames)
            if len(self.frame_of_packet) < frame_packets.size:
                # One packet made two frames: its number cannot tell them apart, the count can.
                self.sequential, stats.fallback = True, "sequential"
        else:
            self.keys = index.keyframe_ticks

    def key_of(self, seconds: float) -> int:
        """The key of the frame on screen at ``seconds``."""
        if not self.decoded:
            return int(seconds_to_ticks(seconds, self.index.time_base))
        return max(0, int(np.searchsorted(self.index.times_s, seconds + 1e-9, side="right")) - 1)

    def seconds_of(self, key: int) -> float:
        if self.decoded:
            return float(self.index.times_s[key])
        return float(ticks_to_seconds(key, self.index.time_base))

    def ticks(self, seconds: float) -> int:
        """``seconds`` as a distance in keys (stream ticks; container index only)."""
        return int(seconds_to_ticks(seconds, self.index.time_base))

    def index_of(self, key: int) -> int:
        """Frame number of the frame with key ``key`` (container index)."""
        seconds = self.seconds_of(key)
        return int(np.searchsorted(self.index.times_s, seconds - 1e-9, side="left"))

    def skip_nonref(self, on: bool) -> None:
        """Whether the decoder skips frames no other frame refers to (FFmpeg ``skip_frame``
        ``NONREF``). Changed only right after a seek, which flushes the decoder, so no frame
        decoded under the other setting is still in flight (frame threads hold a few)."""
        self.video.stream.codec_context.skip_frame = "NONREF" if on else "DEFAULT"

    def hold(self, frame: av.VideoFrame, position: int) -> None:
        """Give ``frame`` back: :meth:`next` hands it out again; ``position`` is where we stand."""
        self._pending, self.position = frame, position

    def frame_key(self, frame: av.VideoFrame) -> int | None:
        """The key of ``frame``, the one :meth:`next` just handed out."""
        if self.sequential:
            return self._ordinal
        if self.decoded:
            return None if frame.pts is None else self.frame_of_packet.get(int(frame.pts))
        return _frame_ticks(frame)

    def _demuxed(self) -> Iterator[av.Packet]:
        if self._packets is None:
            self._packets = self.video.container.demux(self.video.stream)
        return self._packets

    def _generate(self) -> Iterator[av.VideoFrame]:
        """Decoded frames from where the demuxer stands. Sequential mode replays the pass that
        built the index exactly (every packet from the start, frames counted in output order),
        so a frame is known by its ordinal even where packet numbers would not tell it."""
        stream = self.video.stream
        started = not self.decoded or self.sequential
        for packet in self._demuxed():
            if packet.size:
                self.stats.packets_demuxed += 1
                if self.decoded:
                    number = self.numbers.number(packet)
                    if number is None:
                        raise OutOfStep(f"packet at byte {packet.pos} is not in the index")
                    started = started or bool(self.index.packets.keyframe[number])
                    if not started:
                        continue  # decoding must start at a keyframe, or references are missing
                    packet.pts = number
            frames = decode_packet(stream, packet)
            if frames is None:
                self.stats.packets_rejected += 1
                continue
            for frame in frames:
                self.stats.frames_decoded += 1
                if self.sequential:
                    if frame.pts is None:
                        continue  # the index pass did not count it either
                    self._ordinal += 1
                yield frame

    def next(self) -> av.VideoFrame | None:
        """The next frame, or ``None`` at the end of the stream.

        Raises:
            VideoError: ``truncated`` or ``decode_error``. OutOfStep: lost count after a seek.
        """
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        if self._frames is None:
            self._frames = self._generate()
        try:
            frame = next(self._frames, None)
        except av.FFmpegError as error:
            self._frames = None
            raise self.video.failure("decoding failed", error) from error
        if frame is not None:
            key = self.frame_key(frame)
            self.position = key if key is not None else self.position
        return frame

    def _seek(self, ticks: int | None) -> None:
        """Seek to the keyframe at or before ``ticks`` (``None``: the container's start)."""
        if ticks is None:
            self.video.container.seek(0)
        else:
            self.video.container.seek(ticks, backward=True, any_frame=False, stream=self.video.stream)
        if self._frames is not None:
            self._frames.close()
        self._frames, self._packets, self._pending, self.position = None, None, None, None
        self._ordinal = -1

    def rewind(self) -> None:
        """Back to the first frame (after a full demux pass); not counted as a seek."""
        if self.decoded:
            try:
                self._seek(None)
            except av.FFmpegError as error:
                raise self.video.failure("cannot seek back to the start", error) from error
            self.numbers.restart(at_start=True)
            return
        try:
            self._seek(self.start)
        except av.FFmpegError:
            try:
                self._seek(None)
            except av.FFmpegError as error:
                raise self.video.failure("cannot seek back to the start", error) from error

    def seek_before(self, target: int) -> None:
        """Seek so that the next frame handed out is at or before key ``target``."""
        if self.decoded:
            self._seek_packet(target)
            return
        # Container seeks land on a keyframe found by decode timestamp, which for reordered
        # streams can still be after ``target``; then it backs off a second at a time (doubling).
        backoff = 0
        while True:
            self.stats.seeks += 1
            at = target - backoff
            if at <= self.start:
                self.rewind()
                return
            try:
                self._seek(at)
            except av.FFmpegError:
                self.rewind()
                return
            frame = self.next()
            key = None if frame is None else self.frame_key(frame)
            if frame is not None and (key is None or key <= target):
                self._pending, self.position = frame, key
                return
            # Landed after the target, or where nothing decodes (MPEG-TS seeks by byte position
            # and can land past the last keyframe): further back.
            backoff = max(self.one_second, 2 * backoff)

    def _seek_packet(self, target: int) -> None:
        """Decoded index: seek to the last keyframe packet whose frame is at or before frame
        ``target`` (so open-GOP leading frames of later keyframes still have their references);
        checked by the packet the demuxer lands on, else further back, else from the start."""
        table = self.index.packets
        frame_packet = int(self.index.frame_packets[target])
        fits = (self.keyframe_frames <= target) & (self.keyframe_packets <= frame_packet)
        for packet in self.keyframe_packets[fits][::-1][:_SEEK_TRIES]:
            self.stats.seeks += 1
            try:
                self._seek(int(table.stamps[packet]))
            except av.FFmpegError:
                break
            self.numbers.restart(at_start=False)
            demux = self._demuxed()
            first = next((p for p in demux if p.size), None)
            number = None if first is None else self.numbers.number(first)
            if number is not None and number <= packet:  # found by position: numbered alike again
                self._packets = itertools.chain([first], demux)
                return
        self.rewind()

    def should_seek(self, target: int) -> bool:
        """Whether seeking reaches key ``target`` cheaper than decoding through to it."""
        if self.sequential:
            return False
        here = (self.start - 1 if not self.decoded else -1) if self.position is None else self.position
        if target <= here:
            return self.position is not None  # behind us: only a seek can go back
        keyframes = self.keys
        if keyframes is None or keyframes.size == 0:
            return self.seconds_of(target) - self.seconds_of(max(here, 0)) > SEEK_GAP_S
        k = int(np.searchsorted(keyframes, target, side="right")) - 1
        if k < 0 or keyframes[k] <= here:
            return False  # no keyframe between here and the target: decoding through is best
        if self.decoded:
            return int(keyframes[k] - here) > SEEK_MIN_SAVING_FRAMES
        skipped_s = float((keyframes[k] - here) * self.index.time_base)
        return skipped_s > SEEK_MIN_SAVING_FRAMES * self.frame_s
