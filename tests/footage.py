"""Small, known footage for tests: good videos with known content and the classic bad inputs.

Tests (not the library) may import ``av`` directly; here it writes an audio-only file, which
the library never needs to produce.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Container
from fractions import Fraction
from pathlib import Path

import numpy as np

from actrec_batch.video import VideoWriter

BAD_FILES = {
    # file name -> the quarantine reason discovery must give it
    "zero_bytes.mp4": "empty",
    "truncated.mp4": "truncated",
    "random_bytes.mp4": "not_a_video",
    "audio_only.m4a": "no_video_stream",
    "still_image.png": "not_a_video",  # one picture, not a video
    "truncated.avi": "truncated",  # the RIFF header promises more bytes than the file has
    "zeroed_frames.avi": "decode_error",  # container intact, every frame's bytes zeroed: the decoder refuses
}


def grey_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frame i is a solid grey of level (5 * i) % 256, so decoded content reveals its index."""
    return [np.full((height, width, 3), (5 * i) % 256, dtype=np.uint8) for i in range(n)]


def write_video(
    path: Path,
    *,
    frames: int = 30,
    fps: float = 15.0,
    width: int = 64,
    height: int = 48,
    codec: str = "h264",
    creation_time: dt.datetime | None = None,
    **kw,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(
        path, fps=fps, width=width, height=height, codec=codec, creation_time=creation_time, **kw
    ) as w:
        for f in grey_frames(frames, width, height):
            w.write(f)
    return path


def write_audio_only(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        n = int(seconds * rate)
        samples = (0.1 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
        for start in range(0, n, 1024):
            chunk = samples[start : start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_still_image(path: Path) -> Path:
    import av

    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(grey_frames(1)[0], format="rgb24")))
        out.mux(stream.encode(None))
    return path


def zero_avi_frames(data: bytes, which: Container[int] | None = None) -> bytes:
    """An AVI with the payload of its video chunks ("00dc") set to zeros, its structure untouched:
    every chunk, or the chunks numbered in ``which`` (0 = the first)."""
    out = bytearray(data)
    at, chunk = out.index(b"movi"), 0
    while (at := out.find(b"00dc", at)) >= 0:
        size = int.from_bytes(out[at + 4 : at + 8], "little")
        if which is None or chunk in which:
            out[at + 8 : at + 8 + size] = bytes(size)
        at, chunk = at + 8 + size, chunk + 1
    return bytes(out)


def write_bad_files(directory: Path, *, good_source: Path) -> dict[str, str]:
    """Write the bad inputs of :data:`BAD_FILES` into ``directory``; returns {file name: expected reason}."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "zero_bytes.mp4").write_bytes(b"")
    data = good_source.read_bytes()
    (directory / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (directory / "random_bytes.mp4").write_bytes(np.random.default_rng(7).bytes(50_000))
    write_audio_only(directory / "audio_only.m4a")
    write_still_image(directory / "still_image.png")
    with tempfile.TemporaryDirectory() as scratch:
        avi_data = write_video(Path(scratch) / "good.avi", frames=20, codec="mjpeg").read_bytes()
    (directory / "truncated.avi").write_bytes(avi_data[: len(avi_data) // 2])
    (directory / "zeroed_frames.avi").write_bytes(zero_avi_frames(avi_data))
    return dict(BAD_FILES)


def write_elementary_stream(path: Path, *, frames: int = 30) -> Path:
    """A raw H.264 elementary stream (``.h264``): no container, no timestamps, no duration, no seeking."""
    import av

    with tempfile.TemporaryDirectory() as scratch:
        source = write_video(Path(scratch) / "src.mp4", frames=frames)
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(source)) as src, av.open(str(path), "w", format="h264") as out:
            stream = out.add_stream_from_template(src.streams.video[0])
            for packet in src.demux(src.streams.video[0]):
                if packet.size:
                    packet.stream = stream
                    out.mux(packet)
    return path


# A key the storage rules reject, and its name as a quarantine record's URI ends.
REJECTED_NAME, REJECTED_NAME_ESCAPED = "back\\slash.mp4", "back%5Cslash.mp4"


def put_rejected_key(store, key: str, data: bytes) -> None:
    """Write an object the store's own API refuses (its key breaks the key rules), as another tool
    writing to the same directory or bucket would."""
    if getattr(store, "root", None) is not None:
        path = store.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        store._client.put_object(Bucket=store.bucket, Key=store._base + key, Body=data)


def discovered_night(store_uri: str, date: dt.date, *, cameras: int, minutes: float, seed: int):
    """Synthetic labelled footage of ``date`` in the store at ``store_uri``, discovered (its
    manifest written); returns the store."""
    from actrec_batch.config import load_settings
    from actrec_batch.discovery import discover
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    store = open_store(store_uri)
    synth_footage(store, date=date, cameras=cameras, minutes=minutes, seed=seed, progress=False)
    discover(load_settings({"store": store_uri}, env={}), date, store=store)
    return store
