"""Per-clip scores -> events: synthetic score sequences with known events."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from actrec_batch.events import (
    DetectedEvent,
    EventParams,
    concat_segment_scores,
    event_id,
    exclusive_nms,
    scores_to_events,
    smooth_scores,
    temporal_nms,
    tiou,
)

HOP = 2 / 7.5  # the reference model's clip spacing, seconds
SPAN = 8 / 7.5  # and the time one clip covers
LABELS = ["walk", "run", "wave", "jump", "fall", "sit_down", "stand_up"]
RAW = EventParams(smooth_s=0.0)  # no smoothing: the thresholds apply to the scores as given


def grid(n: int) -> np.ndarray:
    """Clip centres of a video scored from its start: the first clip covers [0, SPAN)."""
    return SPAN / 2 + HOP * np.arange(n)


def step_scores(n: int, runs: dict[str, list[tuple[int, int]]], level: float = 0.95) -> np.ndarray:
    """Scores that are ``level`` on clips ``first..last`` (inclusive) of each run, else 0.02."""
    scores = np.full((n, len(LABELS)), 0.02)
    for label, spans in runs.items():
        for first, last in spans:
            scores[first : last + 1, LABELS.index(label)] = level
    return scores


def single(values, label: str = "walk") -> np.ndarray:
    scores = np.zeros((len(values), len(LABELS)))
    scores[:, LABELS.index(label)] = values
    return scores


# --- known events ----------------------------------------------------------------------------------


def test_step_scores_give_the_known_events_within_half_a_hop():
    runs = {"walk": [(10, 29), (60, 75)], "wave": [(40, 52)], "fall": [(100, 105)]}
    times = grid(140)
    events = scores_to_events(times, step_scores(140, runs), LABELS, EventParams())

    expected = sorted(
        (times[first] - HOP / 2, label, times[last] + HOP / 2)
        for label, spans in runs.items()
        for first, last in spans
    )
    assert [(e.label) for e in events] == [label for _, label, _ in expected]
    for ev, (start, _, end) in zip(events, expected, strict=True):
        assert abs(ev.start_s - start) <= HOP / 2
        assert abs(ev.end_s - end) <= HOP / 2
        assert 0.8 < ev.confidence <= 0.95  # smoothing softens the first and last clips


def test_boundaries_interpolate_the_threshold_crossings():
    times = np.arange(8.0)  # hop 1 s, to make the arithmetic visible
    scores = single([0.0, 0.2, 0.8, 0.9, 0.5, 0.1, 0.0, 0.0])
    params = EventParams(smooth_s=0.0, min_duration_s=0.0)
    [ev] = scores_to_events(times, scores, LABELS, params)
    assert ev.label == "walk"
    assert ev.start_s == pytest.approx(1.5)  # 0.2 -> 0.8 crosses on=0.5 halfway
    assert ev.end_s == pytest.approx(4.375)  # 0.5 -> 0.1 crosses off=0.35 after 3/8 of a hop
    assert ev.confidence == pytest.approx((0.8 + 0.9 + 0.5) / 3)


def test_ramp_scores_locate_the_start_exactly_and_the_end_late_by_the_threshold_gap():
    # An ideal model scores a clip by the fraction of it that the action covers.
    times = grid(120)
    a, b = 8.0, 14.0
    overlap = np.clip(np.minimum(times + SPAN / 2, b) - np.maximum(times - SPAN / 2, a), 0, None) / SPAN
    [ev] = scores_to_events(times, single(overlap), LABELS, EventParams())
    assert ev.start_s == pytest.approx(a, abs=0.01)
    # the end is where the score falls to off_threshold, (on - off) * span after the true end
    assert ev.end_s == pytest.approx(b + (0.5 - 0.35) * SPAN, abs=0.01)


def test_background_noise_below_the_thresholds_gives_no_events():
    rng = np.random.default_rng(0)
    times = grid(2000)
    scores = rng.uniform(0.0, 0.45, size=(2000, len(LABELS)))
    assert scores_to_events(times, scores, LABELS, EventParams()) == []
    assert scores_to_events(times, scores, LABELS, RAW) == []


def test_hysteresis_bridges_a_dip_between_the_thresholds():
    values = [0.0] * 5 + [0.9] * 10 + [0.4] * 3 + [0.9] * 10 + [0.0] * 5
    times, scores = grid(len(values)), single(values)
    [ev] = scores_to_events(times, scores, LABELS, EventParams(smooth_s=0.0, merge_gap_s=0.0))
    assert ev.start_s == pytest.approx(times[5] - HOP / 2, abs=HOP / 2)
    assert ev.end_s == pytest.approx(times[27] + HOP / 2, abs=HOP / 2)
    # Without hysteresis (off == on) the dip splits the event.
    no_hysteresis = EventParams(smooth_s=0.0, off_threshold=0.5, merge_gap_s=0.0)
    assert len(scores_to_events(times, scores, LABELS, no_hysteresis)) == 2


def test_a_dip_below_the_off_threshold_ends_the_event():
    values = [0.0] * 5 + [0.9] * 10 + [0.2] * 3 + [0.9] * 10 + [0.0] * 5
    events = scores_to_events(
        grid(len(values)), single(values), LABELS, EventParams(smooth_s=0, merge_gap_s=0)
    )
    assert len(events) == 2


def test_an_event_starts_only_once_the_on_threshold_is_reached():
    values = [0.0] * 5 + [0.4] * 6 + [0.9] * 6 + [0.0] * 5  # 0.4 is above off but below on
    times = grid(len(values))
    [ev] = scores_to_events(times, single(values), LABELS, RAW)
    assert ev.start_s == pytest.approx(times[11] - HOP / 2, abs=HOP / 2)


def test_short_blips_are_dropped():
    values = [0.0] * 10 + [0.9] + [0.0] * 10  # one clip: about one hop (0.27 s) long
    times, scores = grid(len(values)), single(values)
    assert scores_to_events(times, scores, LABELS, RAW) == []
    [ev] = scores_to_events(times, scores, LABELS, EventParams(smooth_s=0.0, min_duration_s=0.1))
    assert ev.end_s - ev.start_s == pytest.approx(HOP, abs=HOP / 2)


def test_same_label_events_separated_by_a_short_gap_merge():
    values = [0.0] * 10 + [1.0] * 10 + [0.0] + [1.0] * 10 + [0.0] * 10
    times, scores = grid(len(values)), single(values)
    [merged] = scores_to_events(times, scores, LABELS, RAW)  # the gap is under 0.4 s
    assert merged.start_s == pytest.approx(times[10] - HOP / 2, abs=HOP / 2)
    assert merged.end_s == pytest.approx(times[30] + HOP / 2, abs=HOP / 2)
    assert merged.confidence == pytest.approx(20 / 21)  # the gap's clip counts
    first, second = scores_to_events(times, scores, LABELS, EventParams(smooth_s=0.0, merge_gap_s=0.1))
    assert first.end_s < second.start_s
    assert first.confidence == second.confidence == 1.0


def test_merging_never_joins_different_labels():
    scores = step_scores(60, {"walk": [(10, 20)], "run": [(22, 32)]})
    events = scores_to_events(grid(60), scores, LABELS, RAW)
    assert [e.label for e in events] == ["walk", "run"]


def test_temporal_nms_keeps_the_most_confident_of_overlapping_same_label_events():
    events = [
        DetectedEvent("walk", 0.0, 10.0, 0.8),
        DetectedEvent("walk", 1.0, 10.0, 0.9),  # tIoU 0.9 with the first
        DetectedEvent("walk", 6.0, 16.0, 0.7),  # tIoU 0.4 with the second
        DetectedEvent("run", 0.0, 10.0, 0.5),
    ]
    kept = temporal_nms(events, 0.6)
    assert kept == [events[1], events[2], events[3]]
    assert temporal_nms(events, 1.0) == sorted(events, key=lambda e: -e.confidence)


def test_exclusive_labels_suppress_each_other_and_leave_the_rest_alone():
    events = [
        DetectedEvent("walk", 0.0, 10.0, 0.8),
        DetectedEvent("run", 1.0, 10.0, 0.6),  # tIoU 0.9 with the walk, less confident: dropped
        DetectedEvent("run", 20.0, 30.0, 0.9),
        DetectedEvent("walk", 24.0, 34.0, 0.7),  # tIoU 0.43 with that run
        DetectedEvent("wave", 0.0, 10.0, 0.5),  # in no group
    ]
    groups = [["walk", "run"]]
    assert exclusive_nms(events, groups, 0.5) == [events[2], events[0], events[3], events[4]]
    assert exclusive_nms(events, groups, 0.4) == [events[2], events[0], events[4]]
    assert exclusive_nms(events, [], 0.4) == events
    # in the pipeline: a brisk walk where the head also fires "run" gives one event, not two
    scores = step_scores(60, {"walk": [(10, 30)]})
    scores[12:29, LABELS.index("run")] = 0.7
    both = scores_to_events(grid(60), scores, LABELS, RAW)
    assert sorted(e.label for e in both) == ["run", "walk"]
    one = scores_to_events(grid(60), scores, LABELS, EventParams(smooth_s=0.0, exclusive=groups))
    assert [e.label for e in one] == ["walk"]
    with pytest.raises(ValueError, match="dance"):
        scores_to_events(grid(60), scores, LABELS, EventParams(exclusive=[["walk", "dance"]]))


def test_nms_acts_in_the_pipeline_when_padding_makes_unmerged_events_overlap():
    values = [0.0] * 40 + [0.8] * 5 + [0.0] + [0.95] * 5 + [0.0] * 40
    times, scores = grid(len(values)), single(values)
    params = EventParams(smooth_s=0.0, pad_s=5.0, merge_gap_s=-math.inf, nms_tiou=0.6)
    [ev] = scores_to_events(times, scores, LABELS, params)
    assert ev.confidence == pytest.approx(0.95)
    assert ev.start_s == pytest.approx(times[46] - HOP / 2 - 5.0, abs=HOP / 2)
    no_nms = EventParams(smooth_s=0.0, pad_s=5.0, merge_gap_s=-math.inf, nms_tiou=1.0)
    assert len(scores_to_events(times, scores, LABELS, no_nms)) == 2


def test_overlapping_events_of_different_labels_are_both_kept():
    scores = step_scores(80, {"walk": [(10, 50)], "wave": [(20, 30)], "run": [(45, 60)]})
    events = scores_to_events(grid(80), scores, LABELS, EventParams())
    assert [e.label for e in events] == ["walk", "wave", "run"]
    walk, wave, _ = events
    assert walk.start_s < wave.start_s < wave.end_s < walk.end_s


def test_per_class_overrides_apply_to_their_label_only():
    scores = step_scores(60, {"walk": [(10, 30)], "fall": [(10, 30)]}, level=0.42)
    params = EventParams(per_class={"fall": {"on_threshold": 0.4, "off_threshold": 0.3}})
    [ev] = scores_to_events(grid(60), scores, LABELS, params)
    assert ev.label == "fall"
    # a per-class minimum duration
    blips = step_scores(60, {"walk": [(10, 12)], "fall": [(30, 32)]})
    params = EventParams(smooth_s=0.0, min_duration_s=0.5, per_class={"fall": {"min_duration_s": 1.0}})
    assert [e.label for e in scores_to_events(grid(60), blips, LABELS, params)] == ["walk"]


def test_events_are_clipped_to_the_video_and_keep_their_invariants():
    rng = np.random.default_rng(7)
    for seed in range(20):
        n = int(rng.integers(1, 300))
        times = grid(n)
        duration = times[-1] + SPAN / 2
        # slowly varying random scores that cross the thresholds often
        raw = rng.uniform(size=(n + 6, len(LABELS)))
        scores = np.stack(
            [np.convolve(raw[:, c], np.ones(7) / 7, mode="valid") for c in range(len(LABELS))], 1
        )
        scores = np.clip((scores - 0.5) * 4 + 0.5, 0, 1)
        params = EventParams(pad_s=float(rng.uniform(-0.2, 0.5)), min_duration_s=0.0)
        events = scores_to_events(times, scores, LABELS, params, hop_s=HOP, duration_s=duration)
        assert events == scores_to_events(times, scores, LABELS, params, hop_s=HOP, duration_s=duration)
        assert events == sorted(events, key=lambda e: (e.start_s, e.label, e.end_s)), seed
        for ev in events:
            assert 0.0 <= ev.start_s < ev.end_s <= duration, (seed, ev)
            assert 0.0 <= ev.confidence <= 1.0, (seed, ev)


def test_events_at_the_video_edges_use_half_a_hop_and_the_duration():
    values = [0.9] * 10 + [0.0] * 10 + [0.9] * 10
    times = grid(len(values))
    first, last = scores_to_events(times, single(values), LABELS, RAW, duration_s=times[-1] + 0.05)
    assert first.start_s == pytest.approx(times[0] - HOP / 2)
    assert last.end_s == pytest.approx(times[-1] + 0.05)  # clipped to the duration


def test_a_hole_in_the_clip_grid_ends_an_event():
    times = np.r_[grid(20), grid(20)[-1] + 3.0 + HOP * np.arange(20)]
    values = [0.0] * 10 + [0.9] * 20 + [0.0] * 10
    first, second = scores_to_events(times, single(values), LABELS, RAW)
    assert first.end_s == pytest.approx(times[19] + HOP / 2)
    assert second.start_s == pytest.approx(times[20] - HOP / 2)


def test_smoothing_is_a_centred_mean_over_time_with_shrinking_edge_windows():
    times = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    scores = np.array([[0.0], [0.3], [0.6], [0.9], [0.0]])
    smoothed = smooth_scores(times, scores, 2.0)  # +-1 s
    assert smoothed[:, 0] == pytest.approx([0.15, 0.3, 0.6, 0.75, 0.0])
    assert np.array_equal(smooth_scores(times, scores, 0.0), scores)
    flat = smooth_scores(grid(50), np.full((50, 2), 0.5), 0.8)
    assert np.array_equal(flat, np.full((50, 2), 0.5))  # exact, whatever the position in the video


# --- edge cases and errors ---------------------------------------------------------------------------


def test_empty_input_gives_no_events():
    assert scores_to_events([], np.empty((0, len(LABELS))), LABELS) == []
    assert scores_to_events(np.array([]), np.array([]), LABELS) == []


def test_a_single_clip_needs_the_hop():
    scores = single([0.9])
    with pytest.raises(ValueError, match="hop_s is required"):
        scores_to_events([0.5], scores, LABELS, RAW)
    [ev] = scores_to_events([0.5], scores, LABELS, EventParams(min_duration_s=0.1), hop_s=HOP)
    assert (ev.start_s, ev.end_s) == pytest.approx((0.5 - HOP / 2, 0.5 + HOP / 2))


@pytest.mark.parametrize(
    ("times", "scores", "match"),
    [
        (grid(5), single([0.1, np.nan, 0.3, 0.2, 0.1]), r"NaN.*clip 1"),
        (np.r_[grid(4), np.nan], single([0.1] * 5), "times_s has NaN"),
        (np.r_[grid(3), grid(3)[-1]], single([0.1] * 4), "strictly increasing"),
        (grid(5), np.zeros((5, 3)), r"shape \(5, 7\)"),
        (grid(5), single([0.1, 2.0, -1.0, 0.1, 0.1]), "probabilities in"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_the_problem(times, scores, match):
    with pytest.raises(ValueError, match=match):
        scores_to_events(times, scores, LABELS)


def test_per_class_overrides_for_unknown_labels_are_rejected():
    params = EventParams(per_class={"dance": {"on_threshold": 0.6}})
    with pytest.raises(ValueError, match="dance"):
        scores_to_events(grid(5), single([0.1] * 5), LABELS, params)


def test_params_round_trip_and_validate():
    params = EventParams(per_class={"fall": {"on_threshold": 0.4}}, pad_s=-0.1, exclusive=[["walk", "run"]])
    d = params.to_dict()
    assert EventParams.from_dict(json.loads(json.dumps(d))) == params
    assert params.for_label("fall").on_threshold == 0.4
    assert params.for_label("walk").on_threshold == 0.5
    d["per_class"]["fall"]["on_threshold"] = 0.9  # to_dict is a copy
    assert params.per_class["fall"]["on_threshold"] == 0.4
    for bad, match in [
        ({"off_threshold": 0.6}, "off_threshold <= on_threshold"),
        ({"smooth_s": -1.0}, "smooth_s"),
        ({"nms_tiou": 0.0}, "nms_tiou"),
        ({"min_duration_s": math.nan}, "min_duration_s"),
        ({"per_class": {"fall": {"on": 0.4}}}, "unknown keys"),
        ({"per_class": {"fall": {"off_threshold": 0.9}}}, r"per_class\['fall'\]"),
        ({"exclusive": "walk"}, "exclusive must be a list of label lists"),
        ({"exclusive": [["walk", 3]]}, "exclusive must be a list of label lists"),
        ({"exclusive_tiou": 1.5}, "exclusive_tiou"),
    ]:
        with pytest.raises(ValueError, match=match):
            EventParams(**bad)
    with pytest.raises(ValueError, match="unknown EventParams keys"):
        EventParams.from_dict({"smoothing": 1.0})


def test_event_ids_are_deterministic_and_rounded_to_milliseconds():
    a = event_id("vid-1", "walk", 1.2341, 5.0, "ref@1")
    assert re.fullmatch("[0-9a-f]{32}", a), a  # 32 lowercase hex digits
    assert a == event_id("vid-1", "walk", 1.2339, 5.0002, "ref@1")
    others = {
        event_id("vid-2", "walk", 1.234, 5.0, "ref@1"),
        event_id("vid-1", "run", 1.234, 5.0, "ref@1"),
        event_id("vid-1", "walk", 1.235, 5.0, "ref@1"),
        event_id("vid-1", "walk", 1.234, 5.001, "ref@1"),
        event_id("vid-1", "walk", 1.234, 5.0, "ref@2"),
    }
    assert a not in others and len(others) == 5
    with pytest.raises(ValueError, match="start_s"):
        event_id("vid-1", "walk", math.nan, 5.0, "ref@1")


def test_tiou():
    assert tiou(0, 10, 0, 10) == 1.0
    assert tiou(0, 10, 5, 15) == pytest.approx(5 / 15)
    assert tiou(0, 10, 10, 20) == 0.0
    assert tiou(0, 0, 0, 0) == 0.0


# --- whole videos from work units -------------------------------------------------------------------


def _video_scores(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    runs = {"walk": [(20, 90), (150, 210)], "wave": [(80, 120)], "sit_down": [(300, 330)]}
    rng = np.random.default_rng(3)
    scores = np.clip(step_scores(n, runs, level=0.8) + rng.normal(0, 0.08, (n, len(LABELS))), 0, 1)
    return grid(n), scores


def test_events_of_concatenated_segments_equal_those_of_the_whole_video():
    times, scores = _video_scores()
    whole = scores_to_events(times, scores, LABELS)
    # three work units cut through events, overlapping by a few clips
    cuts = [(0, 100), (96, 205), (200, 400)]
    parts = [(times[a:b], scores[a:b]) for a, b in cuts]
    joined_times, joined_scores = concat_segment_scores(parts)
    assert np.array_equal(joined_times, times) and np.array_equal(joined_scores, scores)
    assert scores_to_events(joined_times, joined_scores, LABELS) == whole
    # post-processing each unit on its own does not give the same events: that is why the pipeline
    # post-processes a whole video's concatenated scores
    per_unit = [ev for t, s in parts for ev in scores_to_events(t, s, LABELS)]
    assert per_unit != whole


def test_concat_keeps_the_first_copy_of_duplicate_clips():
    times, scores = _video_scores(50)
    later = scores[20:].copy()
    later[:10] = 0.5  # the overlap, scored differently
    t, s = concat_segment_scores([(times[:30], scores[:30]), (times[20:] + 1e-4, later)])
    assert np.array_equal(t[:30], times[:30]) and len(t) == 50
    assert np.array_equal(s[:30], scores[:30]) and np.array_equal(s[30:], later[10:])


def test_concat_rejects_gaps_out_of_order_and_off_grid_segments():
    times, scores = _video_scores(60)
    with pytest.raises(ValueError, match="work unit is missing"):
        concat_segment_scores([(times[:20], scores[:20]), (times[22:], scores[22:])])
    with pytest.raises(ValueError, match="time order"):
        concat_segment_scores([(times[20:], scores[20:]), (times[:20], scores[:20])])
    with pytest.raises(ValueError, match="not on their clip grid"):
        concat_segment_scores([(times[:30], scores[:30]), (times[25:] + HOP / 2, scores[25:])])
    with pytest.raises(ValueError, match="score columns"):
        concat_segment_scores([(times[:30], scores[:30]), (times[30:], scores[30:, :3])])


def test_concat_edge_cases():
    times, scores = _video_scores(10)
    t, s = concat_segment_scores([])
    assert t.shape == (0,) and s.shape == (0, 0)
    t, s = concat_segment_scores([(times[:0], scores[:0]), (times, scores)])
    assert np.array_equal(t, times) and np.array_equal(s, scores)
    t, s = concat_segment_scores([(times[:1], scores[:1]), (times[1:2], scores[1:2])], hop_s=HOP)
    assert np.array_equal(t, times[:2])
    with pytest.raises(ValueError, match="hop_s is required"):
        concat_segment_scores([(times[:1], scores[:1]), (times[1:2], scores[1:2])])
