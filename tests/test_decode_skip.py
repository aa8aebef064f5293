"""Skipping non-reference frames (``DecodeOptions.stand_in_s``, on by default in
:func:`~actrec_batch.model.sampling.decode_grid_frames`): a grid instant whose frame the decoder
skips is served by a neighbour within half a grid step of it, bit-exact with a full decode;
footage without B-frames comes out exactly as before, and a wanted frame with no neighbour
close enough is decoded in full.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from footage_zoo import ZooCase, read_code, write_case

from actrec_batch.model.sampling import build_grid, decode_grid_frames, stand_in_s
from actrec_batch.video import DecodeStats, decode_frames, frame_index

SAMPLE_FPS = 7.5
HALF_STEP_S = 0.5 / SAMPLE_FPS
# 28 coded frames at 25 fps: a 7.5 fps grid of 9 instants, some on x264's non-reference B-frames
# (its default: 3 B-frames, pyramid).
B_FRAMES = ZooCase(
    "b_frames", ".mp4", "libx264", fps=25.0, frames=28, options={"preset": "veryfast", "crf": "10"}
)
NO_B_FRAMES = ZooCase(
    "no_b_frames",
    ".mp4",
    "libx264",
    fps=25.0,
    frames=28,
    options={"preset": "veryfast", "crf": "10", "bf": "0"},
)


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("skip")
    return {case.name: write_case(folder / case.file_name, case) for case in (B_FRAMES, NO_B_FRAMES)}


def grid_of(path: Path):
    index = frame_index(path)
    return index, build_grid(index.times_s, sample_fps=SAMPLE_FPS, clip_len=1, clip_hop=1)


def full_decode(path: Path, index) -> list[np.ndarray]:
    return [rgb for _, _, rgb in decode_frames(path, range(len(index)), frame_index=index)]


@pytest.mark.parametrize("case", [B_FRAMES, NO_B_FRAMES], ids=lambda c: c.name)
def test_served_frames_are_within_half_a_grid_step_and_match_the_full_decode(footage, case):
    path = footage[case.name]
    index, grid = grid_of(path)
    window = stand_in_s(grid, index.times_s)
    assert 1 / case.fps <= window <= HALF_STEP_S  # a neighbour one frame away may stand in
    instants = index.times_s[0] + grid.grid_times
    reference = full_decode(path, index)
    stats = DecodeStats()
    served = list(
        decode_frames(
            path, grid.grid_frames, frame_index=index, at_s=instants, stand_in_s=window, stats=stats
        )
    )
    assert len(served) == len(grid.grid_times)
    for k, (wanted, seconds, rgb) in enumerate(served):
        assert wanted == grid.grid_frames[k]
        assert abs(seconds - index.times_s[0] - grid.grid_times[k]) <= HALF_STEP_S, k
        shown = int(np.searchsorted(index.times_s, seconds - 1e-9))
        np.testing.assert_array_equal(rgb, reference[shown])  # bit-exact with the full decode
        assert round(read_code(rgb)) == shown
    assert stats.stand_in_misses == 0
    if case is B_FRAMES:
        assert stats.frames_decoded < len(index) and stats.stand_ins > 0  # frames were skipped
    else:  # every frame is a reference frame: nothing to skip, every grid frame exact
        assert stats.stand_ins == 0
        assert [round(read_code(rgb)) for _, _, rgb in served] == grid.grid_frames.tolist()


def test_grid_frames_do_not_depend_on_where_a_unit_starts(footage):
    """The stand-in for a grid instant is the same whichever span (work unit) decodes it."""
    path = footage[B_FRAMES.name]
    index, grid = grid_of(path)
    whole = decode_grid_frames(
        path, grid, range(len(grid.grid_times)), width=32, height=24, frame_index=index
    )
    for start in range(1, len(grid.grid_times)):
        part = decode_grid_frames(
            path, grid, range(start, len(grid.grid_times)), width=32, height=24, frame_index=index
        )
        np.testing.assert_array_equal(part, whole[start:])
    exact = decode_grid_frames(
        path, grid, range(len(grid.grid_times)), width=32, height=24, frame_index=index, skip_nonref=False
    )
    shown = np.array([read_code(f) for f in whole]) - np.array([read_code(f) for f in exact])
    assert np.all(np.abs(shown) <= HALF_STEP_S * B_FRAMES.fps + 0.5)


def test_a_skipped_frame_without_a_close_neighbour_is_decoded_in_full(footage):
    path = footage[B_FRAMES.name]
    index = frame_index(path)
    reference = full_decode(path, index)
    wanted = list(range(len(index)))
    stats = DecodeStats()
    got = list(decode_frames(path, wanted, frame_index=index, stand_in_s=1e-4, stats=stats))  # < a frame
    assert stats.stand_in_misses > 0 and stats.stand_ins == 0
    assert [i for i, _, _ in got] == wanted
    for (_, seconds, rgb), i in zip(got, wanted, strict=True):
        assert seconds == pytest.approx(index.times_s[i])
        np.testing.assert_array_equal(rgb, reference[i])


def test_no_stand_ins_where_the_grid_leaves_no_room():
    """A 12 fps source on a 7.5 fps grid: half a step less the grid's lag is under a frame gap."""
    times = np.arange(24) / 12.0
    grid = build_grid(times, sample_fps=SAMPLE_FPS, clip_len=1, clip_hop=1)
    assert stand_in_s(grid, times) == 0.0


def test_one_gap_in_the_timestamps_does_not_turn_skipping_off():
    """A looped or spliced file jumps a few frames at its joins: those instants get their own
    frame (a miss), the rest of the video still skips."""
    times = np.arange(3000) / 25.0
    times[1500:] += 0.08  # two frames missing at one join
    grid = build_grid(times, sample_fps=SAMPLE_FPS, clip_len=1, clip_hop=1)
    assert stand_in_s(grid, times) == pytest.approx(HALF_STEP_S, abs=1e-5)
