"""Video I/O on tiny videos with known content.

Frame ``i`` of the lossless fixtures carries ``i`` in its red channel and fixed gradients in
green (left to right) and blue (top to bottom), so decoded frames can be compared exactly and
their orientation checked. Tests (not the library) may import ``av`` directly, here to write an
audio-only file.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from actrec_batch.errors import VideoError
from actrec_batch.video import (
    Clip,
    ClipIndex,
    DecodeStats,
    VideoWriter,
    decode_clips,
    decode_frames,
    frame_timestamps,
    iter_frames,
    probe,
    sample_clips,
    stride_for_fps,
)

W, H, FPS = 64, 48, 30


def pattern(i: int, width: int = W, height: int = H) -> np.ndarray:
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = i % 256
    frame[..., 1] = (np.arange(width) * 255 // max(1, width - 1))[None, :]
    frame[..., 2] = (np.arange(height) * 255 // max(1, height - 1))[:, None]
    return frame


def grey(i: int) -> np.ndarray:
    return np.full((H, W, 3), (10 * i) % 256, np.uint8)


def write(path: Path, n: int, *, frame=pattern, pts_s=None, **kw) -> Path:
    kw.setdefault("fps", FPS)
    with VideoWriter(path, width=W, height=H, **kw) as writer:
        for i in range(n):
            writer.write(frame(i), None if pts_s is None else pts_s[i])
    return path


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for k in range(16):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 16000, k * 1024, Fraction(1, 16000)
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return path


def noise(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)


def write_faststart_mp4(path: Path, n: int) -> Path:
    """An h264 mp4 of noise with its index ('moov') before the data, as streaming services store it."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(n):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(noise(i), format="rgb24")))
        out.mux(stream.encode(None))
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    return path


class CountingReader(io.RawIOBase):
    """A seekable in-memory file that counts the bytes read, like the S3 ranged reader."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)
        self.bytes_read = 0
        self.name = "mem://clip.mp4"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._buffer.seek(offset, whence)

    def tell(self) -> int:
        return self._buffer.tell()

    def readinto(self, target) -> int:
        data = self._buffer.read(len(target))
        target[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Shared lossless fixtures (written once; tests only read them)."""
    root = tmp_path_factory.mktemp("videos")
    return {
        # 90 frames (3 s), Matroska: no per-frame index, so decoding finds keyframes by demuxing.
        "mkv": write(root / "ffv1.mkv", 90, codec="ffv1", lossless=True, gop=10),
        # 300 frames (10 s), mp4: every frame indexed, keyframe every 15 frames.
        "mp4": write(root / "x264rgb.mp4", 300, codec="h264", lossless=True, gop=15),
        "rotated": write(
            root / "rotated.mp4",
            12,
            codec="h264",
            lossless=True,
            rotation=90,
            creation_time=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        ),
    }


# -- writer ----------------------------------------------------------------------------------


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown codec"):
        VideoWriter(tmp_path / "a.mp4", fps=30, width=W, height=H, codec="theora9")
    with pytest.raises(ValueError, match="losslessly"):
        VideoWriter(tmp_path / "a.avi", fps=30, width=W, height=H, codec="mjpeg", lossless=True)
    with pytest.raises(ValueError, match="even frame size"):
        VideoWriter(tmp_path / "a.mp4", fps=30, width=63, height=H)
    with pytest.raises(ValueError, match="timezone-aware"):
        VideoWriter(tmp_path / "a.mp4", fps=30, width=W, height=H, creation_time=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="rotation"):
        VideoWriter(tmp_path / "a.mp4", fps=30, width=W, height=H, rotation=45)
    with VideoWriter(tmp_path / "a.mp4", fps=30, width=W, height=H) as writer:
        with pytest.raises(ValueError, match="uint8 RGB frame"):
            writer.write(np.zeros((H, W), np.uint8))
        writer.write(grey(0), pts_s=0.5)
        with pytest.raises(ValueError, match="not after the previous frame"):
            writer.write(grey(1), pts_s=0.5)


# -- probe -----------------------------------------------------------------------------------


def test_probe_lossless_matroska(videos):
    info = probe(videos["mkv"])
    assert (info.container, info.codec) == ("matroska,webm", "ffv1")
    assert (info.width, info.height, info.display_width, info.display_height) == (W, H, W, H)
    assert (info.fps, info.fps_mode, info.duration_s) == (30.0, "constant", 3.0)
    assert (info.frame_count, info.frame_count_exact) == (90, False)  # estimated: no count in mkv
    assert (info.rotation, info.creation_time, info.has_audio) == (0, None, False)
    assert info.keyframe_interval == 10
    assert info.size_bytes == videos["mkv"].stat().st_size


def test_probe_reports_rotation_and_creation_time(videos):
    info = probe(videos["rotated"])
    assert info.rotation == 90
    assert (info.width, info.height, info.display_width, info.display_height) == (W, H, H, W)
    assert info.creation_time == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert (info.frame_count, info.frame_count_exact) == (12, True)


@pytest.mark.parametrize(
    ("codec", "suffix", "container"),
    [
        ("h264", ".mp4", "mov,mp4,m4a,3gp,3g2,mj2"),
        ("mpeg4", ".avi", "avi"),
        ("vp9", ".webm", "matroska,webm"),
        ("ffv1", ".mkv", "matroska,webm"),
        ("mjpeg", ".avi", "avi"),
        ("hevc", ".mkv", "matroska,webm"),
    ],
)
def test_codecs_probe_and_decode(tmp_path, codec, suffix, container):
    n = 20
    path = write(tmp_path / f"v{suffix}", n, frame=grey, codec=codec, gop=8)
    info = probe(path)
    assert (info.container, info.codec, info.frame_count) == (container, codec, n)
    assert info.fps == pytest.approx(FPS) and info.duration_s == pytest.approx(n / FPS, abs=1e-3)
    times = frame_timestamps(path)
    np.testing.assert_allclose(times, np.arange(n) / FPS, atol=1e-3)
    decoded = list(decode_frames(path, range(n), frame_times=times))
    assert [i for i, _, _ in decoded] == list(range(n))
    means = np.array([rgb.mean() for _, _, rgb in decoded])
    np.testing.assert_allclose(means, [grey(i).mean() for i in range(n)], atol=4)


def test_variable_frame_rate_is_detected_and_timestamps_are_exact(tmp_path):
    stamps = [0.0, 0.04, 0.1, 0.25, 0.26, 0.5, 0.9, 1.0, 1.2, 1.21, 1.5, 2.0]
    for suffix, codec in ((".mkv", "ffv1"), (".mp4", "h264")):
        path = write(tmp_path / f"vfr{suffix}", len(stamps), pts_s=stamps, codec=codec, lossless=True, fps=25)
        info = probe(path)
        assert info.fps_mode == "variable", suffix
        times = frame_timestamps(path)
        assert times.tolist() == stamps
        decoded = list(decode_frames(path, [1, 4, 9]))
        assert [(i, t) for i, t, _ in decoded] == [(1, 0.04), (4, 0.26), (9, 1.21)]
        assert [int(rgb[0, 0, 0]) for _, _, rgb in decoded] == [1, 4, 9]


def test_probe_reads_a_file_object_without_reading_it_all(tmp_path):
    path = write(tmp_path / "noise.mp4", 150, frame=noise, codec="h264", lossless=True, gop=15)  # ~2 MB
    data = path.read_bytes()
    reader = CountingReader(data)
    info = probe(reader, uri="s3://bucket/noise.mp4")
    assert info == probe(path)
    assert reader.bytes_read < 0.1 * len(data), (reader.bytes_read, len(data))


def _bad_inputs(root: Path) -> dict[str, tuple[Path, str]]:
    good = write(root / "good.mp4", 60, codec="h264", gop=15)
    data = good.read_bytes()
    faststart = write_faststart_mp4(root / "faststart.mp4", 60).read_bytes()
    mkv = write(root / "good.mkv", 60, codec="ffv1", lossless=True).read_bytes()
    moov = data.index(b"moov")
    unsupported = bytearray(data)
    fourcc = unsupported.index(b"avc1", moov)  # the sample entry names the codec
    unsupported[fourcc : fourcc + 4] = b"zzzz"
    undecodable = bytearray(data)
    mdat = undecodable.index(b"mdat")
    mdat_size = int.from_bytes(undecodable[mdat - 4 : mdat], "big")
    undecodable[mdat + 4 : mdat - 4 + mdat_size] = bytes(mdat_size - 8)  # structure intact, payload zero
    files = {
        "empty": (b"", "empty", ".mp4"),
        "random_bytes": (np.random.default_rng(7).bytes(50_000), "not_a_video", ".mp4"),
        "cut_mp4": (data[: len(data) // 2], "truncated", ".mp4"),
        "cut_before_index": (data[:moov], "truncated", ".mp4"),
        "cut_faststart_mp4": (faststart[: len(faststart) // 2], "truncated", ".mp4"),
        "cut_mkv": (mkv[: len(mkv) * 9 // 10], "truncated", ".mkv"),
        "unknown_codec": (bytes(unsupported), "unsupported_codec", ".mp4"),
        "zeroed_payload": (bytes(undecodable), "decode_error", ".mp4"),
    }
    out = {}
    for name, (content, reason, suffix) in files.items():
        path = root / f"{name}{suffix}"
        path.write_bytes(content)
        out[name] = (path, reason)
    out["audio_only"] = (write_audio_only(root / "audio_only.mp4"), "no_video_stream")
    return out


def test_probe_gives_each_bad_input_its_reason(tmp_path):
    for name, (path, reason) in _bad_inputs(tmp_path).items():
        with pytest.raises(VideoError) as caught:
            probe(path, uri=f"s3://footage/{name}")
        assert caught.value.reason == reason, (name, str(caught.value))
        assert f"s3://footage/{name}" in str(caught.value)


def test_probe_refuses_files_over_the_size_limit(videos):
    with pytest.raises(VideoError) as caught:
        probe(videos["mkv"], max_bytes=1000)
    assert caught.value.reason == "too_large" and str(videos["mkv"]) in str(caught.value)


def test_truncation_found_while_decoding_is_reported(tmp_path):
    data = write_faststart_mp4(tmp_path / "fs.mp4", 60).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert probe(cut, check_tail=False).frame_count == 60  # the header alone looks whole
    with pytest.raises(VideoError) as caught:
        list(decode_frames(cut, [59], frame_times=np.arange(60) / FPS))
    assert caught.value.reason == "truncated" and str(cut) in str(caught.value)


# -- clip sampling ---------------------------------------------------------------------------


def test_sample_clips_exact_indices_and_times():
    times = np.arange(30) / 10.0  # 10 fps, 3 s
    clips = sample_clips(times, 0.5, 2.5, clip_len=3, stride=2)
    assert [c.frame_indices for c in clips] == [(5, 7, 9), (11, 13, 15), (17, 19, 21)]
    assert clips[0].timestamps_s == (0.5, 0.7, 0.9)
    assert (clips[0].start_s, clips[0].end_s) == (0.5, 1.0)
    # frames 23, 25 would need frame 27 (2.7 s), outside [0.5, 2.5): that tail is dropped
    overlapping = sample_clips(times, 0.0, 1.0, clip_len=4, stride=1, hop=2)
    assert [c.frame_indices for c in overlapping] == [(0, 1, 2, 3), (2, 3, 4, 5), (4, 5, 6, 7), (6, 7, 8, 9)]
    last = sample_clips(times, 2.8, 10.0, clip_len=2, stride=1)
    assert [(c.frame_indices, c.end_s) for c in last] == [((28, 29), pytest.approx(3.0))]
    assert sample_clips(times, 1.0, 1.0, clip_len=1, stride=1) == []
    assert sample_clips([], 0.0, 1.0, clip_len=1, stride=1) == []


def test_sample_clips_follows_irregular_timestamps():
    times = [0.0, 0.1, 0.5, 0.6, 1.4, 1.5]
    clips = sample_clips(times, 0.1, 1.5, clip_len=2, stride=1)
    assert [(c.frame_indices, c.start_s, c.end_s) for c in clips] == [((1, 2), 0.1, 0.6), ((3, 4), 0.6, 1.5)]


def test_sample_clips_rejects_bad_arguments():
    with pytest.raises(ValueError):
        sample_clips([0.0, 0.1], 0, 1, clip_len=0, stride=1)
    with pytest.raises(ValueError):
        sample_clips([0.0, 0.1], 0, 1, clip_len=1, stride=1, hop=0)
    with pytest.raises(ValueError, match="non-decreasing"):
        sample_clips([0.2, 0.1], 0, 1, clip_len=1, stride=1)


def test_stride_for_fps():
    assert [
        stride_for_fps(30, 15),
        stride_for_fps(29.97, 10),
        stride_for_fps(10, 30),
        stride_for_fps(25, 8),
    ] == [
        2,
        3,
        1,
        3,
    ]
    with pytest.raises(ValueError):
        stride_for_fps(0, 10)


def test_clip_checks_shapes():
    index = ClipIndex((0, 2), (0.0, 0.2), 0.0, 0.3)
    clip = Clip.from_index(index, np.zeros((2, 4, 4, 3), np.uint8))
    assert clip.frames.shape == (2, 4, 4, 3) and not clip.frames.flags.writeable
    with pytest.raises(ValueError, match="2 indices"):
        Clip.from_index(index, np.zeros((3, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        Clip.from_index(index, np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="strictly increasing"):
        ClipIndex((2, 2), (0.0, 0.0), 0.0, 0.1)


# -- decoding --------------------------------------------------------------------------------


def test_decode_frames_returns_exactly_the_requested_frames(videos):
    times = frame_timestamps(videos["mkv"])
    assert times.tolist() == [round(i / FPS, 3) for i in range(90)]  # Matroska keeps milliseconds
    wanted = [0, 1, 5, 5, 44, 45, 89]
    decoded = list(decode_frames(videos["mkv"], wanted))
    assert [(i, t) for i, t, _ in decoded] == [(i, times[i]) for i in wanted]
    for i, _, rgb in decoded:
        np.testing.assert_array_equal(rgb, pattern(i))


def test_sparse_decoding_seeks_instead_of_decoding_through(videos):
    times = frame_timestamps(videos["mp4"])
    np.testing.assert_allclose(times, np.arange(300) / FPS, atol=1e-9)
    stats = DecodeStats()
    wanted = [10, 150, 151, 290]
    decoded = list(decode_frames(videos["mp4"], wanted, frame_times=times, stats=stats))
    for i, _, rgb in decoded:
        np.testing.assert_array_equal(rgb, pattern(i))
    assert stats.seeks >= 2 and stats.frames_returned == 4
    assert stats.frames_decoded < 60, stats  # vs 291 when decoding through
    assert stats.decode_s > 0

    # Without a per-frame index (Matroska) the keyframes come from the demux pass.
    stats = DecodeStats()
    list(decode_frames(videos["mkv"], [3, 80], stats=stats))
    assert stats.seeks >= 1 and stats.frames_decoded < 30, stats


def test_decode_resizes_in_the_decoder(videos):
    ((_, _, small),) = decode_frames(videos["mkv"], [7], width=16, height=12)
    assert small.shape == (12, 16, 3) and small.dtype == np.uint8
    assert (small[..., 0] == 7).all()  # a flat channel stays flat when scaled
    ((_, _, half),) = decode_frames(videos["mkv"], [7], width=32)
    assert half.shape == (24, 32, 3)  # height follows the aspect ratio


def test_decode_turns_rotated_video_upright(videos):
    ((_, _, upright),) = decode_frames(videos["rotated"], [3])
    np.testing.assert_array_equal(upright, np.rot90(pattern(3)))
    ((_, _, coded),) = decode_frames(videos["rotated"], [3], rotate=False)
    np.testing.assert_array_equal(coded, pattern(3))
    ((_, _, small),) = decode_frames(videos["rotated"], [3], width=12, height=16)
    assert small.shape == (16, 12, 3)


def test_decode_clips_yields_checked_clips_in_order(videos):
    times = frame_timestamps(videos["mp4"])
    clips = sample_clips(times, 1.0, 1.5, clip_len=4, stride=2, hop=4)  # overlapping
    assert [c.frame_indices for c in clips] == [(30, 32, 34, 36), (34, 36, 38, 40), (38, 40, 42, 44)]
    stats = DecodeStats()
    decoded = list(decode_clips(videos["mp4"], clips, width=32, height=24, stats=stats))
    assert [c.frame_indices for c in decoded] == [c.frame_indices for c in clips]
    assert [c.timestamps_s for c in decoded] == [c.timestamps_s for c in clips]
    assert all(c.frames.shape == (4, 24, 32, 3) for c in decoded)
    assert [c.frames[:, 0, 0, 0].tolist() for c in decoded] == [list(c.frame_indices) for c in clips]
    assert stats.frames_returned == 8  # each shared frame decoded once
    assert decoded[0].start_s == pytest.approx(1.0) and decoded[0].end_s == pytest.approx(37 / FPS)


def test_iter_frames_streams_a_time_range(videos):
    stats = DecodeStats()
    frames = list(iter_frames(videos["mp4"], 5.0, 5.5, width=16, height=12, stats=stats))
    assert [round(t * FPS) for t, _ in frames] == list(range(150, 165))
    assert [int(rgb[0, 0, 0]) for _, rgb in frames] == list(range(150, 165))
    assert stats.seeks >= 1 and stats.frames_decoded < 40, stats
    assert list(iter_frames(videos["mkv"], 1.0, 1.0)) == []


def test_decode_rejects_bad_indices(videos):
    with pytest.raises(ValueError, match="non-decreasing"):
        list(decode_frames(videos["mkv"], [5, 4]))
    with pytest.raises(ValueError, match="out of range"):
        list(decode_frames(videos["mkv"], [90]))


def test_decoding_works_from_a_file_object(videos):
    reader = CountingReader(Path(videos["mkv"]).read_bytes())
    times = frame_timestamps(reader)
    assert times.tolist() == frame_timestamps(videos["mkv"]).tolist()
    decoded = list(decode_frames(reader, [2, 70], frame_times=times))
    assert [int(rgb[0, 0, 0]) for _, _, rgb in decoded] == [2, 70]
    (clip,) = decode_clips(reader, sample_clips(times, 0.0, 0.2, clip_len=3, stride=2))
    assert clip.frame_indices == (0, 2, 4) and clip.frames[:, 0, 0, 0].tolist() == [0, 2, 4]
