"""Encode RGB frames to a video file (test fixtures, re-encodes, previews).

The writer is explicit about time: with ``pts_s`` omitted, frames are spaced ``1/fps`` seconds
apart (constant frame rate); with ``pts_s`` given, each frame is stamped at that time in seconds
(variable frame rate).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from types import TracebackType

import av
import numpy as np


@dataclass(frozen=True)
class _CodecRecipe:
    """How one public codec name maps onto an FFmpeg encoder."""

    encoder: str
    pix_fmt: str
    lossless_encoder: str | None  # None: the codec cannot encode losslessly
    lossless_pix_fmt: str | None
    max_time_base_den: int | None = None  # MPEG-4 Part 2 caps the time-base denominator


_CODECS: dict[str, _CodecRecipe] = {
    # libx264rgb at qp 0 is bit-exact for RGB input, unlike yuv444p (RGB->YUV rounding).
    "h264": _CodecRecipe("libx264", "yuv420p", "libx264rgb", "rgb24"),
    "hevc": _CodecRecipe("libx265", "yuv420p", "libx265", "gbrp"),
    "vp9": _CodecRecipe("libvpx-vp9", "yuv420p", "libvpx-vp9", "gbrp"),
    "mpeg4": _CodecRecipe("mpeg4", "yuv420p", None, None, max_time_base_den=65535),
    "mjpeg": _CodecRecipe("mjpeg", "yuvj420p", None, None),
    "ffv1": _CodecRecipe("ffv1", "bgr0", "ffv1", "bgr0"),
}
_FOUR_TWO_ZERO = {"yuv420p", "yuvj420p"}
_FINE_TIME_BASE_DEN = 90_000  # fine enough for common frame rates and for VFR stamps


def _encoder_options(codec: str, crf: int | None, lossless: bool) -> dict[str, str]:
    """FFmpeg private options for ``codec`` (all values are strings, as libav expects)."""
    if codec == "h264":
        opts = {"preset": "veryfast"}
        if lossless:
            opts["qp"] = "0"
        elif crf is not None:
            opts["crf"] = str(crf)
        return opts
    if codec == "hevc":
        params = ["log-level=error"]
        if lossless:
            params.append("lossless=1")
        elif crf is not None:
            params.append(f"crf={crf}")
        return {"preset": "veryfast", "x265-params": ":".join(params)}
    if codec == "vp9":
        # realtime + cpu-used 8 is the fastest libvpx mode; quality is driven by crf alone (b=0).
        opts = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
        if lossless:
            opts["lossless"] = "1"
        else:
            opts.update({"crf": str(31 if crf is None else crf), "b": "0"})
        return opts
    return {}  # mpeg4/mjpeg use a fixed quantiser (see _fixed_qscale); ffv1 is always lossless


def _fixed_qscale(crf: int | None) -> int:
    """Map an x264-style crf (0..51) onto the MPEG quantiser scale 2 (best) .. 31 (worst)."""
    return 4 if crf is None else max(2, min(31, round(2 + crf * 29 / 51)))


_FF_QP2LAMBDA = 118  # libavcodec's quantiser -> lambda factor for global_quality


class VideoWriter:
    """Context manager that encodes RGB frames to a file.

    Any container PyAV muxes works (``.mp4``, ``.mkv``, ``.webm``, ``.avi``, ``.mov``); the
    container is chosen from the file extension.

    Args:
        path: output file; overwritten if it exists.
        fps: nominal frame rate in frames per second (> 0). Frames written without ``pts_s``
            are spaced exactly ``1/fps`` seconds apart.
        width, height: frame size in pixels. 4:2:0 codecs (lossy h264/hevc/vp9, mpeg4, mjpeg)
            need even sizes.
        codec: ``"h264"`` (libx264, yuv420p), ``"hevc"`` (libx265), ``"vp9"`` (libvpx-vp9),
            ``"mpeg4"``, ``"mjpeg"`` or ``"ffv1"`` (always lossless).
        crf: constant rate factor for h264/hevc/vp9 (lower is better; ``None``: encoder default).
            For mpeg4/mjpeg it is mapped onto the quantiser scale 2..31.
        lossless: bit-exact RGB round trip (h264 via libx264rgb at qp 0, hevc, vp9, ffv1).
        rotation: display rotation in degrees counter-clockwise (0, 90, 180 or 270), stored as a
            display matrix, so :func:`probe` reports it. Containers without display-matrix
            support (avi, webm) drop it.
        creation_time: timezone-aware time written as container metadata ``creation_time``.
        gop: keyframe interval in frames (``None``: encoder default).
        threads: encoder threads (0: let the encoder choose).

    Raises:
        ValueError: unknown codec, lossless requested for a lossy-only codec, bad size/fps/rotation,
            naive ``creation_time``, or FFmpeg refusing the settings (e.g. h264 in ``.webm``;
            FFmpeg's errors are ``ValueError`` subclasses).
        FileNotFoundError: the output directory does not exist.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float,
        width: int,
        height: int,
        codec: str = "h264",
        crf: int | None = 23,
        lossless: bool = False,
        rotation: int = 0,
        creation_time: datetime | None = None,
        gop: int | None = None,
        threads: int = 0,
    ) -> None:
        recipe = _CODECS.get(codec)
        if recipe is None:
            raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(_CODECS)}")
        if lossless and recipe.lossless_encoder is None:
            raise ValueError(f"codec {codec!r} cannot encode losslessly; use ffv1, h264, hevc or vp9")
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if width <= 0 or height <= 0:
            raise ValueError(f"width and height must be positive, got {width}x{height}")
        pix_fmt = recipe.lossless_pix_fmt if lossless else recipe.pix_fmt
        assert pix_fmt is not None
        if pix_fmt in _FOUR_TWO_ZERO and (width % 2 or height % 2):
            raise ValueError(f"codec {codec!r} ({pix_fmt}) needs an even frame size, got {width}x{height}")
        if rotation % 90 or not 0 <= rotation < 360:
            raise ValueError(f"rotation must be 0, 90, 180 or 270 degrees, got {rotation!r}")
        if creation_time is not None and creation_time.utcoffset() is None:
            raise ValueError("creation_time must be timezone-aware")

        self.path = os.fspath(path)
        self.width, self.height = width, height
        self.frames_written = 0
        rate = Fraction(fps).limit_denominator(1001 * 1000)
        self._frame_duration = 1 / rate
        # A time base that holds every multiple of 1/fps exactly, and fine enough for VFR stamps.
        den = rate.numerator
        if recipe.max_time_base_den is not None:
            den *= max(1, recipe.max_time_base_den // den)
        else:
            den = math.lcm(den, _FINE_TIME_BASE_DEN)
        self._time_base = Fraction(1, den)
        self._last_pts: int | None = None
        self._closed = False

        self._container = av.open(self.path, mode="w")
        try:
            if self._container.format.name == "avi":
                # AVI is constant-rate: its time base is the frame duration, and a finer one makes
                # the muxer pad every tick with empty frames. VFR stamps snap to the frame grid.
                self._time_base = self._frame_duration
            if creation_time is not None:
                stamp = creation_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                self._container.metadata["creation_time"] = stamp
            encoder = recipe.lossless_encoder if lossless else recipe.encoder
            assert encoder is not None
            stream = self._container.add_stream(
                encoder, rate=rate, options=_encoder_options(codec, crf, lossless)
            )
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.time_base = self._time_base
            stream.codec_context.time_base = self._time_base
            stream.thread_count = threads
            if recipe.encoder in ("mpeg4", "mjpeg"):
                stream.codec_context.qscale = True
                stream.codec_context.global_quality = _fixed_qscale(crf) * _FF_QP2LAMBDA
            if gop is not None:
                stream.codec_context.gop_size = gop
            if rotation:
                stream.set_display_rotation(rotation)
            self._stream = stream
        except BaseException:
            self._container.close()
            raise

    def write(self, frame: np.ndarray, pts_s: float | None = None) -> None:
        """Encode one frame.

        Args:
            frame: ``(height, width, 3)`` uint8 RGB array.
            pts_s: presentation time in seconds (>= 0, strictly increasing). ``None``: one frame
                duration (``1/fps``) after the previous frame, or 0 for the first frame.

        Raises:
            ValueError: wrong shape/dtype, or ``pts_s`` not after the previous frame.
            RuntimeError: the writer is closed.
        """
        if self._closed:
            raise RuntimeError(f"VideoWriter for {self.path} is closed")
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height}, {self.width}, 3) uint8 RGB frame, "
                f"got {frame.shape} {frame.dtype}"
            )
        if pts_s is None:
            pts = (
                0
                if self._last_pts is None
                else self._last_pts + round(self._frame_duration / self._time_base)
            )
        else:
            if pts_s < 0:
                raise ValueError(f"pts_s must be >= 0, got {pts_s}")
            pts = round(Fraction(pts_s) / self._time_base)
            if self._last_pts is not None and pts <= self._last_pts:
                raise ValueError(f"pts_s={pts_s} is not after the previous frame in {self.path}")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = pts
        video_frame.time_base = self._time_base
        self._container.mux(self._stream.encode(video_frame))
        self._last_pts = pts
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finalise the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
