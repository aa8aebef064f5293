"""The model's global sampling grid and clip layout (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from actrec_batch.model.sampling import build_grid, clip_targets


def test_grid_picks_the_frame_on_screen_at_each_grid_time():
    times = np.arange(30) / 15.0  # 2 s at 15 fps
    grid = build_grid(times, sample_fps=7.5, clip_len=4, clip_hop=2)
    assert len(grid.grid_times) == 15
    np.testing.assert_array_equal(grid.grid_frames, np.arange(0, 30, 2))
    # 25 fps source: the frame shown at g_k is the last one with t <= g_k
    grid25 = build_grid(np.arange(50) / 25.0, sample_fps=7.5, clip_len=4, clip_hop=2)
    assert list(grid25.grid_frames[:4]) == [0, 3, 6, 10]


def test_variable_frame_rate_uses_timestamps():
    times = np.array([0.0, 0.05, 0.30, 0.31, 0.62, 0.9])
    grid = build_grid(times, sample_fps=5.0, clip_len=2, clip_hop=1, duration_s=1.0)
    np.testing.assert_allclose(grid.grid_times, [0.0, 0.2, 0.4, 0.6, 0.8])
    assert list(grid.grid_frames) == [0, 1, 3, 3, 4]


def test_clip_layout_centres_and_segments():
    grid = build_grid(
        np.arange(300) / 15.0, sample_fps=7.5, clip_len=8, clip_hop=2
    )  # 20 s -> 150 grid frames
    assert grid.num_clips == (150 - 8) // 2 + 1
    centers = grid.clip_centers()
    assert centers[0] == pytest.approx((0 + 7 / 7.5 + 1 / 7.5) / 2)
    np.testing.assert_allclose(np.diff(centers), grid.hop_s)
    # Segments own disjoint clips that together cover every clip exactly once.
    cuts = [0.0, 7.3, 13.0, 20.0]
    owned = [grid.clips_in(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    assert [c for r in owned for c in r] == list(range(grid.num_clips))
    span = grid.grid_span(owned[1])
    assert span.start == owned[1].start * 2 - 1  # one context frame before the first clip
    assert span.stop == (owned[1].stop - 1) * 2 + 8
    assert grid.grid_span(owned[0]).start == 0


def test_clip_targets_follow_event_coverage():
    grid = build_grid(np.arange(150) / 15.0, sample_fps=7.5, clip_len=8, clip_hop=2)
    labels = ["wave", "fall"]
    t = clip_targets(
        grid,
        [{"label": "wave", "start_s": 2.0, "end_s": 5.0}, {"label": "unknown", "start_s": 0.0, "end_s": 9.0}],
        labels,
    )
    centers = grid.clip_centers()
    inside = (centers > 2.0 + grid.hop_s) & (centers < 5.0 - grid.hop_s)
    outside = (centers < 2.0 - grid.hop_s) | (centers > 5.0 + grid.hop_s)
    assert t[inside, 0].all() and not t[outside, 0].any()
    assert not t[:, 1].any()
