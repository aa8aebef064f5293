"""`actrec train` end to end at toy scale: footage -> decode -> train -> tune -> a loadable bundle.

The real run (the shipped weights) takes ~30 min on 2 cores; this checks the pipeline, not quality.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from actrec_batch.model import load_model
from actrec_batch.synth import LABELS
from actrec_batch.training import (
    FootageSpec,
    TrainConfig,
    bidirectional_config,
    missing_footage,
    run_training,
)


def test_tiny_training_run_produces_a_verified_bundle(tmp_path):
    cfg = TrainConfig(
        seed=3,
        steps=3,
        batch_windows=2,
        window_clips=8,
        head_refit_steps=4,
        head_refit_windows=2,
        head_refit_clips=16,
        posture_steps=3,
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
    # reference@3's architecture: a posture branch, trained after the motion extractor (stage 1b)
    from actrec_batch.synth.timeline import POSTURES

    assert card.extractor.config["postures"] == len(POSTURES) == 6
    assert card.extractor.config["embed_dim"] == 128 + 2 * len(POSTURES)
    assert card.training["timings"]["posture_s"] > 0
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
    # The same extractor read both ways: same weights, but other features, so another extractor
    # version (the feature cache is keyed by it), and a head over both halves.
    card4, _ = run_training(
        tmp_path / "bundle4",
        tmp_path / "work",
        bidirectional_config(cfg),
        name="toy",
        version="2",
        progress=False,
        extractor_from=str(tmp_path / "bundle"),
    )
    assert card4.extractor.sha256 == card.extractor.sha256
    assert card4.extractor_id == "reference-extractor@2" != card.extractor_id
    assert card4.extractor.config["bidirectional"] is True
    assert card4.head.config["embed_dim"] == card.head.config["embed_dim"] + cfg.extractor.clip_dim
    assert "posture_s" not in card4.training["timings"]  # the base's posture branch is kept
    assert load_model(str(tmp_path / "bundle4"), device="cpu").card.weights_sha256 == card4.weights_sha256


def _ramp_video(labels, label_of_clip):
    """A video whose grid frame k has pixel value k, with one label on every third clip."""
    from actrec_batch.model.sampling import build_grid
    from actrec_batch.training.data import VideoArrays

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
    from actrec_batch.training.data import _window_batch, reverse_map

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
    from actrec_batch.training.data import _window_batch, reverse_map

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
    from actrec_batch.training.data import _window_batch, load_video, reverse_map

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
    moves = {"walk": "walking", "run": "running", "wave": "arm_up"}
    seen = set()
    for (
        ev
    ) in video.events:  # in the middle of a walk, a run or a wave, a frame shows its stride or raised arm
        if ev["label"] in moves:
            k = int(np.searchsorted(video.grid.grid_times, (ev["start_s"] + ev["end_s"]) / 2))
            assert video.postures[k, POSTURES.index(moves[ev["label"]])] == 1
            seen.add(ev["label"])
    assert seen, "the footage should hold a walk, a run or a wave"
    cfg = TrainConfig(batch_windows=4, window_clips=5)
    cur, _, counts, _, post = _window_batch(
        [video], np.ones(1), cfg, np.random.default_rng(1), False, None, reverse_map(labels, cfg)
    )
    assert post.shape == (cur.shape[0], len(POSTURES)) and sum(counts) == cur.shape[0]


def _bidirectional_pair():
    import torch

    from actrec_batch.model.reference import ExtractorConfig, ReferenceExtractor
    from actrec_batch.training.checkpoints import with_config

    torch.manual_seed(0)
    cfg = ExtractorConfig(
        frame_width=32, frame_height=24, frame_dim=16, embed_dim=16, widths=(4, 8), keypoints=4
    )
    forward = ReferenceExtractor(cfg).eval()
    return forward, with_config(forward, cfg.bidirectional_of())


def test_bidirectional_embeddings_are_forward_plus_the_clip_read_backwards():
    import torch

    from actrec_batch.model.features import embed_range
    from actrec_batch.model.sampling import build_grid

    forward, both = _bidirectional_pair()
    grid = build_grid(np.arange(0, 12, 1 / 15), sample_fps=7.5, clip_len=8, clip_hop=2, duration_s=12)
    frames = np.random.default_rng(1).integers(0, 256, (len(grid.grid_times), 24, 32, 3), dtype=np.uint8)
    n = grid.num_clips

    def embed(extractor, clips):
        span = grid.grid_span(clips)
        return embed_range(extractor, grid, clips, frames[span.start : span.stop], "cpu").embeddings

    whole = embed(both, range(n))
    assert whole.shape == (n, 32)
    np.testing.assert_array_equal(whole[:, :16], embed(forward, range(n)))  # same weights, same forward half
    # However the video is cut into work units, the features are the same (no frame beyond the
    # forward path's context frame is needed).
    cut = np.concatenate([embed(both, r) for r in (range(0, 7), range(7, 19), range(19, n))])
    np.testing.assert_allclose(cut, whole, rtol=0, atol=1e-6)  # batch sizes differ: float sums may too
    # The backward half of clip j is the forward extractor on frames s+6 .. s-1 played backwards
    # (s = its first grid frame), frame s+7 standing before them.
    j = 9
    s = j * 2
    backwards = np.ascontiguousarray(frames[s - 1 : s + 8][::-1])
    with torch.inference_mode():
        expected = forward(torch.from_numpy(backwards)[None])[0].numpy()
    np.testing.assert_allclose(whole[j, 16:], expected, rtol=0, atol=1e-5)


def test_a_units_embeddings_are_the_same_bytes_whatever_else_is_in_the_call():
    """The scheduler's batches change with the cluster (a resumed run, a lost node); a unit's
    features must not: embedded alone, after another unit, or among several, the bytes are equal."""
    from actrec_batch.model.features import UnitFrames, embed_units

    _, both = _bidirectional_pair()
    rng = np.random.default_rng(7)

    def unit(frames: int, clips: int) -> UnitFrames:
        return UnitFrames(rng.integers(0, 256, (frames, 24, 32, 3), dtype=np.uint8), True, clips)

    a, b, c = unit(1 + 8 + 2 * 9, 10), unit(1 + 8 + 2 * 30, 31), unit(1 + 8, 1)

    def embed(units):
        return embed_units(both, units, clip_len=8, clip_hop=2, embed_dim=32, device="cpu")

    (alone,) = embed([a])
    for batch, at in (([b, a], 1), ([c, a, b], 1), ([a, c, c, b], 0)):
        assert embed(batch)[at].tobytes() == alone.tobytes(), [u.num_clips for u in batch]


def test_head_scores_are_the_same_bits_at_any_thread_count():
    """The head sums over a whole video's clips; on several threads the order of those sums (and
    the last bits) would depend on the process's thread count (a Ray driver's, the local runner's)."""
    import torch

    from actrec_batch.model import DEFAULT_MODEL, load_model
    from actrec_batch.model.features import head_scores

    model = load_model(DEFAULT_MODEL, device="cpu")
    embeddings = np.random.default_rng(5).standard_normal((400, 140)).astype(np.float32)
    before = torch.get_num_threads()
    try:
        scores = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            scores.append(head_scores(model.head, embeddings, "cpu").tobytes())
            assert torch.get_num_threads() == threads  # restored
    finally:
        torch.set_num_threads(before)
    assert scores[0] == scores[1] == scores[2]


def test_stage_two_sees_each_video_backwards_with_swapped_halves_and_labels():
    from actrec_batch.training.loop import head_sequences

    labels = list(LABELS)
    video = _ramp_video(labels, "sit_down")
    n = video.grid.num_clips
    video.targets[:, labels.index("fall")] = np.arange(n) % 5 == 0
    from actrec_batch.model.reference import ExtractorConfig

    # 2 x 4 motion values, then 2 x 1 posture means (the clip's first half, then its second half)
    emb = np.random.default_rng(0).normal(size=(n, 10)).astype(np.float32)
    cfg = bidirectional_config(TrainConfig(extractor=ExtractorConfig(embed_dim=4).with_postures(1)))
    assert cfg.extractor.embed_dim == 10
    ahead, back = head_sequences([emb], [video], labels, cfg)
    np.testing.assert_array_equal(ahead.x, emb)
    swapped = [emb[:, 4:8], emb[:, :4], emb[:, 9:], emb[:, 8:9]]
    np.testing.assert_array_equal(back.x, np.concatenate(swapped, axis=1)[::-1])
    sit, stand, fall = labels.index("sit_down"), labels.index("stand_up"), labels.index("fall")
    np.testing.assert_array_equal(back.y[:, stand], video.targets[::-1, sit])
    assert back.y[:, sit].sum() == 0
    # A fall played backwards is no fall and no background either: no loss on it, or on jump.
    assert back.weight[:, fall].sum() == 0 and back.weight[:, labels.index("jump")].sum() == 0
    assert back.weight[:, sit].all() and ahead.weight.all()
    assert len(head_sequences([emb], [video], labels, TrainConfig())) == 1


def test_posture_branch_learns_what_is_on_screen_and_joins_the_motion_extractor():
    """Stage 1b on frames whose 'posture' is plain to see (a bright block low in the frame means
    seated, high means standing): the branch must learn it, and with_config must put it next to the
    motion weights without touching them."""
    import torch

    from actrec_batch.model.reference import ExtractorConfig, ReferenceExtractor, normalised_rgb
    from actrec_batch.training.checkpoints import with_config
    from actrec_batch.training.data import VideoArrays
    from actrec_batch.training.loop import train_postures

    rng = np.random.default_rng(0)
    ecfg = ExtractorConfig(
        frame_width=32, frame_height=24, frame_dim=16, embed_dim=16, widths=(4, 8), posture_widths=(8, 16)
    )
    cfg = TrainConfig(extractor=ecfg.with_postures(3), posture_steps=150, lr=1e-2)

    def video(n):
        frames = rng.integers(60, 90, (n, 24, 32, 3), dtype=np.uint8)
        postures = np.zeros((n, 3), np.float32)
        low = rng.random(n) < 0.5
        for i in range(n):
            x = int(rng.integers(0, 26))
            y = int(rng.integers(14, 20) if low[i] else rng.integers(0, 6))
            frames[i, y : y + 5, x : x + 6] = 230
            postures[i, 1 if low[i] else 0] = 1.0
        return VideoArrays("v", None, frames, np.zeros((1, 7), np.float32), [], 1.0, postures), low

    train, _ = video(400)
    posture = train_postures([train], cfg, progress=False)
    test, low = video(200)
    with torch.inference_mode():
        seated = posture(normalised_rgb(torch.from_numpy(test.frames)))[:, 1].numpy() > 0
    assert (seated == low).mean() > 0.9

    motion = ReferenceExtractor(ecfg).eval()
    joined = with_config(motion, cfg.extractor, posture)
    assert joined.cfg.postures == 3 and joined.cfg.embed_dim == 16 + 6
    for key, tensor in motion.state_dict().items():
        torch.testing.assert_close(joined.state_dict()[key], tensor, rtol=0, atol=0)
    with pytest.raises(ValueError, match="no posture branch"):
        with_config(motion, cfg.extractor)
    with pytest.raises(ValueError, match="actrec synth"):
        train_postures(
            [VideoArrays("v", None, test.frames, test.targets, [], 1.0, None)], cfg, progress=False
        )


def test_training_frames_of_an_avi_with_b_frames_match_a_sequential_decode(tmp_path):
    """An AVI whose container holds decode-order times: training decodes through the frame index it
    built once, and each grid frame is the picture a plain decode gives at that index."""
    import json
    from pathlib import Path

    import av
    from footage import write_video

    from actrec_batch.model.reference import ExtractorConfig
    from actrec_batch.training.data import load_video

    key = "footage/date=2000-01-03/camera=c/b.avi"
    path = write_video(tmp_path / key, frames=60, fps=15.0, codec="h264")  # libx264: B-frames
    Path(f"{path}.labels.json").write_text(json.dumps({"duration_s": 4.0, "events": []}))
    cfg = ExtractorConfig(sample_fps=5.0)  # every third frame: the old frame-times path got one wrong
    video = load_video(tmp_path, key, cfg, list(LABELS))
    with av.open(str(path)) as container:
        pictures = [
            f.to_ndarray(width=cfg.frame_width, height=cfg.frame_height, format="rgb24")
            for f in container.decode(video=0)
        ]
    assert len(video.frames) == len(video.grid.grid_frames) > 10
    for got, index in zip(video.frames, video.grid.grid_frames, strict=True):
        np.testing.assert_array_equal(got, pictures[index])
