"""Cameras that write rolling files: file clocks, the chaining rule, events across cuts, scoring on
chains, and reruns of one file of a chain (hand-worked cases first, then the pipeline on real Ray,
DuckDB and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from actrec_batch.chains import (
    Chain,
    FileTimePattern,
    VideoClock,
    bridge_seams,
    chain_videos,
    file_start,
    video_clocks,
)
from actrec_batch.config import load_settings
from actrec_batch.errors import ConfigError
from actrec_batch.evaluation import GTEvent, PredEvent, evaluate, on_chains
from actrec_batch.events import EventParams, scores_to_events

T0 = dt.datetime(2026, 11, 24, 17, 0, tzinfo=dt.UTC)


def clock(name: str, start_s: float | None, duration_s: float, camera: str = "cam-01") -> VideoClock:
    start = None if start_s is None else T0 + dt.timedelta(seconds=start_s)
    return VideoClock(f"id-{name}", camera, start, duration_s, key=f"footage/{camera}/{name}.mp4")


def keys(chains: list[Chain]) -> list[list[str]]:
    return [[v.key.rsplit("/", 1)[1].removesuffix(".mp4") for v in c.videos] for c in chains]


# ------------------------------------------------------------------------------ the camera clock


def test_file_names_carry_the_start_time():
    p = FileTimePattern("%Y%m%dT%H%M%SZ")
    assert p.parse("footage/date=2026-11-24/camera=cam-01/cam-01_20261124T170015Z.mp4") == T0.replace(
        second=15
    )
    assert p.parse("cam-01_no_time.mp4") is None
    assert p.parse("cam-01_20261324T170015Z.mp4") is None  # month 13: the shape matches, the date does not
    dashed = FileTimePattern("%Y-%m-%d_%H-%M-%S.%f")
    assert dashed.parse("ch03_2026-11-24_17-00-15.250.avi") == T0.replace(second=15, microsecond=250000)
    zoned = FileTimePattern("%Y%m%d%H%M%S%z")
    assert zoned.parse("x_20261124180015+0100.mp4") == T0.replace(second=15)


@pytest.mark.parametrize("bad", ["%Y%m%d", "%Y-%m-%d %H:%M", "%Y%m%d%H%M%S%Q"])
def test_a_pattern_that_cannot_name_a_second_is_a_one_line_setting_error(bad):
    with pytest.raises(ConfigError) as err:
        load_settings({"file_time_pattern": bad}, env={})
    msg = str(err.value)
    assert "\n" not in msg and "--file-time-pattern" in msg and "ACTREC_FILE_TIME_PATTERN" in msg
    assert "Fix:" in msg
    with pytest.raises(ConfigError, match="chain_tolerance_s"):
        load_settings({}, env={"ACTREC_CHAIN_TOLERANCE_S": "-1"})


def test_the_cli_stops_on_a_bad_pattern_with_exit_2_and_one_line(tmp_path, capsys):
    from actrec_batch.cli import main

    assert (
        main(["run", "--date", "2026-11-24", "--store", str(tmp_path), "--file-time-pattern", "%H%M%S"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "file_time_pattern" in err and "lacks %Y %m %d" in err and "Fix:" in err


def test_the_name_wins_over_the_creation_time_and_either_may_be_missing():
    row = {"key": "footage/c/cam_20261124T170015Z.mp4", "creation_time": T0}
    assert file_start(row, FileTimePattern("%Y%m%dT%H%M%SZ")) == T0.replace(second=15)
    assert file_start(row, None) == T0
    assert file_start({**row, "key": "footage/c/cam.mp4"}, FileTimePattern("%Y%m%dT%H%M%SZ")) == T0
    assert file_start({"key": "footage/c/cam.mp4", "creation_time": None}, None) is None


# ------------------------------------------------------------------------------ the chaining rule


def test_abutting_files_chain_and_lie_end_to_end():
    files = [clock("b", 15.0, 15.0), clock("a", 0.0, 15.0), clock("c", 30.4, 14.6)]  # c starts 0.4 s late
    (chain,) = chain_videos(files, tolerance_s=1.0)
    assert keys([chain]) == [["a", "b", "c"]]
    assert chain.offsets_s == (0.0, 15.0, 30.0)  # the 0.4 s of clock jitter is absorbed
    assert chain.seams_s == (15.0, 30.0) and chain.duration_s == 44.6


def test_a_gap_or_overlap_over_the_tolerance_starts_a_new_chain():
    files = [clock("a", 0.0, 15.0), clock("b", 16.5, 15.0), clock("c", 30.0, 15.0), clock("d", 45.0, 15.0)]
    # a ends at 15, b starts 1.5 s later: a gap; b ends at 31.5, c starts at 30: 1.5 s of overlap
    assert keys(chain_videos(files, tolerance_s=1.0)) == [["a"], ["b"], ["c", "d"]]
    assert keys(chain_videos(files, tolerance_s=1.5)) == [["a", "b", "c", "d"]]
    assert keys(chain_videos(files, tolerance_s=0.0)) == [["a"], ["b"], ["c", "d"]]  # exact abutment chains


def test_a_file_with_an_unknown_start_stands_alone_and_cameras_never_mix():
    files = [
        clock("a", 0.0, 15.0),
        clock("x", None, 15.0),
        clock("b", 15.0, 15.0),
        clock("other", 15.0, 15.0, camera="cam-02"),
    ]
    chains = chain_videos(files)
    assert keys(chains) == [["a", "b"], ["x"], ["other"]]
    assert [c.camera_id for c in chains] == ["cam-01", "cam-01", "cam-02"]
    with pytest.raises(ValueError, match="tolerance"):
        chain_videos(files, tolerance_s=-1.0)


def test_manifest_rows_become_clocks_through_the_pattern():
    rows = [
        {"video_id": "1", "camera_id": "c", "duration_s": 15.0, "key": "k/c_20261124T170000Z.mp4"},
        {"video_id": "2", "camera_id": "c", "duration_s": 15.0, "key": "k/c_20261124T170015Z.mp4"},
    ]
    (chain,) = chain_videos(video_clocks(rows, FileTimePattern("%Y%m%dT%H%M%SZ")))
    assert [v.video_id for v in chain.videos] == ["1", "2"]
    assert len(chain_videos(video_clocks(rows, None))) == 2  # no pattern, no creation time: alone


def test_locate_names_the_files_holding_each_end():
    (chain,) = chain_videos([clock("a", 0.0, 15.0), clock("b", 15.0, 15.0), clock("c", 30.0, 15.0)])
    assert chain.locate(3.0, 9.0) == (0, 0)
    assert chain.locate(13.0, 17.0) == (0, 1)
    assert chain.locate(13.0, 31.0) == (0, 2)
    assert chain.locate(15.0, 15.5) == (1, 1)  # a start on the cut belongs to the later file
    assert chain.locate(12.0, 15.0) == (0, 0)  # an end on the cut to the earlier one (half-open)


# ------------------------------------------------------------------------------ events across a cut


def _two_files_scores(active: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Clip centres of two 15-s files laid end to end (clips of 1.07 s every 0.27 s, so the grid has
    a 1.1-s gap at the cut), scoring 0.9 within ``active`` and 0.05 elsewhere."""
    hop, half = 2 / 7.5, 8 / 7.5 / 2
    one = np.arange(half, 15.0 - half + 1e-9, hop)
    times = np.concatenate([one, 15.0 + one])
    scores = np.where((times >= active[0]) & (times < active[1]), 0.9, 0.05)
    return times, scores, (15.0,)


def test_an_action_across_the_cut_is_one_event_with_the_cut_as_a_seam():
    times, scores, seams = _two_files_scores((12.0, 18.0))
    params = EventParams(smooth_s=0.0, on_threshold=0.5, off_threshold=0.4, min_duration_s=0.9)
    (whole,) = scores_to_events(
        times, scores, ["walk"], params, hop_s=2 / 7.5, duration_s=30.0, seams_s=seams
    )
    assert whole.start_s == pytest.approx(12.0, abs=0.3) and whole.end_s == pytest.approx(18.0, abs=0.3)
    # Without the seam the gap is a hole in the grid: two partial events, as each file on its own gives.
    parts = scores_to_events(times, scores, ["walk"], params, hop_s=2 / 7.5, duration_s=30.0)
    assert len(parts) == 2 and parts[0].end_s < 15.0 < parts[1].start_s


def test_a_short_action_on_the_cut_is_found_only_across_it():
    # 0.6 s on each side: each part is shorter than min_duration_s, so files on their own drop it.
    times, scores, seams = _two_files_scores((14.3, 15.7))
    params = EventParams(smooth_s=0.0, on_threshold=0.5, off_threshold=0.4, min_duration_s=0.9)
    assert scores_to_events(times, scores, ["fall"], params, hop_s=2 / 7.5, duration_s=30.0) == []
    (ev,) = scores_to_events(times, scores, ["fall"], params, hop_s=2 / 7.5, duration_s=30.0, seams_s=seams)
    assert ev.start_s < 15.0 < ev.end_s


def test_the_head_sees_interpolated_clips_in_the_gap_at_a_cut():
    a = (np.array([0.5, 0.75, 1.0]), np.array([[0.0, 4.0], [0.0, 4.0], [1.0, 4.0]], np.float32))
    b = (np.array([2.0, 2.25]), np.array([[5.0, 0.0], [5.0, 0.0]], np.float32))  # a gap of 1 s = 4 hops
    times, emb, real = bridge_seams([a, b], hop_s=0.25)
    np.testing.assert_allclose(times, [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25])
    np.testing.assert_allclose(emb[3:6], [[2.0, 3.0], [3.0, 2.0], [4.0, 1.0]])  # 1/4, 2/4, 3/4 of the way
    assert emb.dtype == np.float32
    assert real.tolist() == [True] * 3 + [False] * 3 + [True] * 2
    same, _, real = bridge_seams([a, (a[0] + 0.75, a[1])], hop_s=0.25)  # no gap: nothing added
    assert len(same) == 6 and real.all()
    with pytest.raises(ValueError, match="not after"):
        bridge_seams([a, a], hop_s=0.25)


# ------------------------------------------------------------------------------ scoring on chains


def test_ground_truth_split_by_a_cut_is_one_event_and_matches_one_prediction():
    (chain,) = chain_videos([clock("a", 0.0, 15.0), clock("b", 15.0, 15.0)])
    a, b = (v.key for v in chain.videos)
    truths = [
        GTEvent(a, "walk", 12.0, 15.0),
        GTEvent(b, "walk", 0.0, 3.0),  # the same walk, 12 s to 18 s on the camera clock
        GTEvent(b, "wave", 0.0, 2.0),  # another label starting on the cut: not joined to the walk
        GTEvent(a, "run", 2.0, 14.95),  # ends 50 ms before the cut ...
        GTEvent(b, "run", 0.05, 1.0),  # ... and resumes 50 ms after it: one run within SEAM_TOUCH_S
    ]
    preds = [PredEvent(a, "walk", 12.2, 18.1, 0.9), PredEvent(b, "wave", 0.1, 2.0, 0.8)]
    # per file, the 6-s prediction overlaps the 3-s ground-truth part in its file with tIoU 0.47: a miss
    assert evaluate(preds, truths, ["walk", "wave", "run"]).per_class["walk"].tp == 0
    moved_preds, moved_truths, videos = on_chains(preds, truths, [a, b], [chain])
    name = f"{a}+1"
    assert videos == [name]
    assert [(g.label, g.start_s, g.end_s) for g in moved_truths] == [
        ("run", 2.0, 16.0),
        ("walk", 12.0, 18.0),
        ("wave", 15.0, 17.0),
    ]
    assert [(p.video, p.start_s, p.end_s) for p in moved_preds] == [(name, 12.2, 18.1), (name, 15.1, 17.0)]
    report = evaluate(moved_preds, moved_truths, ["walk", "wave", "run"], videos=videos)
    assert report.per_class["walk"].tp == 1 and report.per_class["wave"].tp == 1
    assert report.gt_events == 3


def test_parts_far_from_the_cut_or_in_unchained_files_stay_apart():
    (chain,) = chain_videos([clock("a", 0.0, 15.0), clock("b", 15.0, 15.0)])
    a, b = (v.key for v in chain.videos)
    truths = [
        GTEvent(a, "walk", 10.0, 14.0),
        GTEvent(b, "walk", 0.0, 3.0),
        GTEvent("alone.mp4", "walk", 0, 1),
    ]
    _, moved, videos = on_chains([], truths, [a, b, "alone.mp4"], [chain])
    assert [(g.video, g.start_s, g.end_s) for g in moved] == [
        ("alone.mp4", 0, 1),
        (f"{a}+1", 10.0, 14.0),
        (f"{a}+1", 15.0, 18.0),
    ]
    assert videos == ["alone.mp4", f"{a}+1"]


def test_events_published_before_chains_end_in_their_own_video():
    import pyarrow as pa

    from actrec_batch.pipeline.outputs import with_event_ends

    old = pa.table({"video_id": ["v1", "v2"], "end_s": [3.0, 9.5]})
    assert with_event_ends(old).select(["end_video_id", "end_offset_s"]).to_pylist() == [
        {"end_video_id": "v1", "end_offset_s": 3.0},
        {"end_video_id": "v2", "end_offset_s": 9.5},
    ]
    new = with_event_ends(old)
    assert with_event_ends(new).equals(new)  # rows that have their ends keep them


# ------------------------------------------------------------------------------ the pipeline on a chain

CHAIN_DATE = dt.date(2026, 11, 25)
CHAIN_SEED = 13  # its camera walks from 11.7 s to 18.7 s: across the cut at 15 s


@pytest.fixture(scope="module")
def chain_ray():
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        namespace="actrec-test",
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def rolling_night(tmp_path_factory):
    """One camera's 30 s written as two 15-s files (the store is shared by the engines' runs)."""
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    root = tmp_path_factory.mktemp("chains") / "store"
    store = open_store(str(root))
    args = {"date": CHAIN_DATE, "cameras": 1, "minutes": 0.5, "seed": CHAIN_SEED}
    report = synth_footage(store, file_minutes=0.25, progress=False, **args)
    assert len(report.videos) == 2
    return root, store


def _published(store) -> list[dict]:
    import io

    import pyarrow.parquet as pq

    (obj,) = [o for o in store.list(f"events/date={CHAIN_DATE}/") if o.key.endswith(".parquet")]
    rows = pq.read_table(io.BytesIO(store.get_bytes(obj.key))).to_pylist()
    return sorted(rows, key=lambda r: (r["video_key"], r["start_s"], r["label"]))


def _event_ids(rows: list[dict]) -> list[tuple]:
    return [
        (r["event_id"], r["end_video_id"], round(r["end_offset_s"], 6), round(r["confidence"], 6))
        for r in rows
    ]


def test_an_action_across_a_cut_is_one_event_with_both_ends_and_a_rerun_of_one_file_keeps_it(
    chain_ray, rolling_night, warehouse_url, capsys
):
    import json

    import sqlalchemy as sa

    from actrec_batch import layout
    from actrec_batch.cli import main
    from actrec_batch.manifest import read_manifest
    from actrec_batch.model import read_card, resolve_model_ref
    from actrec_batch.pipeline.cache import Checkpoints, FeatureCache, segment_name
    from actrec_batch.pipeline.nightly import run_nightly
    from actrec_batch.pipeline.spec import RunSpec
    from actrec_batch.storage import open_store
    from actrec_batch.warehouse import open_warehouse

    root, store = rolling_night
    settings = load_settings({"store": str(root), "segment_s": 20, "warehouse_url": warehouse_url}, env={})
    first = run_nightly(settings, RunSpec(CHAIN_DATE))
    assert first["status"] == "success" and first["videos_processed"] == 2
    rows = _published(store)
    a, b = sorted(read_manifest(store, CHAIN_DATE).to_pylist(), key=lambda r: r["key"])
    (walk,) = [r for r in rows if r["label"] == "walk" and r["start_s"] < 15.0 < r["end_s"]]
    # one event from 11.7 s into the first file to 3.7 s into the second, on the camera clock too
    assert (walk["video_id"], walk["end_video_id"]) == (a["video_id"], b["video_id"])
    assert walk["start_s"] == pytest.approx(11.67, abs=0.6) and walk["end_offset_s"] == pytest.approx(
        3.73, abs=0.6
    )
    assert walk["end_s"] == pytest.approx(15.0 + walk["end_offset_s"])  # from the first file's start
    assert walk["start_ts"] == a["creation_time"] + dt.timedelta(seconds=walk["start_s"])
    assert walk["end_ts"] == b["creation_time"] + dt.timedelta(seconds=walk["end_offset_s"])
    assert all(r["run_id"] == first["run_id"] and r["content_id"] and r["model_sha256"] for r in rows)
    assert not [r for r in rows if r["label"] == "walk" and r is not walk and abs(r["start_s"] - 15) < 4]

    wh = open_warehouse(warehouse_url)
    query = sa.text(
        "SELECT event_id, video_id, end_video_id, end_offset_s, start_ts, end_ts FROM current_action_events "
        "WHERE logical_date = :d AND end_video_id <> video_id"
    )
    with wh.connect() as conn:
        spanning = conn.execute(query, {"d": CHAIN_DATE}).all()
    assert walk["event_id"] in {r.event_id for r in spanning}

    # eval joins the two labelled parts of the walk, as the one event the whole camera file has
    assert main(["eval", "--date", str(CHAIN_DATE), "--format", "json", "--store", str(root),
                 "--warehouse", warehouse_url]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from actrec_batch.synth import plan_footage

    (whole,) = plan_footage(CHAIN_DATE, cameras=1, minutes=0.5, seed=CHAIN_SEED, file_minutes=0.5)
    assert report["gt_events"] == len(whole.events()) and report["videos"] == 1
    assert report["per_class"]["walk"]["recall"] > 0
    quality = json.loads(
        store.get_bytes(layout.run_report_prefix(CHAIN_DATE, first["run_id"]) + "quality.json")
    )
    assert quality["evaluation"]["f1"] == pytest.approx(report["f1"])

    # The second file's features and markers are lost: a rerun recomputes that file only, and the
    # chain's events, the first file's included, come out the same, replacing the old rows.
    card = read_card(open_store(resolve_model_ref("reference@3")))
    store.delete(FeatureCache.for_model(store, card).key(b["content_id"], segment_name(20.0, 0)))
    Checkpoints.for_run(store, CHAIN_DATE, card, 20.0).clear([b["video_id"]])
    again = run_nightly(settings, RunSpec(CHAIN_DATE))
    assert again["units_computed"] == 1 and again["units_skipped_checkpoint"] == 1
    assert _event_ids(_published(store)) == _event_ids(rows)
    one_camera = run_nightly(settings, RunSpec(CHAIN_DATE, cameras=("cam-01",)))
    assert one_camera["status"] == "success" and _event_ids(_published(store)) == _event_ids(rows)
    with wh.connect() as conn:
        n = conn.execute(
            sa.text("SELECT COUNT(*) FROM action_events WHERE logical_date = :d"), {"d": CHAIN_DATE}
        ).scalar_one()
    assert n == len(rows)  # replaced, never duplicated
    wh.dispose()
