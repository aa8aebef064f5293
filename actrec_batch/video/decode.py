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

from actrec_batch.video._decoder import FrameDecoder, OutOfStep, frame_to_rgb
from actrec_batch.video._source import OpenVideo, VideoSource, open_video
from actrec_batch.video.clips import Clip, ClipIndex
from actrec_batch.video.timing import FrameIndex, build_index, decoded_index, stores_pts

__all__ = ["DecodeOptions", "DecodeStats", "decode_clips", "decode_frames", "frame_to_rgb", "iter_frames"]


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
        packets_rejected: packets whose data the decoder rejected (damaged frames, skipped as
            FFmpeg's own tools skip them; the frame on screen before stands in).
        fallback: ``None`` when the frames were found where the index said; else how they were
            found: ``"decoded_index"`` (the container's timestamps disagreed with the decoder,
            so the index was rebuilt from a decoding pass) or ``"sequential"`` (decoded
            straight through from the start, without seeking).
        stand_ins: wanted frames served by a neighbour (see :class:`DecodeOptions` ``stand_in_s``).
        stand_in_misses: wanted frames with no neighbour close enough, decoded again in full.
    """

    frames_decoded: int = 0
    frames_returned: int = 0
    seeks: int = 0
    packets_demuxed: int = 0
    decode_s: float = 0.0
    packets_rejected: int = 0
    fallback: str | None = None
    stand_ins: int = 0
    stand_in_misses: int = 0


@dataclass(frozen=True)
class DecodeOptions:
    """The keyword options of every decoder here (:func:`decode_frames`, :func:`decode_clips`,
    :func:`iter_frames`).

    Attributes:
        width, height: output size in pixels after rotation; one ``None`` keeps the aspect ratio, both
            ``None`` keep the native size. Scaling happens in libswscale.
        threads: decoder threads (0: FFmpeg chooses).
        stats: counters to update, see :class:`DecodeStats`.
        uri: name used in error messages.
        rotate: turn frames upright according to the display rotation.
        lowres: where the codec can (mjpeg; not H.264, HEVC, VP9, AV1), decode at 1/2, 1/4 or
            1/8 size, as small as keeps both sides >= the longest output side asked for (a
            ``width``/``height`` must be given), then scale down as usual. The pictures differ
            from a full-size decode by the scaling filter only.
        stand_in_s: when > 0, the decoder skips the frames no other frame refers to (FFmpeg
            ``skip_frame = "NONREF"``: x264's non-reference B-frames, often half of them), and a
            wanted frame it skips is served by its neighbour (the frame just before or after it)
            if the decoder makes that one, the one nearer to the instant the frame is wanted for (``at_s`` of :func:`decode_frames`, else the frame's own time),
            if that lies within ``stand_in_s`` seconds of it (the earlier one on a tie); if none
            does, the wanted frame itself is decoded (seek, full decode, seek back:
            ``stats.stand_in_misses``). Which frame serves depends only on the stream, not on
            where decoding started, so cutting a video into pieces changes nothing. Frames that
            are served are bit-exact with a full decode. Only with an index from the container's
            timestamps (mp4, mov, Matroska, ...); a decoded index decodes every frame.
    """

    width: int | None = None
    height: int | None = None
    threads: int = 0
    stats: DecodeStats | None = None
    uri: str | None = None
    rotate: bool = True
    stand_in_s: float = 0.0
    lowres: bool = True

    def min_side(self) -> int | None:
        """The longest output side asked for: a reduced-resolution decode must keep both sides
        at least this long (``None``: native size asked for, decode at full size)."""
        sides = [s for s in (self.width, self.height) if s is not None]
        return max(sides) if sides and self.lowres else None

    def counters(self) -> DecodeStats:
        """``stats``, or fresh counters when the caller passed none."""
        return DecodeStats() if self.stats is None else self.stats


def _targets(decoder: FrameDecoder, wanted: list[tuple[int, float]]) -> list[tuple[int, float, int]]:
    return [(index, seconds, decoder.key_of(seconds)) for index, seconds in wanted]


def _decode_at(
    decoder: FrameDecoder, targets: Sequence[tuple[int, float, int]], opts: DecodeOptions
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(index, seconds, rgb)`` for each ``(index, seconds, key)`` target (keys non-decreasing).

    Raises:
        OutOfStep: the decoder skipped the wanted frame or ended before it.
    """
    last: tuple[int, np.ndarray] | None = None
    for index, seconds, target in targets:
        if last is not None and last[0] == target:
            decoder.stats.frames_returned += 1
            yield index, seconds, last[1]
            continue
        if decoder.should_seek(target):
            decoder.seek_before(target)
        while True:
            frame = decoder.next()
            if frame is None:
                raise OutOfStep(f"the stream ended before frame {index} at {seconds:.3f} s")
            key = decoder.frame_key(frame)
            if key is None or key < target:
                continue
            if key > target:
                raise OutOfStep(f"frame {index} at {seconds:.3f} s was not produced by the decoder")
            rgb = frame_to_rgb(frame, opts.width, opts.height, opts.rotate, decoder.reformatter)
            break
        last = (target, rgb)
        decoder.stats.frames_returned += 1
        yield index, seconds, rgb


def _decode_near(
    decoder: FrameDecoder,
    targets: Sequence[tuple[int, float, int]],
    opts: DecodeOptions,
    instants: Sequence[float],
) -> Iterator[tuple[int, float, np.ndarray]]:
    """:func:`_decode_at` with non-reference frames skipped and stand-ins (``opts.stand_in_s``)
    within ``opts.stand_in_s`` of each target's instant (seconds, one per target).

    ``recent`` is the latest frame made in skip mode at or before the current target: a seek
    lands on a keyframe at or before the target, and every keyframe is made, so the frames a
    seek passes over are never the nearest ones and the choice does not depend on the seeks.

    Raises:
        OutOfStep: as :func:`_decode_at` (the decoder is left not skipping).
    """
    window = decoder.ticks(opts.stand_in_s)
    stats = decoder.stats
    recent: tuple[int, av.VideoFrame] | None = None
    last: tuple[int, float, np.ndarray] | None = None  # target, served time, rgb
    decoder.skip_nonref(True)
    try:
        for (index, _, target), instant_s in zip(targets, instants, strict=True):
            if last is not None and last[0] == target:
                stats.frames_returned += 1
                yield index, last[1], last[2]
                continue
            if decoder.should_seek(target):
                decoder.seek_before(target)
                recent = None
            exact, after = None, None
            while (frame := decoder.next()) is not None:
                key = decoder.frame_key(frame)
                if key is None:
                    continue
                if key < target:
                    recent = (key, frame)
                elif key == target:
                    exact = frame
                    break
                else:
                    after = (key, frame)
                    decoder.hold(frame, target)
                    break
            if exact is not None:
                recent = (target, exact)
                served = recent
            else:
                instant = decoder.ticks(instant_s)
                frame_no = decoder.index_of(target)
                near = [
                    c
                    for c in (recent, after)
                    if c is not None
                    and abs(c[0] - instant) <= window
                    and abs(decoder.index_of(c[0]) - frame_no) == 1
                ]
                if near:
                    stats.stand_ins += 1
                    served = min(near, key=lambda c: (abs(c[0] - instant), c[0]))
                else:
                    stats.stand_in_misses += 1
                    served, recent = _decode_skipped(decoder, target)
            rgb = frame_to_rgb(served[1], opts.width, opts.height, opts.rotate, decoder.reformatter)
            last = (target, decoder.seconds_of(served[0]), rgb)
            stats.frames_returned += 1
            yield index, last[1], rgb
    finally:
        decoder.skip_nonref(False)


def _decode_skipped(
    decoder: FrameDecoder, target: int
) -> tuple[tuple[int, av.VideoFrame], tuple[int, av.VideoFrame] | None]:
    """Decode frame ``target`` in full, then go back to skipping where it was: ``(target, frame)``
    and the latest frame skip mode makes at or before it. The setting changes only with a seek
    (which flushes the decoder), so no frame of the full decode is later taken as a stand-in.

    Raises:
        OutOfStep: the decoder skipped the wanted frame or ended before it.
    """
    decoder.skip_nonref(False)
    decoder.seek_before(target)
    while True:
        frame = decoder.next()
        key = None if frame is None else decoder.frame_key(frame)
        if frame is None or key is not None and key > target:
            raise OutOfStep(f"frame at {decoder.seconds_of(target):.3f} s was not produced by the decoder")
        if key == target:
            break
    decoder.skip_nonref(True)
    decoder.seek_before(target)
    recent = None
    while (again := decoder.next()) is not None:
        key = decoder.frame_key(again)
        if key is None:
            continue
        if key > target:
            decoder.hold(again, target)
            break
        recent = (key, again)
    return (target, frame), recent


def _decode_wanted(
    video: OpenVideo,
    decoder: FrameDecoder,
    wanted: list[tuple[int, float]],
    opts: DecodeOptions,
    instants: Sequence[float] | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode ``(index, seconds)`` targets, recovering when the decoder is out of step with the index.

    A container index that disagrees with the decoder is replaced by one built from a decoding
    pass (``stats.fallback = "decoded_index"``); a decoded index whose seeks go wrong gives way
    to decoding straight through from the start (``"sequential"``). Only a straight decode that
    still misses a frame is the file's fault.

    Raises:
        VideoError: ``truncated`` or ``decode_error``.
    """
    done = 0
    while True:
        try:
            targets = _targets(decoder, wanted[done:])
            if opts.stand_in_s > 0 and not decoder.decoded and not decoder.sequential:
                at = [s for _, s in wanted] if instants is None else instants
                frames = _decode_near(decoder, targets, opts, at[done:])
            else:
                frames = _decode_at(decoder, targets, opts)
            for item in frames:
                done += 1
                yield item
            return
        except OutOfStep as error:
            stats = decoder.stats
            if not decoder.decoded:
                stats.fallback = "decoded_index"
                decoder = FrameDecoder(video, decoded_index(video), decoder.threads, stats)
                decoder.rewind()
            elif not decoder.sequential:
                stats.fallback = "sequential"
                decoder.sequential = True
                decoder.rewind()
            else:
                raise video.failure(str(error)) from None


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
    frame_times: Sequence[float] | np.ndarray | None = None,
    frame_index: FrameIndex | None = None,
    at_s: Sequence[float] | np.ndarray | None = None,
    **options,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode exactly the frames ``frame_indices``, in that order.

    Frame ``i`` is element ``i`` of :func:`actrec_batch.video.frame_timestamps` (presentation
    order). Gaps are crossed by seeking to the keyframe before the next wanted frame when that
    skips work; otherwise the decoder runs through.

    Args:
        source: local path or seekable binary file object.
        frame_indices: non-decreasing frame numbers (repeats are yielded again).
        frame_times: the video's :func:`frame_timestamps`, if already known: frame ``i`` is
            the one on screen at ``frame_times[i]``. In containers that store presentation
            times (mp4, mov, Matroska) they locate the frames directly (if the decoder
            disagrees, the index is rebuilt from a decoding pass, see :class:`DecodeStats`
            ``fallback``); in any other (AVI, MPEG-TS, ...) a decoded frame's timestamp may be
            another frame's, so the index is built here first, as without them.
        frame_index: the video's :func:`frame_index`, if already known (preferred over
            ``frame_times``); otherwise it is built here (one pass over the file).
        at_s: for ``stand_in_s``, the instant (seconds, the container's clock) each frame is
            wanted for, e.g. a sampling grid's; ``None``: each frame's own time.
        options: :class:`DecodeOptions` (``width``, ``height``, ``threads``, ``stats``, ``uri``,
            ``rotate``, ``stand_in_s``).

    Yields:
        ``(index, pts_s, rgb)``: the frame number, its time in seconds and an ``(H, W, 3)``
        uint8 RGB array. With ``stand_in_s`` the picture and ``pts_s`` may be a neighbour's.

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
    opts = DecodeOptions(**options)
    stats = opts.counters()
    with open_video(source, uri=opts.uri) as video:
        if frame_index is not None:
            decoder = FrameDecoder(video, frame_index, opts.threads, stats, opts.min_side())
        else:
            decoder = _decoder_for(video, frame_times, opts.threads, stats)
        times = decoder.index.times_s if frame_index is not None or frame_times is None else frame_times
        if wanted[0] < 0 or wanted[-1] >= len(times):
            raise ValueError(
                f"frame indices {wanted[0]}..{wanted[-1]} out of range: {video.label} has {len(times)}"
            )
        targets = [(i, float(times[i])) for i in wanted]
        if at_s is not None and len(at_s) != len(wanted):
            raise ValueError(f"at_s has {len(at_s)} instants for {len(wanted)} frames")
        instants = None if at_s is None else [float(s) for s in at_s]
        yield from _timed(stats, _decode_wanted(video, decoder, targets, opts, instants))


def _decoder_for(
    video: OpenVideo, frame_times: Sequence[float] | np.ndarray | None, threads: int, stats: DecodeStats
) -> FrameDecoder:
    """A decoder for frames located by ``frame_times`` (their times, ``None``: the index's own).

    Known times serve as the index only where the container stores presentation times; in any
    other container (AVI: decode-order times) a decoded frame's timestamp can be another
    frame's, so matching by time would hand out a wrong picture without noticing. There the
    index is built from the file (the decoder's own frame order) and the times are looked up in it.
    """
    if frame_times is not None and stores_pts(video):
        return FrameDecoder(video, FrameIndex.from_times(video, frame_times), threads, stats)
    decoder = FrameDecoder(video, build_index(video), threads, stats)
    decoder.rewind()  # building the index read the whole file
    return decoder


def decode_clips(source: VideoSource, clips: Sequence[ClipIndex], **options) -> Iterator[Clip]:
    """Decode ``clips`` (from :func:`sample_clips`) and yield them in the given order.

    Every frame is decoded once even when clips overlap. Frames wait in memory only until the
    last clip that uses them is yielded, so with clips in time order memory holds about one clip.
    The clips' own timestamps locate the frames, so no extra demux pass is needed where the
    container stores presentation times (mp4, mov, Matroska); elsewhere the frame index is built
    first, as in :func:`decode_frames`.

    Args (``options``: :class:`DecodeOptions`) and raises: as :func:`decode_frames`; ValueError also if
    two clips disagree about a frame's timestamp.
    """
    opts = DecodeOptions(**options)
    stats = opts.counters()
    times: dict[int, float] = {}
    uses: dict[int, int] = {}
    for clip in clips:
        for index, stamp in zip(clip.frame_indices, clip.timestamps_s, strict=True):
            if times.setdefault(index, stamp) != stamp:
                raise ValueError(f"clips disagree about the time of frame {index}: {times[index]} vs {stamp}")
            uses[index] = uses.get(index, 0) + 1
    if not clips:
        return
    with open_video(source, uri=opts.uri) as video:
        ordered = sorted(times)
        decoder = _decoder_for(video, [times[i] for i in ordered], opts.threads, stats)
        targets = [(i, times[i]) for i in ordered]
        frames = _timed(stats, _decode_wanted(video, decoder, targets, opts))
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
    source: VideoSource, start_s: float, end_s: float, **options
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream the frames whose time lies in ``[start_s, end_s)`` seconds, one at a time.

    Indexes the video (one pass over the file, see :func:`frame_index`), seeks to the keyframe
    before ``start_s`` and decodes forward; only the current frame is held. ``options``:
    :class:`DecodeOptions`.

    Yields:
        ``(pts_s, rgb)``: time in seconds and an ``(H, W, 3)`` uint8 RGB array.

    Raises:
        ValueError: a bad size. VideoError: as :func:`decode_frames`.
    """
    opts = DecodeOptions(**options)
    stats = opts.counters()
    if end_s <= start_s:
        return
    with open_video(source, uri=opts.uri) as video:
        index = build_index(video)
        decoder = FrameDecoder(video, index, opts.threads, stats)
        decoder.rewind()
        first, stop = np.searchsorted(index.times_s, [start_s, end_s], side="left")
        targets = [(i, float(index.times_s[i])) for i in range(int(first), int(stop))]
        frames = _decode_wanted(video, decoder, targets, opts)
        yield from ((seconds, rgb) for _, seconds, rgb in _timed(stats, frames))
