"""Training data of `actrec train`: each labelled video decoded once onto the model's sampling grid
(uint8 frames in memory, per-clip targets, per-frame postures), and the random, augmented windows of
consecutive clips that stage 1 learns from."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from actrec_batch.model.features import decode_grid_frames
from actrec_batch.model.reference import ExtractorConfig
from actrec_batch.model.sampling import ClipGrid, build_grid, clip_targets
from actrec_batch.synth.timeline import POSTURES
from actrec_batch.training.footage import FootageSpec

if TYPE_CHECKING:
    from actrec_batch.training.config import TrainConfig


@dataclass
class VideoArrays:
    """One decoded training video: its grid, grid frames and per-clip targets."""

    key: str
    grid: ClipGrid
    frames: np.ndarray  # [K, H, W, 3] uint8
    targets: np.ndarray  # [num_clips, C]
    events: list[dict]
    duration_s: float
    # [K, len(POSTURES)] per grid frame (synth timeline): the targets of stage 1b and the aux loss
    postures: np.ndarray | None = None

    @property
    def centers_s(self) -> np.ndarray:
        return self.grid.clip_centers()

    @property
    def hop_s(self) -> float:
        return self.grid.hop_s


def load_video(root: Path, key: str, cfg: ExtractorConfig, labels: list[str]) -> VideoArrays:
    """Decode one labelled video onto the sampling grid."""
    from actrec_batch.video import frame_index

    path = root / key
    sidecar = json.loads((root / f"{key}.labels.json").read_text())
    index = frame_index(path, uri=key)  # built once: the grid and the decode both use it
    grid = build_grid(
        index.times_s,
        sample_fps=cfg.sample_fps,
        clip_len=cfg.clip_len,
        clip_hop=cfg.clip_hop,
        duration_s=float(sidecar["duration_s"]),
    )
    frames = decode_grid_frames(
        path,
        grid,
        range(len(grid.grid_times)),
        width=cfg.frame_width,
        height=cfg.frame_height,
        frame_index=index,
        uri=key,
    )
    return VideoArrays(
        key,
        grid,
        frames,
        clip_targets(grid, sidecar["events"], labels),
        sidecar["events"],
        float(sidecar["duration_s"]),
        _grid_postures(key, sidecar, grid),
    )


def _grid_postures(key: str, sidecar: dict, grid: ClipGrid) -> np.ndarray | None:
    """Postures per grid frame, re-planned from the sidecar's synth arguments (no rendering), or None
    when the footage was not made by ``actrec synth`` or the re-planned events differ from the sidecar's."""
    from actrec_batch.synth import plan_footage
    from actrec_batch.synth.timeline import posture_frames

    try:
        date = dt.date.fromisoformat(key.split("date=", 1)[1][:10])
        spec = FootageSpec.of_sidecar(sidecar)
        planned = plan_footage(date, **spec.synth_args())[int(sidecar.get("file_index", 0))]
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    timeline = planned.spec.timeline
    if [e.to_json() for e in timeline.events] != sidecar["events"]:
        return None
    frames = posture_frames(timeline)
    return frames[np.clip(grid.grid_frames, 0, len(frames) - 1)]


def load_videos(
    root: Path,
    key_lists: list[list[str]],
    cfg: ExtractorConfig,
    labels: list[str],
    *,
    workers: int | None = None,
) -> list[list[VideoArrays]]:
    """:func:`load_video` for each list of keys, decoding in parallel processes."""
    workers = workers or os.cpu_count() or 1
    with cf.ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [[pool.submit(load_video, root, k, cfg, labels) for k in keys] for keys in key_lists]
        return [[f.result() for f in fs] for fs in futures]


def augment_frames(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Same random photometric + geometric transform on every frame of a window. uint8 -> float [0, 255]."""
    x = frames.permute(0, 3, 1, 2).float()  # [L, 3, H, W]
    _, _, h, w = x.shape
    if rng.random() < 0.5:
        x = x.flip(3)
    scale = rng.uniform(0.8, 1.0)
    aspect = np.exp(rng.uniform(-0.15, 0.15))
    ch, cw = min(h, int(h * scale / np.sqrt(aspect))), min(w, int(w * scale * np.sqrt(aspect)))
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    x = F.interpolate(x[:, :, y0 : y0 + ch, x0 : x0 + cw], size=(h, w), mode="bilinear", align_corners=False)
    gain = torch.tensor(rng.uniform(0.92, 1.08, size=3), dtype=torch.float32).view(1, 3, 1, 1)
    contrast = rng.uniform(0.8, 1.2)
    mean = x.mean()
    x = (x - mean) * contrast + mean * rng.uniform(0.8, 1.2)
    x = x * gain + torch.randn_like(x) * rng.uniform(0.0, 8.0)
    return x.clamp_(0, 255).permute(0, 2, 3, 1)


def _window_batch(
    videos: list[VideoArrays],
    weights: np.ndarray,
    cfg: TrainConfig,
    rng: np.random.Generator,
    augment: bool,
    by_label: dict | None = None,
    reverse: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Sample windows of consecutive clips: (current frames, previous frames, per-window code counts, targets).

    ``reverse`` = (label permutation under time reversal, mask of labels that allow it); see
    ``TrainConfig.time_reverse``.
    """
    ecfg = cfg.extractor
    curs, prevs, counts, targets, postures = [], [], [], [], []
    for _ in range(cfg.batch_windows):
        v = videos[rng.choice(len(videos), p=weights)]
        n = min(cfg.window_clips, v.grid.num_clips)
        j0 = int(rng.integers(0, v.grid.num_clips - n + 1))
        if rng.random() < cfg.event_centred and by_label:
            # Rare, subtle classes (sit_down, stand_up, wave) get as many windows as common ones.
            label = list(by_label)[rng.integers(len(by_label))]
            v, ev = by_label[label][rng.integers(len(by_label[label]))]
            n = min(cfg.window_clips, v.grid.num_clips)
            centre = (ev["start_s"] + ev["end_s"]) / 2 + rng.uniform(-1.0, 1.0)
            j_mid = int(np.searchsorted(v.grid.clip_centers(), centre))
            j0 = int(np.clip(j_mid - n // 2, 0, v.grid.num_clips - n))
        clips = range(j0, j0 + n)
        span = v.grid.grid_span(clips)
        frames = torch.from_numpy(v.frames[span.start : span.stop])
        frames = augment_frames(frames, rng) if augment else frames.float()
        target = torch.from_numpy(v.targets[j0 : j0 + n])
        has_context = span.start < j0 * ecfg.clip_hop  # frames[0] only serves as frames[1]'s predecessor
        post = (
            torch.from_numpy(v.postures[span.start + int(has_context) : span.stop])
            if v.postures is not None
            else torch.full((len(span) - int(has_context), len(POSTURES)), -1.0)  # -1: no posture target
        )
        if reverse is not None and _reversible(target, reverse[1]) and rng.random() < cfg.time_reverse:
            post = post.flip(0)
            # Backwards, without the context frame: clip k of the reversed window is clip n-1-k played
            # backwards; its first frame has no predecessor, like grid frame 0.
            cur = (frames[1:] if has_context else frames).flip(0)
            prev = torch.cat([cur[:1], cur[:-1]])
            target = target.flip(0)[:, torch.from_numpy(reverse[0])]
        elif has_context:
            cur, prev = frames[1:], frames[:-1]
        else:  # grid frame 0: its own predecessor
            cur, prev = frames, torch.cat([frames[:1], frames[:-1]])
        curs.append(cur)
        prevs.append(prev)
        counts.append(cur.shape[0])
        targets.append(target)
        postures.append(post)
    return torch.cat(curs), torch.cat(prevs), counts, torch.stack(targets), torch.cat(postures)


def _reversible(target: torch.Tensor, allowed: np.ndarray) -> bool:
    """A window may be reversed when every label present in it has a reversed twin."""
    present = target.amax(dim=0).numpy() > 0
    return not bool(np.any(present & ~allowed))


def reverse_map(labels: list[str], cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(permutation of label indices under time reversal, mask of labels that allow it)."""
    index = {label: i for i, label in enumerate(labels)}
    perm = np.arange(len(labels))
    allowed = np.zeros(len(labels), dtype=bool)
    for a, b in cfg.reverse_pairs:
        if a in index and b in index:
            perm[index[a]], perm[index[b]] = index[b], index[a]
            allowed[index[a]] = allowed[index[b]] = True
    for label in cfg.reverse_self:
        if label in index:
            allowed[index[label]] = True
    return perm, allowed
