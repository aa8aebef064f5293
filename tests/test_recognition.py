"""Recognition with the shipped reference model: segment-cut invariance and the CLI path.

Runs on CPU (no GPU here); the model auto-selects CUDA where one exists.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from actrec_batch.config import load_settings
from actrec_batch.discovery import discover
from actrec_batch.manifest import read_manifest
from actrec_batch.model import DEFAULT_MODEL, load_model
from actrec_batch.pipeline.scoring import score_video, video_events
from actrec_batch.storage import open_store
from actrec_batch.synth import synth_footage
from actrec_batch.video import probe

DATE = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Held-out footage (seed outside the training range 1000-1999), discovered."""
    root = tmp_path_factory.mktemp("night") / "store"
    store = open_store(str(root))
    synth_footage(store, date=DATE, cameras=1, minutes=2.0, seed=4242, progress=False)
    settings = load_settings({"store": str(root)}, env={})
    discover(settings, DATE, store=store)
    return settings, store, read_manifest(store, DATE).to_pylist()


def _key(events):
    return [(e.label, round(e.start_s, 3), round(e.end_s, 3)) for e in events]


def test_events_do_not_depend_on_where_a_video_is_cut(night):
    _, store, rows = night
    model = load_model(DEFAULT_MODEL, device="cpu")
    row = rows[0]
    path = store.local_path(row["key"])
    duration = row["duration_s"]
    gop = probe(path).keyframe_interval or 250
    whole = score_video(model, path, duration_s=duration, segment_s=10_000)
    whole_events = video_events(model, whole, duration_s=duration)
    assert whole.segments == 1 and whole_events
    # One cut length is placed in the middle of the longest event, so an action surely spans a cut.
    longest = max(whole_events, key=lambda e: e.end_s - e.start_s)
    through_event = max(5.0, (longest.start_s + longest.end_s) / 2)
    for segment_s in (20.0, 37.0, 61.3, through_event):
        part = score_video(model, path, duration_s=duration, segment_s=segment_s)
        assert part.segments == math.ceil(duration / segment_s)
        np.testing.assert_array_equal(part.centers_s, whole.centers_s)
        np.testing.assert_allclose(part.scores, whole.scores, atol=1e-4)
        assert _key(video_events(model, part, duration_s=duration)) == _key(whole_events)
        # A segment decodes from the keyframe before its first grid frame: at most one GOP extra per cut.
        assert part.frames_decoded <= whole.frames_decoded + (part.segments - 1) * (gop + 1)
    # The check above is only meaningful if some event really straddles a cut.
    assert any(
        math.floor(e.start_s / through_event) != math.floor(e.end_s / through_event) for e in whole_events
    )


def test_infer_on_the_local_runner_publishes_then_eval_json(night):
    """`actrec infer --runner local --publish`, what replaced `actrec infer-local`: in this process,
    staged, validated and published like every run."""
    settings, _, rows = night
    # Its own warehouse: the default (./.actrec/warehouse.duckdb) may hold `make demo`'s events of
    # the same date, which `actrec eval` would score against this footage's ground truth.
    warehouse = f"duckdb:///{os.path.dirname(settings.store)}/warehouse.duckdb"
    env = {**os.environ, "ACTREC_STORE": settings.store, "ACTREC_WAREHOUSE_URL": warehouse}
    infer = subprocess.run(
        [
            sys.executable,
            "-m",
            "actrec_batch",
            "infer",
            "--runner",
            "local",
            "--publish",
            "--date",
            str(DATE),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert infer.returncode == 0, infer.stderr
    out = json.loads(infer.stdout.strip().splitlines()[-1])
    assert out["status"] == "success" and not out["ray_used"]  # validated and published, without Ray
    assert out["videos_processed"] == len(rows) and out["events"] > 0
    assert out["videos_discovered"] == out["videos_processed"] + out["videos_quarantined"]
    ev = subprocess.run(
        [sys.executable, "-m", "actrec_batch", "eval", "--date", str(DATE), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout.strip().splitlines()[-1])
    assert report["tiou"] == 0.5
    for key in ("precision", "recall", "f1", "per_class"):
        assert key in report
    assert set(report["per_class"]) >= {"fall", "walk", "wave"}
    # A smoke floor on 2 minutes of held-out footage: a broken pipeline or untrained weights score ~0.
    # The model's real quality is measured on 48 min of held-out footage in its MODEL_CARD.md.
    assert report["f1"] >= 0.3, report


def test_the_old_infer_local_command_names_the_new_one():
    old = subprocess.run(
        [sys.executable, "-m", "actrec_batch", "infer-local", "--date", str(DATE), "--segment-seconds", "9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert old.returncode == 2 and old.stdout == ""
    [line] = old.stderr.splitlines()
    assert "actrec infer --runner local --publish" in line


def test_a_video_that_breaks_after_discovery_is_quarantined_not_fatal(tmp_path):
    from actrec_batch.manifest import read_quarantine
    from actrec_batch.pipeline.job import InferenceJob, RunSpec

    store = open_store(str(tmp_path / "store"))
    synth_footage(store, date=DATE, cameras=2, minutes=0.3, seed=4343, progress=False)
    settings = load_settings({"store": str(tmp_path / "store"), "runner": "local"}, env={})
    discover(settings, DATE, store=store)
    broken = read_manifest(store, DATE).to_pylist()[0]
    data = store.get_bytes(broken["key"])
    store.put_bytes(broken["key"], data[: len(data) // 3])  # truncated after the manifest was written
    result = InferenceJob(settings, RunSpec(DATE), store=store).run()
    assert result.videos == 2 and result.videos_processed == 1
    [q] = result.quarantine
    assert q.key == broken["key"] and q.reason in {"truncated", "decode_error"} and q.stage == "infer"
    assert read_quarantine(store, DATE, "infer").to_pylist()[0]["uri"] == broken["uri"]
