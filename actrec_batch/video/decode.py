"""Decode only the frames that are asked for.

The decoder runs with FFmpeg's own threads, jumps ahead with a keyframe seek instead of decoding
through long gaps, and resizes in libswscale while converting to RGB, so full-size RGB frames are
never built.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from actrec_batch.video._source import OpenVideo, VideoSource, open_video
from actrec_batch.video.clips import Clip, ClipIndex
from actrec_batch.video.probe import normalise_rotation
from actrec_batch.video.timing import index_table, scan_packets, seconds_to_ticks, ticks_to_seconds

SEEK_GAP_S = 2.0  # without a keyframe index, seek when the next wanted frame is further ahead
SEEK_MIN_SAVING_FRAMES = 4  # with one, seek when it skips more frames than this


@dataclass
class DecodeStats:
    """Counters a caller can pass in to see what decoding cost.

    Attributes:
        frames_decoded: frames the decoder produced, including those decoded only to reach a
            wanted frame.
        frames_returned: frames handed to the caller.
        seeks: keyframe seeks made to skip ahead (or back).
        packets_demuxed: video packets read.
        decode_s: wall seconds spent producing frames (demuxing, decoding, converting), not
            counting opening the file or a :func:`frame_timestamps` pass.
    """

    frames_decoded: int = 0
    frames_returned: int = 0
    seeks: int = 0
    packets_demuxed: int = 0
    decode_s: float = 0.0


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


class _Decoder:
    """A decoder positioned in a stream; hands out frames in presentation order."""

    def __init__(self, video: OpenVideo, threads: int, stats: DecodeStats) -> None:
        self.video = video
        self.stats = stats
        context = video.stream.codec_context
        context.thread_type = "AUTO"
        context.thread_count = threads
        self.reformatter = VideoReformatter()
        self._frames: Iterator[av.VideoFrame] | None = None
        self._pending: av.VideoFrame | None = None
        self.position: int | None = None  # ticks of the last frame handed out; None: at the start
        self.start = video.stream.start_time or 0
        self.one_second = max(1, int(1 / video.stream.time_base))

    def _generate(self) -> Iterator[av.VideoFrame]:
        stream = self.video.stream
        for packet in self.video.container.demux(stream):
            if packet.size:
                self.stats.packets_demuxed += 1
            for frame in stream.decode(packet):
                self.stats.frames_decoded += 1
                yield frame

    def next(self) -> av.VideoFrame | None:
        """The next frame, or ``None`` at the end of the stream.

        Raises:
            VideoError: ``truncated`` or ``decode_error``.
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
            self.position = _frame_ticks(frame)
        return frame

    def _seek(self, ticks: int | None) -> None:
        """Seek to the keyframe at or before ``ticks`` (``None``: the container's start)."""
        if ticks is None:
            self.video.container.seek(0)
        else:
            self.video.container.seek(ticks, backward=True, any_frame=False, stream=self.video.stream)
        if self._frames is not None:
            self._frames.close()
        self._frames, self._pending, self.position = None, None, None

    def rewind(self) -> None:
        """Back to the first frame (after a full demux pass); not counted as a seek."""
        try:
            self._seek(self.start)
        except av.FFmpegError:
            try:
                self._seek(None)
            except av.FFmpegError as error:
                raise self.video.failure("cannot seek back to the start", error) from error

    def seek_before(self, target: int) -> None:
        """Seek so that the next frame handed out is at or before ``target`` ticks.

        Seeks land on a keyframe found by decode timestamp, which for reordered streams can
        still be after ``target``; then it backs off a second at a time (doubling).
        """
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
            ticks = None if frame is None else _frame_ticks(frame)
            if ticks is None or ticks <= target:
                self._pending, self.position = frame, ticks
                return
            backoff = max(self.one_second, 2 * backoff)

    def should_seek(self, target: int, keyframes: np.ndarray | None, frame_s: float) -> bool:
        """Whether seeking reaches ``target`` cheaper than decoding through to it."""
        here = self.start - 1 if self.position is None else self.position
        if target <= here:
            return self.position is not None  # behind us: only a seek can go back
        time_base = self.video.stream.time_base
        if keyframes is None or keyframes.size == 0:
            return float((target - here) * time_base) > SEEK_GAP_S
        k = int(np.searchsorted(keyframes, target, side="right")) - 1
        if k < 0 or keyframes[k] <= here:
            return False  # no keyframe between here and the target: decoding through is best
        skipped_s = float((keyframes[k] - here) * time_base)
        return skipped_s > SEEK_MIN_SAVING_FRAMES * frame_s


def _index_keyframes(video: OpenVideo) -> np.ndarray | None:
    """Sorted keyframe timestamps from a per-frame index (mp4, avi), else ``None``."""
    index = index_table(video)
    return None if index is None else np.sort(index[0][index[1]])


def _frame_duration_s(video: OpenVideo) -> float:
    rate = video.stream.average_rate or video.stream.guessed_rate
    return 1 / float(rate) if rate else 1 / 30


def _decode_at(
    video: OpenVideo,
    targets: Sequence[tuple[int, int]],
    keyframes: np.ndarray | None,
    decoder: _Decoder,
    width: int | None,
    height: int | None,
    rotate: bool,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(index, pts_s, rgb)`` for each ``(index, ticks)`` target (ticks non-decreasing)."""
    frame_s = _frame_duration_s(video)
    time_base = video.stream.time_base
    last: tuple[int, np.ndarray] | None = None
    for index, target in targets:
        seconds = float(ticks_to_seconds(target, time_base))
        if last is not None and last[0] == target:
            decoder.stats.frames_returned += 1
            yield index, seconds, last[1]
            continue
        if decoder.should_seek(target, keyframes, frame_s):
            decoder.seek_before(target)
        while True:
            frame = decoder.next()
            if frame is None:
                raise video.failure(f"the stream ended before frame {index} at {seconds:.3f} s")
            ticks = _frame_ticks(frame)
            if ticks is None or ticks < target:
                continue
            if ticks > target:
                raise video.failure(
                    f"frame {index} at {seconds:.3f} s was not produced by the decoder "
                    "(are the frame times this video's frame_timestamps?)"
                )
            rgb = frame_to_rgb(frame, width, height, rotate, decoder.reformatter)
            break
        last = (target, rgb)
        decoder.stats.frames_returned += 1
        yield index, seconds, rgb


def _timed(stats: DecodeStats, frames: Iterator[tuple[int, float, np.ndarray]]) -> Iterator:
    """Add time spent inside ``frames`` (excluding the consumer's time) to ``stats.decode_s``."""
    while True:
        started = time.perf_counter()
        try:
            item = next(frames)
        except StopIteration:
            return
        finally:
            stats.decode_s += time.perf_counter() - started
        yield item


def decode_frames(
    source: VideoSource,
    frame_indices: Sequence[int],
    *,
    width: int | None = None,
    height: int | None = None,
    frame_times: Sequence[float] | np.ndarray | None = None,
    threads: int = 0,
    stats: DecodeStats | None = None,
    uri: str | None = None,
    rotate: bool = True,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode exactly the frames ``frame_indices``, in that order.

    Frame ``i`` is element ``i`` of :func:`actrec_batch.video.frame_timestamps` (presentation
    order). Gaps are crossed by seeking to the keyframe before the next wanted frame when that
    skips work; otherwise the decoder runs through.

    Args:
        source: local path or seekable binary file object.
        frame_indices: non-decreasing frame numbers (repeats are yielded again).
        width, height: output size in pixels after rotation; one ``None`` keeps the aspect
            ratio, both ``None`` keep the native size. Scaling happens in libswscale.
        frame_times: the video's :func:`frame_timestamps`, if already known; otherwise they are
            computed with one demux pass (which also tells where the keyframes are).
        threads: decoder threads (0: FFmpeg chooses).
        stats: counters to update, see :class:`DecodeStats`.
        uri: name used in error messages.
        rotate: turn frames upright according to the display rotation.

    Yields:
        ``(index, pts_s, rgb)``: the frame number, its time in seconds and an ``(H, W, 3)``
        uint8 RGB array.

    Raises:
        ValueError: indices decreasing or out of range, or a bad size.
        VideoError: the reasons of :func:`probe`; mid-stream failures are ``truncated`` or
            ``decode_error``.
    """
    wanted = [int(i) for i in frame_indices]
    if any(b < a for a, b in zip(wanted, wanted[1:], strict=False)):
        raise ValueError("frame_indices must be non-decreasing")
    if not wanted:
        return
    stats = DecodeStats() if stats is None else stats
    with open_video(source, uri=uri) as video:
        decoder = _Decoder(video, threads, stats)
        if frame_times is None:
            table = scan_packets(video)
            pts, keyframes = table.pts, table.keyframe_pts
            decoder.rewind()
        else:
            pts = seconds_to_ticks(frame_times, video.stream.time_base)
            keyframes = _index_keyframes(video)
        if wanted and (wanted[0] < 0 or wanted[-1] >= pts.size):
            raise ValueError(
                f"frame indices {wanted[0]}..{wanted[-1]} out of range: {video.label} has {pts.size}"
            )
        targets = [(i, int(pts[i])) for i in wanted]
        yield from _timed(stats, _decode_at(video, targets, keyframes, decoder, width, height, rotate))


def decode_clips(
    source: VideoSource,
    clips: Sequence[ClipIndex],
    *,
    width: int | None = None,
    height: int | None = None,
    threads: int = 0,
    stats: DecodeStats | None = None,
    uri: str | None = None,
    rotate: bool = True,
) -> Iterator[Clip]:
    """Decode ``clips`` (from :func:`sample_clips`) and yield them in the given order.

    Every frame is decoded once even when clips overlap. Frames wait in memory only until the
    last clip that uses them is yielded, so with clips in time order memory holds about one clip.
    The clips' own timestamps locate the frames, so no extra demux pass is needed.

    Args and raises: as :func:`decode_frames`; ValueError also if two clips disagree about a
    frame's timestamp.
    """
    stats = DecodeStats() if stats is None else stats
    times: dict[int, float] = {}
    uses: dict[int, int] = {}
    for clip in clips:
        for index, stamp in zip(clip.frame_indices, clip.timestamps_s, strict=True):
            if times.setdefault(index, stamp) != stamp:
                raise ValueError(f"clips disagree about the time of frame {index}: {times[index]} vs {stamp}")
            uses[index] = uses.get(index, 0) + 1
    if not clips:
        return
    with open_video(source, uri=uri) as video:
        decoder = _Decoder(video, threads, stats)
        ordered = sorted(times)
        ticks = seconds_to_ticks([times[i] for i in ordered], video.stream.time_base)
        targets = list(zip(ordered, (int(t) for t in ticks), strict=True))
        frames = _timed(
            stats, _decode_at(video, targets, _index_keyframes(video), decoder, width, height, rotate)
        )
        ready: dict[int, np.ndarray] = {}
        next_clip = 0
        for index, _, rgb in frames:
            ready[index] = rgb
            while next_clip < len(clips) and all(i in ready for i in clips[next_clip].frame_indices):
                clip = clips[next_clip]
                yield Clip.from_index(clip, np.stack([ready[i] for i in clip.frame_indices]))
                for i in clip.frame_indices:
                    uses[i] -= 1
                    if uses[i] == 0:
                        del ready[i]
                next_clip += 1


def iter_frames(
    source: VideoSource,
    start_s: float,
    end_s: float,
    *,
    width: int | None = None,
    height: int | None = None,
    threads: int = 0,
    stats: DecodeStats | None = None,
    uri: str | None = None,
    rotate: bool = True,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream the frames whose time lies in ``[start_s, end_s)`` seconds, one at a time.

    Seeks to the keyframe before ``start_s`` and decodes forward; only the current frame is held.

    Yields:
        ``(pts_s, rgb)``: time in seconds and an ``(H, W, 3)`` uint8 RGB array.

    Raises:
        ValueError: a bad size. VideoError: as :func:`decode_frames`.
    """
    stats = DecodeStats() if stats is None else stats
    if end_s <= start_s:
        return
    with open_video(source, uri=uri) as video:
        decoder = _Decoder(video, threads, stats)
        time_base = video.stream.time_base
        first = int(np.floor(start_s * time_base.denominator / time_base.numerator))
        if float((first - decoder.start) * time_base) > 0:
            decoder.seek_before(first)

        def frames() -> Iterator[tuple[float, np.ndarray]]:
            while (frame := decoder.next()) is not None:
                ticks = _frame_ticks(frame)
                if ticks is None:
                    continue
                seconds = float(ticks_to_seconds(ticks, time_base))
                if seconds < start_s:
                    continue
                if seconds >= end_s:
                    return
                stats.frames_returned += 1
                yield seconds, frame_to_rgb(frame, width, height, rotate, decoder.reformatter)

        yield from _timed(stats, frames())
