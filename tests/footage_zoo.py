"""A footage zoo: tiny videos in the containers, codecs and quirks real archives hold, written
with PyAV's encoders at test time (no binary fixtures).

Frame ``i`` of every zoo video is a flat grey of level ``16 + 8 * i`` (``code(i)``), so the frame a
lossy decoder hands back still says which source frame it is, plus a contrasting block in the
coded top-left corner, so orientation after rotation can be checked. Cases stay under
``MAX_FRAMES`` frames so levels never wrap.

Tests (not the library) may import ``av`` directly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder prints its whole config at level 3

MAX_FRAMES = 28  # levels 16 .. 232 in steps of 8
LEVEL_STEP = 8


def code_frame(i: int, width: int, height: int) -> np.ndarray:
    """``(height, width, 3)`` uint8: flat grey ``16 + 8 i`` with a contrasting corner block."""
    if not 0 <= i < MAX_FRAMES:
        raise ValueError(f"zoo frames are numbered 0..{MAX_FRAMES - 1}, got {i}")
    level = 16 + LEVEL_STEP * i
    frame = np.full((height, width, 3), level, np.uint8)
    block = max(4, min(width, height) // 5)
    frame[:block, :block] = 0 if level >= 128 else 255
    return frame


def read_code(rgb: np.ndarray) -> float:
    """The frame number a decoded frame shows (fractional), from the median of its central half."""
    h, w = rgb.shape[:2]
    centre = rgb[h // 4 : max(h // 4 + 1, 3 * h // 4), w // 4 : max(w // 4 + 1, 3 * w // 4)]
    return (float(np.median(centre)) - 16) / LEVEL_STEP


def marker_corner(rgb: np.ndarray) -> int:
    """Which corner holds the contrasting block: 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left."""
    grey = rgb.mean(axis=2)
    h, w = grey.shape
    bh, bw = max(1, h // 8), max(1, w // 8)
    corners = [grey[:bh, :bw], grey[:bh, -bw:], grey[-bh:, -bw:], grey[-bh:, :bw]]
    centre = float(np.median(grey))
    return int(np.argmax([abs(float(c.mean()) - centre) for c in corners]))


@dataclass(frozen=True)
class ZooCase:
    """One zoo video: how to write it, and what a reader must find in it.

    ``pts_s``: the presentation time of each source frame in seconds (frame ``i`` shows
    ``code_frame(i)``); ``rotation``: the display rotation the file declares (counter-clockwise).
    """

    name: str
    suffix: str
    codec: str
    fps: float = 12.0
    frames: int = 24
    width: int = 64
    height: int = 48
    fmt: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)
    pix_fmt: str = "yuv420p"
    pts_s: tuple[float, ...] | None = None  # None: constant rate from 0
    start_s: float = 0.0  # added to every timestamp
    rotation: int = 0
    audio_first: bool = False
    second_video: bool = False
    writer: str = "encode"  # "encode" or "mpeg4_packed"

    @property
    def file_name(self) -> str:
        return f"{self.name}{self.suffix}"

    def times_s(self) -> np.ndarray:
        """Presentation time of each frame relative to the first one."""
        if self.pts_s is not None:
            return np.asarray(self.pts_s) - self.pts_s[0]
        return np.arange(self.frames) / self.fps


_X264 = {"preset": "veryfast", "crf": "10"}
_VFR = (0.0, 0.05, 0.1, 0.25, 0.3, 0.32, 0.5, 0.6, 0.9, 0.95, 1.0, 1.2, 1.21, 1.4, 1.5, 1.75, 1.8, 2.0)

CASES: tuple[ZooCase, ...] = (
    # Containers and codecs.
    ZooCase(
        "h264_bframes_open_gop", ".mp4", "libx264",
        options={**_X264, "bf": "3", "g": "8", "x264-params": "open-gop=1:keyint=8:min-keyint=8:scenecut=0"},
    ),
    ZooCase("h264_mov", ".mov", "libx264", options={**_X264, "bf": "2", "g": "6"}),
    ZooCase("hevc_mkv", ".mkv", "libx265", options={"preset": "ultrafast", "x265-params": "log-level=none:bframes=3:keyint=8"}),
    ZooCase("vp9_webm", ".webm", "libvpx-vp9", options={"crf": "10", "b": "0", "g": "8", "deadline": "realtime", "cpu-used": "8"}),
    ZooCase("h264_bframes_avi", ".avi", "libx264", options={**_X264, "bf": "3", "g": "8"}),
    ZooCase("mpeg4_bframes_avi", ".avi", "mpeg4", options={"bf": "2", "g": "8", "qmin": "1", "qmax": "3"}),
    ZooCase("mpeg4_packed_avi", ".avi", "mpeg4", options={"bf": "1", "g": "8", "qmin": "1", "qmax": "3"}, writer="mpeg4_packed"),
    ZooCase("mjpeg_avi", ".avi", "mjpeg", pix_fmt="yuvj420p", options={"qmin": "1", "qmax": "3"}),
    ZooCase(
        "mpeg2_interlaced_ts", ".ts", "mpeg2video", fps=25.0, frames=26, width=64, height=48,
        options={"bf": "2", "g": "12", "qmin": "1", "qmax": "3", "flags": "+ilme+ildct", "top": "1"},
    ),
    ZooCase("h264_ts", ".ts", "libx264", options={**_X264, "bf": "3", "g": "8"}),
    ZooCase("av1_mkv", ".mkv", "libsvtav1", width=64, height=64, options={"preset": "12", "crf": "20", "g": "8"}),
    # Quirks.
    ZooCase("variable_frame_rate", ".mkv", "libx264", frames=len(_VFR), pts_s=_VFR, options={**_X264, "bf": "2"}),
    ZooCase("start_far_from_zero", ".mkv", "libx264", start_s=1000.0, options={**_X264, "bf": "3"}),
    # mp4 with B-frames: an edit list, and decode times that start below zero.
    ZooCase("negative_dts", ".mp4", "libx264", options={**_X264, "bf": "3"}),
    # The same without an edit list: the first frame is shown 0.17 s after the clock's start.
    ZooCase("mp4_without_edit_list", ".mp4", "libx264", options={**_X264, "bf": "3"}, container_options={"use_editlist": "0"}),
    ZooCase("rotated_90", ".mp4", "libx264", rotation=90, options=_X264),
    ZooCase("odd_size", ".webm", "libvpx-vp9", width=65, height=49, options={"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
    ZooCase("portrait", ".mp4", "libx264", width=48, height=80, options=_X264),
    ZooCase("one_frame", ".mp4", "libx264", frames=1, options=_X264),
    ZooCase("shorter_than_a_clip", ".mp4", "libx264", frames=6, options=_X264),
    ZooCase("audio_stream_first", ".mkv", "libx264", audio_first=True, options=_X264),
    ZooCase("two_video_streams", ".mkv", "libx264", second_video=True, options=_X264),
    ZooCase("no_duration_in_header", ".mkv", "libx264", container_options={"live": "1"}, options={**_X264, "bf": "2"}),
)  # fmt: skip

CASE_BY_NAME = {case.name: case for case in CASES}


def _video_stream(out: av.container.OutputContainer, case: ZooCase, time_base: Fraction):
    stream = out.add_stream(case.codec, rate=Fraction(case.fps).limit_denominator(1000), options=case.options)
    stream.width, stream.height, stream.pix_fmt = case.width, case.height, case.pix_fmt
    stream.time_base = time_base
    if case.pts_s is not None:  # variable rate: the encoder must keep each frame's own time
        stream.codec_context.time_base = time_base
    if case.rotation:
        stream.set_display_rotation(case.rotation)
    return stream


def _audio_stream(out: av.container.OutputContainer):
    stream = out.add_stream("mp2", rate=16000)
    stream.layout = "mono"
    return stream


def _audio_packets(stream, seconds: float):
    rate = 16000
    n = int(seconds * rate)
    for start in range(0, n, 1152):
        chunk = np.zeros((1, 1152), np.int16)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        yield from stream.encode(frame)
    yield from stream.encode(None)


def _frame_ticks(case: ZooCase, time_base: Fraction) -> list[int]:
    stamps = case.pts_s if case.pts_s is not None else [i / case.fps for i in range(case.frames)]
    return [round(Fraction(s + case.start_s).limit_denominator(10**6) / time_base) for s in stamps]


def _encode(path: Path, case: ZooCase) -> None:
    time_base = Fraction(1, 1000) if case.pts_s is not None or case.start_s else Fraction(1, 90000)
    if case.suffix == ".avi":
        time_base = 1 / Fraction(case.fps).limit_denominator(1000)
    with av.open(str(path), "w", format=case.fmt, options=case.container_options) as out:
        audio = _audio_stream(out) if case.audio_first else None
        video = _video_stream(out, case, time_base)
        other = None
        if case.second_video:
            other = out.add_stream("libx264", rate=Fraction(case.fps).limit_denominator(1000), options=_X264)
            other.width, other.height, other.pix_fmt = case.width, case.height, "yuv420p"
        if audio is not None:
            for packet in _audio_packets(audio, case.frames / case.fps):
                out.mux(packet)
        for i, ticks in enumerate(_frame_ticks(case, time_base)):
            frame = av.VideoFrame.from_ndarray(code_frame(i, case.width, case.height), format="rgb24")
            frame.pts, frame.time_base = ticks, time_base
            out.mux(video.encode(frame))
            if other is not None:
                flat = av.VideoFrame.from_ndarray(
                    np.full((case.height, case.width, 3), 250, np.uint8), "rgb24"
                )
                out.mux(other.encode(flat))
        out.mux(video.encode(None))
        if other is not None:
            out.mux(other.encode(None))


# -- MPEG-4 Part 2 "packed bitstream" (DivX/XviD in AVI) --------------------------------------
# A B-frame travels in the same AVI chunk as the P-frame after it, and the next chunk holds a
# placeholder (an N-VOP: "not coded"), so every chunk has a decode-order time of its own. The
# VOL carries DivX user data ending in "p", which tells FFmpeg's decoder to unpack them.

_VOP = b"\x00\x00\x01\xb6"
_USER_DATA = b"\x00\x00\x01\xb2DivX503b1393p"


def _n_vop(time_increment_bits: int, increment: int, coding_type: int = 1) -> bytes:
    """An N-VOP: a VOP header with ``vop_coded = 0`` (the decoder repeats or releases a frame)."""
    bits = f"{coding_type:02b}" + "0" + "1" + f"{increment:0{time_increment_bits}b}" + "1" + "0"
    bits += "0" + "1" * ((7 - (len(bits)) % 8) % 8)  # stuffing: a 0 then 1s to the byte boundary
    return _VOP + int(bits, 2).to_bytes(len(bits) // 8, "big")


def _encode_mpeg4_packed(path: Path, case: ZooCase) -> None:
    time_base = 1 / Fraction(case.fps).limit_denominator(1000)
    packets: list[tuple[bytes, bool]] = []
    encoder = av.CodecContext.create("mpeg4", "w")
    encoder.width, encoder.height, encoder.pix_fmt = case.width, case.height, case.pix_fmt
    encoder.time_base, encoder.framerate = time_base, Fraction(case.fps).limit_denominator(1000)
    encoder.options = case.options
    encoder.max_b_frames = int(case.options.get("bf", "1"))
    for i in range(case.frames):
        frame = av.VideoFrame.from_ndarray(code_frame(i, case.width, case.height), format="rgb24")
        frame.pts, frame.time_base = i, time_base
        packets += [(bytes(p), p.is_keyframe) for p in encoder.encode(frame)]
    packets += [(bytes(p), p.is_keyframe) for p in encoder.encode(None)]
    # Decode order is I P B P B ...: pack each B into the chunk of the P before it.
    chunks: list[tuple[bytes, bool]] = []
    bits = math.ceil(math.log2(max(2, round(case.fps))))  # FFmpeg: resolution = fps, av_log2(res-1)+1
    k = 0
    while k < len(packets):
        data, key = packets[k]
        if k == 0:
            data = data.replace(_VOP, _USER_DATA + _VOP, 1)
        coding = (data[data.index(_VOP) + 4] >> 6) if _VOP in data else 0
        nxt = packets[k + 1] if k + 1 < len(packets) else None
        nxt_is_b = nxt is not None and _VOP in nxt[0] and (nxt[0][nxt[0].index(_VOP) + 4] >> 6) == 2
        if coding == 1 and nxt_is_b:
            chunks.append((data + nxt[0], key))
            chunks.append((_n_vop(bits, len(chunks) % round(case.fps)), False))
            k += 2
        else:
            chunks.append((data, key))
            k += 1
    with av.open(str(path), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(case.fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = case.width, case.height, case.pix_fmt
        stream.time_base = time_base
        stream.codec_tag = "DX50"
        for n, (data, key) in enumerate(chunks):
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, n, n, time_base
            packet.is_keyframe = key
            out.mux(packet)


_WRITERS: dict[str, Callable[[Path, ZooCase], None]] = {
    "encode": _encode,
    "mpeg4_packed": _encode_mpeg4_packed,
}


def write_case(path: Path, case: ZooCase) -> Path:
    """Write ``case`` to ``path`` (its parent is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _WRITERS[case.writer](path, case)
    return path


def write_zoo(directory: Path, cases: tuple[ZooCase, ...] = CASES) -> dict[str, Path]:
    """Every case under ``directory``; returns {case name: path}."""
    return {case.name: write_case(directory / case.file_name, case) for case in cases}
