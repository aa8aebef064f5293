"""Nightly discovery on real stores: a local directory and S3 via moto's HTTP server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from footage import (
    BAD_FILES,
    REJECTED_NAME,
    REJECTED_NAME_ESCAPED,
    put_rejected_key,
    write_bad_files,
    write_elementary_stream,
    write_video,
)

from actrec_batch import layout
from actrec_batch.config import load_settings
from actrec_batch.discovery import discover
from actrec_batch.errors import ValidationFailed
from actrec_batch.expectations import screen_manifest, validate_manifest
from actrec_batch.manifest import read_manifest, read_quarantine
from actrec_batch.storage import open_store

DATE = dt.date(2026, 11, 24)
T0 = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)


def _build_night(src):
    """Local files of one night: 3 good videos in 2 cameras, the 4 bad ones, and a stray file."""
    day = src / "footage" / f"date={DATE}"
    good = {
        "camera=cam-01/a.mp4": write_video(
            day / "camera=cam-01/a.mp4", frames=45, fps=15.0, creation_time=T0
        ),
        "camera=cam-01/b.mkv": write_video(day / "camera=cam-01/b.mkv", frames=20, fps=10.0, codec="ffv1"),
        "camera=cam-02/c.webm": write_video(day / "camera=cam-02/c.webm", frames=25, fps=25.0, codec="vp9"),
    }
    (day / "camera=cam-01/a.mp4.labels.json").write_text(
        json.dumps({"video": "a.mp4", "fps": 15.0, "duration_s": 3.0, "events": []})
    )
    write_bad_files(day / "camera=cam-02", good_source=good["camera=cam-01/a.mp4"])
    write_video(day / "stray.mp4", frames=5)
    return good


def _store_for(kind, tmp_path, request):
    if kind == "local":
        return f"{tmp_path}/store"
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/actrec"


@pytest.fixture(params=["local", "s3"])
def night(request, tmp_path):
    src = tmp_path / "src"
    good = _build_night(src)
    settings = load_settings(
        {"store": _store_for(request.param, tmp_path, request), "probe_workers": 4}, env={}
    )
    store = open_store(settings.store)
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        store.put_file(path.relative_to(src).as_posix(), path)
    return settings, store, good


def test_discover_manifests_good_and_quarantines_bad(night):
    settings, store, good = night
    result = discover(settings, DATE, store=store)
    out = result.to_json()
    assert out["videos_discovered"] == 3 + len(BAD_FILES) + 1
    assert out["videos_manifested"] == 3
    assert out["videos_quarantined"] == len(BAD_FILES) + 1
    assert out["videos_discovered"] == out["videos_manifested"] + out["videos_quarantined"]
    reasons = {q["uri"].rsplit("/", 1)[-1]: q["reason"] for q in out["quarantine"]}
    assert reasons == {**BAD_FILES, "stray.mp4": "bad_layout"}
    assert len(set(BAD_FILES.values())) == 5  # five distinct reasons
    for q in out["quarantine"]:
        assert q["uri"].startswith(store.root_uri)
        assert q["detail"]

    manifest = read_manifest(store, DATE).to_pylist()
    by_key = {r["key"].split(f"date={DATE}/", 1)[1]: r for r in manifest}
    assert set(by_key) == set(good)
    a = by_key["camera=cam-01/a.mp4"]
    assert (a["camera_id"], a["codec"], a["width"], a["height"]) == ("cam-01", "h264", 64, 48)
    assert a["fps"] == pytest.approx(15.0) and a["frame_count"] == 45
    assert a["duration_s"] == pytest.approx(3.0, abs=0.1)
    assert a["creation_time"] == T0
    assert a["labels_key"] == layout.sidecar_key(a["key"])
    assert by_key["camera=cam-01/b.mkv"]["codec"] == "ffv1"
    assert by_key["camera=cam-02/c.webm"]["camera_id"] == "cam-02"
    assert by_key["camera=cam-02/c.webm"]["labels_key"] is None
    for key, path in good.items():
        assert by_key[key]["content_id"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert by_key[key]["size_bytes"] == path.stat().st_size
    assert out["manifest_uri"] == store.uri(layout.manifest_key(DATE))

    q = read_quarantine(store, DATE, "discover").to_pylist()
    assert sorted(r["reason"] for r in q) == sorted([*BAD_FILES.values(), "bad_layout"])
    assert out["validation"]["suite"] == "manifest" and out["validation"]["success"] is True
    assert out["validation"]["evaluated"] > 20 and out["validation"]["failed"] == []
    summary = json.loads(store.get_bytes(layout.discovery_summary_key(DATE)))
    assert summary["videos_discovered"] == out["videos_discovered"]


def test_rerun_replaces_the_partition(night):
    settings, store, _ = night
    first = discover(settings, DATE, store=store)
    second = discover(settings, DATE, store=store)
    assert read_manifest(store, DATE).num_rows == 3
    assert first.to_json()["quarantine"] == second.to_json()["quarantine"]
    # Fix the inputs: remove the bad files; the rerun's quarantine file no longer lists them.
    for name in BAD_FILES:
        store.delete(f"{layout.camera_prefix(DATE, 'cam-02')}{name}")
    store.delete(f"{layout.footage_prefix(DATE)}stray.mp4")
    third = discover(settings, DATE, store=store)
    assert third.videos_quarantined == 0
    assert read_quarantine(store, DATE, "discover").num_rows == 0
    assert read_manifest(store, DATE).num_rows == 3


def test_an_odd_file_is_quarantined_alone_and_the_date_goes_on(night, tmp_path):
    """One odd file must not block a night (issue 13): a video whose row the manifest suite refuses
    (8x8 frames) and an object whose key the storage rules refuse (a backslash) are each quarantined
    with their reason; a raw H.264 elementary stream (no duration anywhere) is measured and manifested."""
    settings, store, _ = night
    camera = layout.camera_prefix(DATE, "cam-03")
    tiny = write_video(tmp_path / "tiny.mkv", frames=5, width=8, height=8, codec="ffv1")
    store.put_file(camera + "tiny.mkv", tiny)
    store.put_file(camera + "raw.h264", write_elementary_stream(tmp_path / "raw.h264", frames=30))
    put_rejected_key(store, camera + REJECTED_NAME, tiny.read_bytes())

    out = discover(settings, DATE, store=store).to_json()

    assert out["videos_discovered"] == 3 + len(BAD_FILES) + 1 + 3
    assert out["videos_discovered"] == out["videos_manifested"] + out["videos_quarantined"]
    assert out["videos_manifested"] == 4
    found = {q["uri"].rsplit("/", 1)[-1]: (q["reason"], q["detail"]) for q in out["quarantine"]}
    reason, detail = found["tiny.mkv"]
    assert reason == "invalid_metadata"
    assert "width=8 fails expect_column_values_to_be_between(min_value=16.0, max_value=16384.0)" in detail
    assert "height=8 fails" in detail
    reason, detail = found[REJECTED_NAME_ESCAPED]
    assert reason == "bad_key" and "backslashes are not allowed" in detail
    assert out["validation"]["rows_quarantined"] == 1
    stored = read_quarantine(store, DATE, "discover").to_pylist()
    assert {r["uri"].rsplit("/", 1)[-1]: r["reason"] for r in stored}[REJECTED_NAME_ESCAPED] == "bad_key"
    raw = next(r for r in read_manifest(store, DATE).to_pylist() if r["key"].endswith("raw.h264"))
    assert (raw["frame_count"], raw["fps"]) == (30, 25.0)  # FFmpeg's rate for an untimed stream
    assert raw["duration_s"] == pytest.approx(30 / 25.0)


def test_fast_content_id_reads_nothing_on_s3(request, tmp_path):
    bucket = request.getfixturevalue("s3_bucket")
    video = write_video(tmp_path / "v.mp4", frames=30)
    settings = load_settings({"store": f"s3://{bucket}", "content_id": "fast"}, env={})
    store = open_store(settings.store)
    store.put_file(f"{layout.camera_prefix(DATE, 'cam-09')}v.mp4", video)
    result = discover(settings, DATE, store=store)
    assert result.videos_manifested == 1 and result.bytes_hashed == 0
    row = read_manifest(store, DATE).to_pylist()[0]
    assert row["content_id_method"] == "fast" and len(row["content_id"]) == 64


def test_s3_probe_reads_headers_not_whole_files(request, tmp_path):
    """Probing over S3 uses ranged reads: bytes fetched stay far below the file size."""
    bucket = request.getfixturevalue("s3_bucket")
    rng = np.random.default_rng(3)
    big = tmp_path / "noisy.mp4"
    from actrec_batch.video import VideoWriter

    with VideoWriter(big, fps=15.0, width=320, height=240, codec="h264", crf=10, gop=30) as w:
        for _ in range(150):
            w.write(rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8))
    size = big.stat().st_size
    assert size > 4 * 2**20
    settings = load_settings({"store": f"s3://{bucket}", "content_id": "fast"}, env={})
    store = open_store(settings.store)
    store.put_file(f"{layout.camera_prefix(DATE, 'cam-01')}noisy.mp4", big)
    result = discover(settings, DATE, store=store)
    assert result.videos_manifested == 1
    assert 0 < result.probe_bytes_read < size / 2, (result.probe_bytes_read, size)


def test_hung_probe_is_quarantined_as_timeout(tmp_path, monkeypatch):
    from actrec_batch import video

    store_root = tmp_path / "store"
    write_video(store_root / layout.camera_prefix(DATE, "cam-01") / "ok.mp4", frames=10)
    write_video(store_root / layout.camera_prefix(DATE, "cam-01") / "hangs.mp4", frames=10)
    real_probe = video.probe
    hung, release = threading.Event(), threading.Event()

    def hanging_probe(source, **kw):  # stands in for a file whose demuxer hangs until released
        if str(source).endswith("hangs.mp4"):
            hung.set()
            release.wait(120)  # only a hang catcher: discover must not wait for this
        return real_probe(source, **kw)

    monkeypatch.setattr(video, "probe", hanging_probe)
    settings = load_settings({"store": str(store_root), "probe_timeout_s": "0.5"}, env={})
    try:
        result = discover(settings, DATE)
        # No wall-clock bound (bench/suite_timings.py measures it): discover returned while the
        # probe was still hung, so it gave up on it instead of waiting.
        assert hung.is_set() and not release.is_set()
    finally:
        release.set()
    assert result.videos_manifested == 1
    assert [(q.key.rsplit("/", 1)[-1], q.reason) for q in result.quarantine] == [("hangs.mp4", "timeout")]


def test_empty_night_is_valid(tmp_path):
    settings = load_settings({"store": str(tmp_path / "store")}, env={})
    out = discover(settings, DATE).to_json()
    assert (out["videos_discovered"], out["videos_manifested"], out["videos_quarantined"]) == (0, 0, 0)


def test_manifest_suite_failure_names_the_expectation():
    import pandas as pd

    row = {
        "video_id": "v1",
        "uri": "s3://b/x.mp4",
        "key": "x.mp4",
        "camera_id": "cam/1",  # footage folders cannot name it; spaces and Unicode are fine
        "logical_date": DATE.isoformat(),
        "content_id": "0" * 64,
        "content_id_method": "sha256",
        "size_bytes": 10,
        "container": "mp4",
        "codec": "h264",
        "width": 8,
        "height": 48,
        "fps": 15.0,
        "fps_mode": "constant",
        "duration_s": 1.0,
        "frame_count": 15,
        "rotation": 0,
    }
    frame = pd.DataFrame([row, {**row, "uri": "s3://b/y.mp4", "width": 64, "camera_id": "cam 1"}])
    # Discovery's screen: each row's own failures, with the values; nothing raised.
    by_row = screen_manifest(frame, DATE).failures_by_row()
    assert sorted(by_row) == [0, 1]
    assert any(line.startswith("width=8 fails expect_column_values_to_be_between") for line in by_row[0])
    assert any(line.startswith("camera_id='cam/1' fails") for line in by_row[0])
    assert by_row[1] == ["video_id='v1' fails expect_column_values_to_be_unique()"]
    # The audit of a stored manifest: any failure raises, naming the date and the expectations.
    with pytest.raises(ValidationFailed) as err:
        validate_manifest(frame, DATE)
    msg = str(err.value)
    assert f"manifest for {DATE}" in msg
    assert "expect_column_values_to_be_unique on video_id" in msg
    assert "expect_column_values_to_be_between on width" in msg
    assert "expect_column_values_to_match_regex on camera_id" in msg


def test_screen_fails_the_date_only_for_the_manifest_as_a_whole():
    import pandas as pd

    with pytest.raises(ValidationFailed) as err:
        screen_manifest(pd.DataFrame({"video_id": ["v1"]}), DATE)
    (line,) = str(err.value).splitlines()
    assert f"manifest for {DATE} failed validation as a whole" in line
    assert "expect_table_columns_to_match_set: missing [" in line and "report it" in line


def test_cli_discover_quarantines_a_row_the_suite_refuses(tmp_path):
    """An 8x8 video probes fine but breaks the manifest suite: that video is quarantined, exit 0."""
    store_root = tmp_path / "store"
    write_video(
        store_root / layout.camera_prefix(DATE, "cam-01") / "tiny.mkv",
        frames=5,
        width=8,
        height=8,
        codec="ffv1",
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "actrec_batch",
            "discover",
            "--date",
            str(DATE),
            "--store",
            str(store_root),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    assert (payload["videos_discovered"], payload["videos_manifested"]) == (1, 0)
    (record,) = payload["quarantine"]
    assert record["reason"] == "invalid_metadata" and "width=8 fails" in record["detail"]
    assert (store_root / layout.manifest_key(DATE)).exists()


def test_cli_discover_json_keys(tmp_path):
    store_root = tmp_path / "store"
    write_video(store_root / layout.camera_prefix(DATE, "cam-01") / "ok.mp4", frames=10)
    out = subprocess.run(
        [sys.executable, "-m", "actrec_batch", "discover", "--date", str(DATE), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "ACTREC_STORE": str(store_root)},
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    for key in (
        "logical_date",
        "videos_discovered",
        "videos_manifested",
        "videos_quarantined",
        "quarantine",
        "manifest_uri",
    ):
        assert key in payload
    assert payload["videos_manifested"] == 1
