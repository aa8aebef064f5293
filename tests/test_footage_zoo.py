"""The footage zoo (tests/footage_zoo.py) through probing, indexing and grid sampling, and one
whole nightly run per store over a date that holds every zoo case, odd camera names and the
bad-input table.

The reference for every case is a plain sequential PyAV decode of the first video stream: the
decoder outputs frames in presentation order, and the zoo's known frame times say when each is
on screen. The frames the pipeline samples must show the same source frame at each grid instant,
within one source frame (the codecs are lossy), and be turned upright as the display matrix says.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import ray
from footage import (
    REJECTED_NAME,
    REJECTED_NAME_ESCAPED,
    put_rejected_key,
    write_bad_files,
    write_elementary_stream,
    write_video,
    zero_avi_frames,
)
from footage_zoo import CASES, ZooCase, marker_corner, read_code, write_case, write_zoo

from actrec_batch import layout
from actrec_batch.config import load_settings
from actrec_batch.discovery import video_id_for
from actrec_batch.model import DEFAULT_MODEL, read_card, resolve_model_ref
from actrec_batch.model.sampling import build_grid, decode_grid_frames
from actrec_batch.storage import open_store
from actrec_batch.video import (
    DecodeStats,
    decode_clips,
    decode_frames,
    frame_index,
    iter_frames,
    probe,
    sample_clips,
)

DATE = dt.date(2026, 11, 27)
# Containers that store decode-order times only, with B-frames: indexed by a decoding pass.
# Everything else keeps the demux-only index (and keyframe seeks).
DECODED_INDEX = {"h264_bframes_avi", "mpeg4_packed_avi"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    return write_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def sampling() -> dict:
    config = read_card(open_store(resolve_model_ref(DEFAULT_MODEL))).extractor.config
    return {k: config[k] for k in ("sample_fps", "clip_len", "clip_hop", "frame_width", "frame_height")}


def sequential_decode(path: Path) -> list[np.ndarray]:
    """Every frame of the first video stream, in the order a plain PyAV loop gets them."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def expected_grid(case: ZooCase, path: Path, sampling: dict):
    """(probe info, frame index, grid) the way the pipeline builds them for one video."""
    info = probe(path)
    index = frame_index(path)
    grid = build_grid(
        index.times_s,
        sample_fps=sampling["sample_fps"],
        clip_len=sampling["clip_len"],
        clip_hop=sampling["clip_hop"],
        duration_s=info.duration_s,
    )
    return info, index, grid


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_zoo_video_is_sampled_like_a_sequential_decode(zoo, sampling, case):
    path = zoo[case.name]
    reference = sequential_decode(path)
    assert [round(read_code(f)) for f in reference] == list(range(case.frames))  # the zoo wrote it right

    info, index, grid = expected_grid(case, path, sampling)
    truth = case.times_s()
    gaps = np.diff(truth) if truth.size > 1 else np.array([1 / case.fps])
    assert index.source == ("decoded" if case.name in DECODED_INDEX else "container")
    assert len(index) == case.frames and info.rotation == case.rotation
    np.testing.assert_allclose(index.times_s - index.times_s[0], truth, atol=1e-3)
    assert info.duration_s == pytest.approx(truth[-1] + gaps[-1], abs=float(gaps.max()))
    assert len(grid.grid_times) == math.ceil(info.duration_s * sampling["sample_fps"] - 1e-9)

    stats = DecodeStats()
    frames = decode_grid_frames(
        path,
        grid,
        range(len(grid.grid_times)),
        width=sampling["frame_width"],
        height=sampling["frame_height"],
        frame_index=index,
        stats=stats,
    )
    assert stats.fallback is None
    on_screen = np.searchsorted(truth, grid.grid_times + 1e-6, side="right") - 1
    turns = case.rotation // 90
    for k, (frame, source) in enumerate(zip(frames, on_screen, strict=True)):
        upright = np.rot90(reference[source], turns)
        shown, wanted = round(read_code(frame)), round(read_code(upright))
        assert abs(shown - wanted) <= 1, (k, shown, wanted)  # ms-rounded container times may shift one
        assert marker_corner(frame) == marker_corner(upright), k  # rotation applied


def test_avi_with_b_frames_seeks_by_packet_also_when_given_only_frame_times(tmp_path):
    """Sparse frames of a decode-ordered AVI: found by keyframe seeks on the decoded index. Given
    only the frame times (as an older caller would), the decoder builds that index itself rather
    than match times the AVI's frames do not carry, and finds the same frames."""
    case = ZooCase("long_h264_avi", ".avi", "libx264", frames=28, options={"crf": "10", "bf": "3", "g": "6"})
    path = write_case(tmp_path / case.file_name, case)
    index = frame_index(path)
    assert index.source == "decoded"
    wanted = [2, 13, 14, 27]
    seeking = DecodeStats()
    got = [
        round(read_code(rgb)) for _, _, rgb in decode_frames(path, wanted, frame_index=index, stats=seeking)
    ]
    assert got == wanted and seeking.seeks >= 2 and seeking.frames_decoded < case.frames
    assert seeking.fallback is None
    by_times = DecodeStats()
    frames = decode_frames(path, wanted, frame_times=index.times_s, stats=by_times)
    assert [round(read_code(rgb)) for _, _, rgb in frames] == wanted
    assert by_times.fallback is None and by_times.seeks >= 2


# Frame patterns that mix decoding through, short gaps and keyframe seeks (a 5-fps grid over
# 12-fps footage is about every third frame).
PATTERNS = ((1, 0), (3, 0), (3, 1), (5, 3))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_decoding_entry_point_returns_the_sequential_pictures(zoo, case):
    """decode_frames by frame times and by frame index, decode_clips and iter_frames hand back the
    picture a plain PyAV loop outputs as frame ``i`` (presentation order), in every container:
    the same times always give the same pictures, whatever the container's timestamps are."""
    path = zoo[case.name]
    reference = sequential_decode(path)
    if case.suffix in (".mp4", ".mov", ".mkv", ".webm"):  # presentation times: their order agrees
        with av.open(str(path)) as container:
            pts = [frame.pts for frame in container.decode(video=0)]
        assert pts == sorted(pts)
    expected = [round(read_code(np.rot90(f, case.rotation // 90))) for f in reference]
    assert expected == list(range(case.frames))
    index = frame_index(path)
    times = index.times_s
    n = len(index)

    def codes(frames) -> list[int]:
        return [round(read_code(rgb)) for rgb in frames]

    for step, first in PATTERNS:
        wanted = list(range(min(first, n - 1), n, step))
        by_times = [rgb for _, _, rgb in decode_frames(path, wanted, frame_times=times)]
        by_index = [rgb for _, _, rgb in decode_frames(path, wanted, frame_index=index)]
        assert codes(by_times) == wanted, (step, first)
        assert codes(by_index) == wanted, (step, first)
        for a, b in zip(by_times, by_index, strict=True):
            np.testing.assert_array_equal(a, b)

    clips = sample_clips(times, float(times[0]), float(times[-1]) + 1, clip_len=min(3, n), stride=2, hop=2)
    decoded = list(decode_clips(path, clips))
    assert len(decoded) == len(clips) >= 1
    for clip in decoded:
        assert codes(clip.frames) == list(clip.frame_indices)

    start = n // 3
    streamed = [rgb for _, rgb in iter_frames(path, float(times[start]), float(times[-1]) + 1e-6)]
    assert codes(streamed) == list(range(start, n))


def test_frames_a_packet_number_cannot_tell_apart_are_found_by_a_sequential_decode(tmp_path):
    """If one packet seemed to make two frames, frames are counted from the start instead."""
    case = ZooCase("h264_avi", ".avi", "libx264", frames=28, options={"crf": "10", "bf": "3", "g": "6"})
    path = write_case(tmp_path / case.file_name, case)
    index = frame_index(path)
    packets = index.frame_packets.copy()
    packets[5] = packets[4]
    stats = DecodeStats()
    wanted = [3, 5, 20]  # frame 4 is not asked for: nothing would show the mix-up but the picture
    frames = decode_frames(
        path, wanted, frame_index=dataclasses.replace(index, frame_packets=packets), stats=stats
    )
    assert [round(read_code(rgb)) for _, _, rgb in frames] == wanted
    assert stats.fallback == "sequential" and stats.seeks == 0


def write_damaged_mjpeg(path: Path) -> Path:
    """An MJPEG AVI of 20 zoo frames whose frame 10 is zeroed: a damaged frame in a good file."""
    case = ZooCase(
        "damaged", ".avi", "mjpeg", frames=20, pix_fmt="yuvj420p", options={"qmin": "1", "qmax": "3"}
    )
    good = write_case(path.with_name("undamaged.avi"), case)
    path.write_bytes(zero_avi_frames(good.read_bytes(), which={10}))
    good.unlink()
    return path


def test_a_damaged_frame_is_skipped_not_the_file(tmp_path):
    """The decoder rejects frame 10's data and decodes the rest, as ffmpeg does: the video is
    processed, and frame 9 stays on screen through frame 10's slot."""
    path = write_damaged_mjpeg(tmp_path / "damaged.avi")
    probe(path)  # its first and last frames decode: discovery keeps it
    index = frame_index(path)
    assert index.packets_rejected == 1 and len(index) == 19
    stats = DecodeStats()
    frames = decode_frames(path, range(len(index)), frame_index=index, stats=stats)
    assert [round(read_code(rgb)) for _, _, rgb in frames] == [*range(10), *range(11, 20)]
    assert stats.packets_rejected == 1
    grid = build_grid(index.times_s, sample_fps=12.0, clip_len=1, clip_hop=1, duration_s=20 / 12)
    assert grid.grid_frames[10] == 9


# -- one nightly run over the whole zoo, per store ---------------------------------------------

ODD_CAMERAS = {"lobby east": "h264_bframes_avi", "café": "h264_ts"}


@pytest.fixture(scope="module")
def local_ray(s3_endpoint):
    from s3_server import s3_test_env

    ray.init(
        address="local",  # a Ray of our own, never one another process started
        num_cpus=2,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        namespace="actrec-zoo",
        runtime_env={"env_vars": s3_test_env(s3_endpoint)},  # workers reach moto's S3 server
    )
    yield
    ray.shutdown()


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_night_of_the_zoo_is_processed_and_reconciles(local_ray, zoo, sampling, tmp_path, request, kind):
    from actrec_batch.pipeline.nightly import run_nightly
    from actrec_batch.pipeline.spec import RunSpec

    store_uri = (
        str(tmp_path / "store") if kind == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/z"
    )
    store = open_store(store_uri)
    keys = {}
    for name, path in zoo.items():
        keys[name] = f"{layout.camera_prefix(DATE, 'zoo')}{path.name}"
        store.put_file(keys[name], path)
    for camera, name in ODD_CAMERAS.items():
        store.put_file(f"{layout.camera_prefix(DATE, camera)}{zoo[name].name}", zoo[name])
    damaged_key = f"{layout.camera_prefix(DATE, 'damaged')}damaged.avi"
    store.put_file(damaged_key, write_damaged_mjpeg(tmp_path / "damaged.avi"))
    bad = write_bad_files(tmp_path / "bad", good_source=zoo["negative_dts"])
    for file_name in bad:
        store.put_file(f"{layout.camera_prefix(DATE, 'bad')}{file_name}", tmp_path / "bad" / file_name)
    # One odd file must not block the night: a row the manifest refuses, a key the store refuses.
    tiny = write_video(tmp_path / "tiny.mkv", frames=5, width=8, height=8, codec="ffv1")
    store.put_file(f"{layout.camera_prefix(DATE, 'bad')}tiny.mkv", tiny)
    put_rejected_key(store, f"{layout.camera_prefix(DATE, 'bad')}{REJECTED_NAME}", tiny.read_bytes())
    bad.update({"tiny.mkv": "invalid_metadata", REJECTED_NAME_ESCAPED: "bad_key"})
    # A raw elementary stream (no container, no times, no seeking) is decodable, so it is processed.
    raw_key = f"{layout.camera_prefix(DATE, 'raw')}raw.h264"
    store.put_file(raw_key, write_elementary_stream(tmp_path / "raw.h264", frames=30))
    settings = load_settings(
        {"store": store_uri, "warehouse_url": f"duckdb:///{tmp_path}/warehouse.duckdb"}, env={}
    )

    summary = run_nightly(settings, RunSpec(DATE))

    assert summary["status"] == "success"
    good = len(zoo) + len(ODD_CAMERAS) + 2  # + the damaged frame's file and the raw stream
    assert summary["videos_discovered"] == good + len(bad)
    assert summary["videos_discovered"] == summary["videos_processed"] + summary["videos_quarantined"]
    assert summary["videos_processed"] == good
    assert {q["uri"].rsplit("/", 1)[1]: q["reason"] for q in summary["quarantine"]} == bad
    assert summary["warehouse_quarantine"] == len(bad)  # the warehouse's quarantine rows, bad_key's too
    metrics = json.loads(store.get_bytes(layout.run_prefix(DATE, summary["run_id"]) + "metrics.json"))
    clips: dict[str, int] = {}
    for unit in metrics["units"]:
        clips[unit["video_id"]] = clips.get(unit["video_id"], 0) + unit["clips"]
        assert unit["decode_fallback"] is None
    sources = {i["video_id"]: i["frame_index"] for i in metrics["index"]}
    by_name = {case.name: case for case in CASES}
    for name, key in keys.items():
        _, index, grid = expected_grid(by_name[name], zoo[name], sampling)
        assert clips.get(video_id_for(key), 0) == grid.num_clips, name
        assert sources[video_id_for(key)] == index.source, name
    assert {i["video_id"]: i["packets_rejected"] for i in metrics["index"]}[video_id_for(damaged_key)] == 1
    raw_grid = build_grid(
        np.arange(30) / 25.0,
        duration_s=30 / 25.0,
        **{k: sampling[k] for k in ("sample_fps", "clip_len", "clip_hop")},
    )
    assert clips[video_id_for(raw_key)] == raw_grid.num_clips > 0
    cameras = {r["camera_id"] for r in _manifest_rows(store)}
    assert set(ODD_CAMERAS) <= cameras


def _manifest_rows(store) -> list[dict]:
    from actrec_batch.manifest import read_manifest

    return read_manifest(store, DATE).to_pylist()


def test_mpeg_program_stream_probes_and_decodes(tmp_path):
    """DVD/DVR exports (MPEG-PS, .mpg/.vob): their packets carry no byte position, which the
    probe's end-of-file check once compared with a number (a probe_error quarantine)."""
    case = ZooCase(
        "mpeg_ps", ".mpg", "mpeg2video", fps=25.0, options={"bf": "2", "g": "12", "qmin": "1", "qmax": "3"}
    )
    path = write_case(tmp_path / case.file_name, case)
    assert probe(path).container == "mpeg"
    index = frame_index(path)
    assert len(index) == case.frames
    wanted = [0, 11, 23]
    assert [round(read_code(rgb)) for _, _, rgb in decode_frames(path, wanted, frame_index=index)] == wanted
