"""Synthetic footage: deterministic labels that match what is drawn, at the contract's keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import re
from collections import Counter

import numpy as np
import pytest

from actrec_batch.errors import ConfigError
from actrec_batch.synth import (
    LABELS,
    VideoSpec,
    labels_sidecar,
    plan_footage,
    plan_timeline,
    render_video,
    synth_footage,
)
from actrec_batch.synth import poses as P
from actrec_batch.synth.scene import make_scene
from actrec_batch.synth.timeline import MIN_GAP_S, Figure, Look, Segment, Stage, Timeline

DATE = dt.date(2026, 11, 24)
SMALL = {"width": 96, "height": 64, "fps": 10.0}


@pytest.fixture(scope="module")
def long_plan() -> Timeline:
    """30 minutes of timeline, planned but not rendered."""
    return plan_timeline(np.random.default_rng(123), 30 * 60.0, 15.0)


def _first_frames(video, n: int = 5) -> np.ndarray:
    return np.stack(list(itertools.islice(render_video(video.spec), n)))


def test_same_seed_same_sidecars_and_frames_other_seed_differs() -> None:
    a = plan_footage(DATE, cameras=2, minutes=1.0, seed=7, **SMALL)
    b = plan_footage(DATE, cameras=2, minutes=1.0, seed=7, **SMALL)
    c = plan_footage(DATE, cameras=2, minutes=1.0, seed=8, **SMALL)
    sidecars = [
        [json.dumps(labels_sidecar(v, seed=s, codec="h264")) for v in p] for p, s in ((a, 7), (b, 7), (c, 8))
    ]
    assert sidecars[0] == sidecars[1]
    assert [json.loads(x)["events"] for x in sidecars[0]] != [json.loads(x)["events"] for x in sidecars[2]]
    assert np.array_equal(_first_frames(a[0]), _first_frames(b[0]))
    assert not np.array_equal(_first_frames(a[0]), _first_frames(c[0]))
    assert not np.array_equal(_first_frames(a[0]), _first_frames(a[1]))  # cameras look different


def test_sidecar_matches_the_contract() -> None:
    video = plan_footage(DATE, cameras=1, minutes=2.0, seed=1, **SMALL)[0]
    sidecar = json.loads(json.dumps(labels_sidecar(video, seed=1, codec="h264")))
    assert {"video", "fps", "duration_s", "events"} <= set(sidecar)
    assert sidecar["video"] == video.key.rsplit("/", 1)[1]
    assert sidecar["fps"] == 10.0
    assert sidecar["duration_s"] == pytest.approx(120.0)
    assert sidecar["events"], "two minutes of footage should contain events"
    for ev in sidecar["events"]:
        assert {"label", "start_s", "end_s"} <= set(ev)
        assert ev["label"] in LABELS
        assert isinstance(ev["start_s"], float) and isinstance(ev["end_s"], float)


def test_events_are_sorted_half_open_on_the_frame_grid(long_plan: Timeline) -> None:
    events = long_plan.events
    assert list(events) == sorted(events, key=lambda e: (e.start_s, e.end_s, e.label, e.track))
    for ev in events:
        assert 0.0 <= ev.start_s < ev.end_s <= long_plan.duration_s
        for t in (ev.start_s, ev.end_s):
            assert abs(t * long_plan.fps - round(t * long_plan.fps)) < 1e-4
    by_track: dict[int, list] = {}
    for ev in events:
        by_track.setdefault(ev.track, []).append(ev)
    for evs in by_track.values():  # one figure never does two things at once, and rests between
        for prev, nxt in itertools.pairwise(evs):
            assert nxt.start_s - prev.end_s >= MIN_GAP_S - 1e-6


def test_every_class_appears_with_no_action_gaps_between(long_plan: Timeline) -> None:
    counts = Counter(e.label for e in long_plan.events)
    assert set(counts) == set(LABELS)
    assert min(counts.values()) >= 10, counts
    covered = np.zeros(long_plan.n_frames, bool)
    for seg in long_plan.segments:
        if seg.kind in LABELS:
            covered[seg.start_frame : seg.end_frame] = True
    assert 0.1 < covered.mean() < 0.6  # most of the footage shows no action
    starts = np.flatnonzero(np.diff(covered.astype(int)) == 1)
    assert len(starts) >= 0.8 * len(long_plan.events)  # events are mostly separated by gaps
    kinds = Counter(s.kind for s in long_plan.segments)
    assert kinds["hold"] > 0 and kinds["lying"] > 0 and kinds["seated"] > 0  # look-alike stretches
    overlaps = sum(a.end_s > b.start_s for a, b in itertools.pairwise(long_plan.events))
    assert 0 < overlaps < 0.15 * len(long_plan.events)


@pytest.mark.parametrize("n", [2, 7, 15, 31])
@pytest.mark.parametrize("lean", [0.0, 0.3, 0.5])
def test_stand_up_is_sit_down_played_backwards(n: int, lean: float) -> None:
    down, up = P.sit_down_poses(n, lean), P.stand_up_poses(n, lean)
    assert up.shape == (n, P.N_PARAMS)
    assert np.array_equal(up, down[::-1])
    assert np.allclose(down[0], P.STAND)
    # the feet stay planted while the body moves
    ankles = P.skeleton_points(down, np.ones(n))[:, [P.ANKLE_N, P.ANKLE_F]]
    assert np.allclose(ankles[:, :, 1], P.ANKLE, atol=1e-6)


def test_segments_join_without_pose_jumps(long_plan: Timeline) -> None:
    by_track: dict[int, list[Segment]] = {}
    for seg in long_plan.segments:
        by_track.setdefault(seg.track, []).append(seg)
    for fig in long_plan.figures:
        segs = sorted(by_track[fig.track], key=lambda s: s.start_frame)
        assert segs[0].start_frame == fig.start_frame and segs[-1].end_frame == fig.end_frame
        assert all(a.end_frame == b.start_frame for a, b in itertools.pairwise(segs))
        motion = P.figure_motion(fig, segs, long_plan.fps, long_plan.stage)
        for seg in segs[1:]:
            k = seg.start_frame - fig.start_frame
            step = np.abs(motion.poses[k] - motion.poses[k - 1]).max()
            assert step < 0.08, (seg.kind, step)


def test_each_class_has_its_defining_motion(long_plan: Timeline) -> None:
    fps = long_plan.fps
    jump = P.jump_poses(30, {"jumps": 2.0, "height": 0.2, "depth": 0.12})
    ankles = P.skeleton_points(jump, np.ones(30))[:, P.ANKLE_N, 1]
    assert ankles.max() > P.ANKLE + 0.1 and ankles[0] == pytest.approx(P.ANKLE)  # airborne, then lands
    for direction in (1.0, -1.0):
        fall = P.fall_poses(20, {"direction": direction, "arms": 0.3, "stumble": 0.2})
        assert fall[-1, P.PY] < 0.1 and abs(abs(fall[-1, P.TORSO_LEAN]) - np.pi / 2) < 0.05
        assert np.array_equal(fall[-1], P.lying_pose({"direction": direction, "arms": 0.3, "stumble": 0.2}))
    arm = {"arm": 0.0, "shoulder": 2.7, "elbow": 0.5, "freq": 2.0, "amp": 0.5}
    wave = P.arm_raise_poses(45, fps, arm, oscillate=True)[10:-10, P.EL_N]
    hold = P.arm_raise_poses(45, fps, arm, oscillate=False)[10:-10, P.EL_N]
    assert np.ptp(wave) > 0.6 and np.ptp(hold) < 1e-9  # same raised arm; only one moves
    assert (np.diff(np.sign(np.diff(wave))) != 0).sum() >= 4
    cadence = {k: [s.params["cadence"] for s in long_plan.segments if s.kind == k] for k in ("walk", "run")}
    assert max(cadence["walk"]) < min(cadence["run"])


def _one_figure_timeline(n: int = 12) -> tuple[Timeline, Figure]:
    look = Look((230, 190, 160), (40, 30, 20), (220, 40, 40), (30, 30, 140), (20, 20, 20), False, 1.0)
    fig = Figure(0, 0, n, 0, 0, 0.9, 1.0, 0.66, 1, False, False, 0.3, 0.0, look)
    tl = Timeline(10.0, n, Stage(aspect=96 / 64), (fig,), (Segment(0, "idle", 0, n),), ())
    return tl, fig


def test_frames_have_the_requested_shape_and_dtype() -> None:
    tl, _ = _one_figure_timeline()
    scene = make_scene(np.random.default_rng(0))
    frames = list(render_video(VideoSpec(tl, scene, 96, 64, 0.05, 3)))
    assert len(frames) == tl.n_frames
    assert all(f.shape == (64, 96, 3) and f.dtype == np.uint8 for f in frames)


def test_figures_are_drawn_where_they_stand() -> None:
    tl, fig = _one_figure_timeline()
    scene = make_scene(np.random.default_rng(5))
    empty = dataclasses.replace(tl, figures=(), segments=())
    with_fig = next(render_video(VideoSpec(tl, scene, 96, 64, 0.0, 1))).astype(int)
    without = next(render_video(VideoSpec(empty, scene, 96, 64, 0.0, 1))).astype(int)
    changed = np.abs(with_fig - without).max(axis=2) > 12
    height_px = fig.height(tl.stage) * 64
    assert changed.sum() > 0.04 * height_px**2
    rows, cols = np.nonzero(changed)
    top, bottom = (fig.ground_y - fig.height(tl.stage)) * 64, fig.ground_y * 64
    assert rows.min() >= top - 3 and rows.max() <= bottom + 3
    assert abs(cols.mean() - fig.x0 * 64) < 0.25 * height_px


def test_many_cameras_and_seeds_plan_and_draw() -> None:
    from actrec_batch.synth.scene import render_background

    for seed in range(3):
        videos = plan_footage(DATE, cameras=64, minutes=0.2, seed=seed, **SMALL)
        assert len({v.spec.scene for v in videos}) == 64  # every camera has its own look
        for v in videos:
            bg = render_background(v.spec.scene, 32, 24, pad=2)
            assert bg.shape == (28, 36, 3) and np.isfinite(bg).all()


def test_files_split_a_cameras_minutes_with_wall_clock_names() -> None:
    videos = plan_footage(DATE, cameras=2, minutes=12.0, file_minutes=5.0, seed=3, **SMALL)
    assert [v.camera_id for v in videos] == ["cam-01"] * 3 + ["cam-02"] * 3
    cam1 = videos[:3]
    assert [v.duration_s for v in cam1] == pytest.approx([300.0, 300.0, 120.0])
    assert all(v.spec is cam1[0].spec for v in cam1)  # one recording, cut into consecutive files
    assert [(v.frames.start, v.frames.stop) for v in cam1] == [(0, 3000), (3000, 6000), (6000, 7200)]
    assert [(v.creation_time - cam1[0].creation_time).total_seconds() for v in cam1] == [0, 300, 600]
    assert all(v.creation_time.date() == DATE and v.creation_time.tzinfo is not None for v in videos)
    for v in videos:
        assert re.fullmatch(
            rf"footage/date=2026-11-24/camera={v.camera_id}/{v.camera_id}_20261124T\d{{6}}Z\.mp4", v.key
        )
    assert len({v.key for v in videos}) == len(videos)


@pytest.mark.parametrize(
    ("codec", "ext"), [("vp9", ".webm"), ("ffv1", ".mkv"), ("mjpeg", ".avi"), ("hevc", ".mp4")]
)
def test_container_follows_the_codec(codec: str, ext: str) -> None:
    (video,) = plan_footage(DATE, cameras=1, minutes=0.1, codec=codec, **SMALL)
    assert video.key.endswith(ext)


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"codec": "xvid"}, "codec"),
        ({"cameras": 0}, "cameras"),
        ({"minutes": 0}, "minutes"),
        ({"width": 95}, "width"),
        ({"seed": -1}, "seed"),
        ({"noise": -0.1}, "noise"),
    ],
)
def test_bad_arguments_name_the_setting(kwargs: dict, setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        plan_footage(DATE, **{**SMALL, **kwargs})


def test_lossless_video_holds_exactly_the_rendered_frames(tmp_path) -> None:
    from actrec_batch.storage import open_store
    from actrec_batch.video import iter_frames

    kwargs = {"cameras": 1, "minutes": 0.05, "seed": 4, "codec": "ffv1", **SMALL}
    report = synth_footage(open_store(str(tmp_path)), date=DATE, progress=False, **kwargs)
    (video,) = plan_footage(DATE, **kwargs)
    decoded = [frame for _, frame in iter_frames(str(tmp_path / report.videos[0]), 0.0, 1e9)]
    expected = list(render_video(video.spec))
    assert len(decoded) == len(expected) == video.spec.timeline.n_frames
    assert all(np.array_equal(a, b) for a, b in zip(decoded, expected, strict=True))


def test_rolling_files_hold_consecutive_frames_and_split_the_labels_at_cuts(tmp_path) -> None:
    from actrec_batch.storage import open_store
    from actrec_batch.video import iter_frames

    kwargs = {"cameras": 1, "minutes": 0.1, "seed": 4, "codec": "ffv1", **SMALL}
    report = synth_footage(open_store(str(tmp_path)), date=DATE, progress=False, file_minutes=0.04, **kwargs)
    files = plan_footage(DATE, file_minutes=0.04, **kwargs)
    (whole,) = plan_footage(DATE, **kwargs)  # the same camera written as one file
    assert [len(v.frames) for v in files] == [24, 24, 12]
    decoded = [f for key in report.videos for _, f in iter_frames(str(tmp_path / key), 0.0, 1e9)]
    expected = list(render_video(whole.spec))
    assert len(decoded) == len(expected) == 60
    assert all(np.array_equal(a, b) for a, b in zip(decoded, expected, strict=True))
    # every labelled frame of the whole file is labelled in exactly one file, with the same label
    fps = SMALL["fps"]

    def frames_of(events, first=0):
        return sorted(
            (e["label"], e["track"], f)
            for e in events
            for f in range(first + round(e["start_s"] * fps), first + round(e["end_s"] * fps))
        )

    parts = [frames_of(v.events(), v.frames.start) for v in files]
    assert sorted(x for p in parts for x in p) == frames_of(whole.events())
    assert all(0 <= e["start_s"] < e["end_s"] <= v.duration_s for v in files for e in v.events())


def test_synth_writes_videos_and_sidecars_into_the_store(tmp_path) -> None:
    from actrec_batch.storage import open_store
    from actrec_batch.video import probe

    store = open_store(str(tmp_path))
    report = synth_footage(
        store, date=DATE, cameras=2, minutes=0.1, file_minutes=0.05, seed=11, progress=False, **SMALL
    )
    assert len(report.videos) == 4
    assert report.footage_s == pytest.approx(12.0)  # 2 cameras x 6 s
    keys = {info.key for info in store.list("footage/")}
    assert keys == set(report.videos) | {k + ".labels.json" for k in report.videos}
    total_events = 0
    for key in report.videos:
        sidecar = json.loads(store.get_bytes(key + ".labels.json"))
        assert sidecar["video"] == key.rsplit("/", 1)[1]
        info = probe(str(tmp_path / key))
        assert (info.width, info.height) == (96, 64)
        assert info.frame_count == round(sidecar["duration_s"] * sidecar["fps"])
        assert info.creation_time is not None
        assert info.creation_time.strftime("%Y%m%dT%H%M%SZ") in key
        total_events += len(sidecar["events"])
    assert report.events == total_events == sum(report.label_counts.values())
    # rerunning gives the same labels at the same keys
    again = synth_footage(
        store, date=DATE, cameras=2, minutes=0.1, file_minutes=0.05, seed=11, progress=False, **SMALL
    )
    assert again.videos == report.videos and again.label_counts == report.label_counts
