"""`actrec train` end to end at toy scale: footage -> decode -> train -> tune -> a loadable bundle.

The real run (the shipped weights) takes ~30 min on 2 cores; this checks the pipeline, not quality.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from actrec_batch.model import load_model
from actrec_batch.synth import LABELS
from actrec_batch.training import FootageSpec, TrainConfig, missing_footage, run_training


def test_tiny_training_run_produces_a_verified_bundle(tmp_path):
    cfg = TrainConfig(
        seed=3,
        steps=3,
        batch_windows=2,
        window_clips=8,
        head_refit_steps=4,
        head_refit_windows=2,
        head_refit_clips=16,
        train_footage=(FootageSpec(1901, 0.4, 160, 120, 10.0, "h264", 0.02),),
        val_footage=(FootageSpec(1902, 0.4, 160, 120, 12.0, "mpeg4", 0.02),),
    )
    card, report = run_training(
        tmp_path / "bundle", tmp_path / "work", cfg, name="toy", version="0", progress=False
    )
    assert card.model_id == "toy@0"
    assert card.labels[0] == "walk" and "fall" in card.labels
    assert set(card.postprocess["events"]) >= {"on_threshold", "off_threshold", "smooth_s"}
    assert "validation" in card.metrics and 0.0 <= card.metrics["validation"]["f1"] <= 1.0
    assert card.training["config"]["steps"] == 3
    loaded = load_model(str(tmp_path / "bundle"), device="cpu")
    assert loaded.card.weights_sha256 == card.weights_sha256
    # Same seed, same data -> same weights: training is reproducible.
    card2, _ = run_training(
        tmp_path / "bundle2", tmp_path / "work", cfg, name="toy", version="0", progress=False
    )
    assert card2.weights_sha256 == card.weights_sha256
    # The second run reused the rendered footage; a changed spec is rendered again, not reused.
    assert card.training["timings"]["videos_rendered"] == 2
    assert card2.training["timings"]["videos_rendered"] == 0
    changed = (FootageSpec(1902, 0.4, 160, 120, 12.0, "h264", 0.02),)
    assert missing_footage(tmp_path / "work" / "store", changed, offset=100) == [0]
    # A new head on the same extractor: the extractor (and its identity) is kept, the head is new.
    card3, _ = run_training(
        tmp_path / "bundle3",
        tmp_path / "work",
        TrainConfig(**{**cfg.__dict__, "seed": 5}),
        name="toy",
        version="1",
        progress=False,
        extractor_from=str(tmp_path / "bundle"),
    )
    assert card3.extractor.sha256 == card.extractor.sha256
    assert (card3.extractor.id, card3.extractor.version) == (card.extractor.id, card.extractor.version)
    assert card3.head.sha256 != card.head.sha256
    assert card3.head.config["lags"] == list(cfg.head_lags)
    assert card3.training["extractor_from"] == "toy@0"
    assert np.isfinite(report.to_json()["f1"])


def _ramp_video(labels, label_of_clip):
    """A video whose grid frame k has pixel value k, with one label on every third clip."""
    from actrec_batch.model.sampling import build_grid
    from actrec_batch.training import VideoArrays

    e = TrainConfig().extractor
    grid = build_grid(
        np.arange(0, 20, 1 / 15), sample_fps=e.sample_fps, clip_len=e.clip_len, clip_hop=e.clip_hop
    )
    frames = np.zeros((len(grid.grid_times), 2, 2, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(len(grid.grid_times))
    targets = np.zeros((grid.num_clips, len(labels)), np.float32)
    targets[:, labels.index(label_of_clip)] = np.arange(grid.num_clips) % 3 == 0
    return VideoArrays("ramp", grid, frames, targets, [], 20.0)


def test_time_reversed_windows_play_backwards_with_swapped_labels():
    from actrec_batch.training import _window_batch, reverse_map

    labels = list(LABELS)
    cfg = TrainConfig(batch_windows=3, window_clips=5, time_reverse=1.0, event_centred=0.0)
    video = _ramp_video(labels, "sit_down")
    plain = _window_batch(
        [video],
        np.ones(1),
        TrainConfig(**{**cfg.__dict__, "time_reverse": 0.0}),
        np.random.default_rng(4),
        False,
        None,
        reverse_map(labels, cfg),
    )
    rev = _window_batch(
        [video], np.ones(1), cfg, np.random.default_rng(4), False, None, reverse_map(labels, cfg)
    )
    assert plain[2] == rev[2]  # same windows, same code counts
    off = 0
    for w, count in enumerate(rev[2]):
        cur_p, cur_r = plain[0][off : off + count, 0, 0, 0], rev[0][off : off + count, 0, 0, 0]
        prev_r = rev[1][off : off + count, 0, 0, 0]
        assert cur_r.tolist() == cur_p.flip(0).tolist()  # the same frames, backwards
        assert prev_r[1:].tolist() == cur_r[:-1].tolist() and prev_r[0] == cur_r[0]
        sit, stand = labels.index("sit_down"), labels.index("stand_up")
        assert rev[3][w, :, stand].tolist() == plain[3][w, :, sit].flip(0).tolist()
        assert rev[3][w, :, sit].sum() == 0
        off += count


def test_falls_are_never_played_backwards():
    from actrec_batch.training import _window_batch, reverse_map

    labels = list(LABELS)
    cfg = TrainConfig(batch_windows=8, window_clips=5, time_reverse=1.0, event_centred=0.0)
    video = _ramp_video(labels, "fall")
    cur, _, counts, targets, _ = _window_batch(
        [video], np.ones(1), cfg, np.random.default_rng(0), False, None, reverse_map(labels, cfg)
    )
    off = 0
    for w, count in enumerate(counts):
        codes = cur[off : off + count, 0, 0, 0]
        assert targets[w, :, labels.index("fall")].any()  # every window holds a fall...
        assert bool((codes.diff() > 0).all())  # ...so it plays forwards
        off += count


def test_lag_head_scores_videos_shorter_than_its_lags():
    import torch

    from actrec_batch.model.reference import HeadConfig, ReferenceHead

    head = ReferenceHead(HeadConfig(lags=(2, 4, 8, 12))).eval()
    for clips in (1, 2, 5, 13, 40):
        with torch.inference_mode():
            out = head(torch.randn(1, clips, 128))
        assert out.shape == (1, clips, 7) and torch.isfinite(out).all()


def test_posture_targets_follow_the_timeline_and_the_window_frames(tmp_path):
    from actrec_batch.model.reference import ExtractorConfig
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage
    from actrec_batch.synth.timeline import POSTURES
    from actrec_batch.training import _window_batch, load_video, reverse_map

    store = open_store(str(tmp_path))
    report = synth_footage(
        store, date=dt.date(2000, 1, 3), cameras=1, minutes=0.5, seed=1003, file_minutes=0.5, progress=False
    )
    labels = list(LABELS)
    video = load_video(tmp_path, report.videos[0], ExtractorConfig(), labels)
    assert video.postures is not None and video.postures.shape == (len(video.grid.grid_times), len(POSTURES))
    for ev in video.events:  # a figure that just sat down is seated a moment later
        if ev["label"] == "sit_down":
            k = int(np.searchsorted(video.grid.grid_times, ev["end_s"] + 0.2))
            if k < len(video.postures):
                assert video.postures[k, POSTURES.index("seated")] == 1
    cfg = TrainConfig(batch_windows=4, window_clips=5)
    cur, _, counts, _, post = _window_batch(
        [video], np.ones(1), cfg, np.random.default_rng(1), False, None, reverse_map(labels, cfg)
    )
    assert post.shape == (cur.shape[0], 3) and sum(counts) == cur.shape[0]
