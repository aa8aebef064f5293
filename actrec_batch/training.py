"""`actrec train`: train the reference model on labelled synthetic footage, reproducibly, on CPU.

Flow: render training + validation footage with ``actrec synth`` (fixed seeds, varied resolution,
frame rate, codec and noise, so the model does not learn one camera) -> decode each video once onto
the model's sampling grid (uint8 frames in memory) -> train extractor + head end to end on random
windows of consecutive clips with per-clip multi-label targets and photometric/geometric
augmentation -> score the validation videos and tune the event post-processing on them -> save a
model bundle (safetensors + card.json).

Seeds 1000-1999 are reserved for training and validation footage; evaluate on other seeds.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from actrec_batch.layout import SIDECAR_SUFFIX, footage_prefix
from actrec_batch.model.features import clip_embeddings, decode_grid_frames
from actrec_batch.model.reference import (
    ExtractorConfig,
    HeadConfig,
    PostureEncoder,
    ReferenceExtractor,
    ReferenceHead,
    normalised_rgb,
)
from actrec_batch.model.sampling import ClipGrid, build_grid, clip_targets
from actrec_batch.synth.timeline import POSTURES

log = logging.getLogger(__name__)

TRAIN_SEED_RANGE = range(1000, 2000)
_VAL_OFFSET = 100  # validation videos are dated 100 days after the training videos


@dataclass(frozen=True)
class FootageSpec:
    """One synthetic video used for training or validation."""

    seed: int
    minutes: float
    width: int = 320
    height: int = 240
    fps: float = 15.0
    codec: str = "h264"
    noise: float = 0.02


# Varied on purpose: resolution, aspect, frame rate, codec and noise differ between videos, so the
# model does not learn one camera. HEVC is left out: the shifted held-out set uses it.
_SIZES = ((320, 240), (426, 240), (256, 192), (400, 300), (288, 216), (480, 270), (224, 168), (352, 264))
_RATES = (15.0, 12.0, 25.0, 10.0, 20.0, 30.0, 15.0, 8.0)
_CODECS = ("h264", "h264", "mpeg4", "h264", "vp9", "h264", "mpeg4", "h264")
_NOISE = (0.02, 0.03, 0.01, 0.04, 0.02, 0.05, 0.0, 0.03)


def varied_footage(first_seed: int, count: int, minutes: float) -> tuple[FootageSpec, ...]:
    """``count`` videos with seeds ``first_seed...``; camera set-ups cycle through the tables above,
    shifted against each other on every turn of 8, so sizes, rates, codecs and noise combine
    differently each time."""
    return tuple(
        FootageSpec(
            first_seed + i,
            minutes,
            *_SIZES[i % 8],
            _RATES[(i + 3 * (i // 8) + 1) % 8],
            _CODECS[(i + 5 * (i // 8) + 2) % 8],
            _NOISE[(i + 7 * (i // 8) + 3) % 8],
        )
        for i in range(count)
    )


TRAIN_FOOTAGE: tuple[FootageSpec, ...] = varied_footage(1001, 32, 7.5)  # 4 hours
# 72 minutes (~640 events): the post-processing tunes ~12 numbers on it. reference@2 tuned them on
# the first 24 minutes, and lost 0.06 F1@0.5 from there to the next 48.
VAL_FOOTAGE: tuple[FootageSpec, ...] = varied_footage(1101, 12, 6.0)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 1800
    batch_windows: int = 8
    window_clips: int = 16
    event_centred: float = 0.5  # share of windows centred on a labelled event, classes drawn uniformly
    # Time reversal: played backwards, sitting down is standing up (and walking, running, waving are
    # still themselves), so such windows are reversed with this probability and their labels swapped.
    # The model cannot then tell the two apart by context (a chair, a posture): only by the order.
    # Windows with a label that has no reversed twin (a fall played backwards is no fall) stay as they are.
    time_reverse: float = 0.5
    reverse_pairs: tuple[tuple[str, str], ...] = (("sit_down", "stand_up"),)
    reverse_self: tuple[str, ...] = ("walk", "run", "wave")
    # Stage 2: refit the head on the frozen extractor's embeddings of the whole training footage. It is
    # cheap (no decoding, no frame encoder), sees long windows, and its lag-difference features read
    # what came before and after a clip; end to end, the head does not learn sit_down vs stand_up.
    # Weight of an auxiliary loss: a linear probe on each frame code predicts which postures
    # (standing, seated, lying) are on screen, from the synth timeline. It teaches the frame encoder
    # what seated looks like, so that sitting down and standing up differ in the clip embedding.
    posture_aux: float = 0.0
    # Stage 1b: the posture branch (when ``extractor.postures``), a still-frame classifier of the
    # postures on screen, trained on the synth timeline's postures (``posture_frames``): steps of
    # 8 windows x 8 frames, each group under one random augmentation.
    # 5000: at 2000 the walking/running/arm-up channels were barely learnt (recall ~0.3 on
    # validation frames); standing/seated/lying were.
    posture_steps: int = 5000
    head_refit_steps: int = 3000
    # Stage 2 may also fit the head on mirrored footage (a second embedding pass). Off by default:
    # the shipped reference@2 was trained without (see ``bidirectional_config``). With a
    # bidirectional extractor, stage 2 always also sees every video backwards (``head_sequences``).
    head_flip: bool = False
    head_refit_windows: int = 16
    head_refit_clips: int = 32
    head_lags: tuple[int, ...] = (2, 4, 8, 12)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    train_footage: tuple[FootageSpec, ...] = TRAIN_FOOTAGE
    val_footage: tuple[FootageSpec, ...] = VAL_FOOTAGE
    # reference@3: reference@2's motion extractor plus a posture branch (see POSTURES).
    extractor: ExtractorConfig = field(default_factory=lambda: ExtractorConfig().with_postures(len(POSTURES)))


def bidirectional_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with an extractor trained forwards (stage 1) and read both ways from stage 2 on
    (see ``ReferenceExtractor``), and a head fitted on mirrored and time-reversed footage too.

    Measured against reference@2's extractor (same stage 1 weights, 72 min of validation footage,
    seeds 1101-1112, post-processing tuned on it): event F1@0.5 0.890 against 0.874 for a forward
    head refitted the same way; on the 48 min held-out sets of the model card 0.863 / 0.847 against
    0.862 / 0.839. It doubles the frame encoder's work.
    """
    return replace(cfg, extractor=cfg.extractor.forward_only().bidirectional_of(), head_flip=True)


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


def _render_one(root: str, index: int, spec: FootageSpec) -> list[str]:
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    torch.set_num_threads(1)
    date = _footage_date(index)
    report = synth_footage(
        open_store(root),
        date=date,
        cameras=1,
        minutes=spec.minutes,
        seed=spec.seed,
        width=spec.width,
        height=spec.height,
        fps=spec.fps,
        codec=spec.codec,
        noise=spec.noise,
        file_minutes=spec.minutes,
        progress=False,
    )
    return list(report.videos)


def _footage_date(index: int) -> dt.date:
    return dt.date(2000, 1, 1) + dt.timedelta(days=index)


def _rendered_keys(root: Path, index: int, spec: FootageSpec) -> list[str]:
    """Keys already rendered for ``spec`` at its date, or [] when missing or rendered from another spec."""
    folder = root / footage_prefix(_footage_date(index))
    sidecars = sorted(folder.glob(f"camera=*/*{SIDECAR_SUFFIX}"))
    if not sidecars:
        return []
    want = {"seed": spec.seed, "width": spec.width, "height": spec.height, "codec": spec.codec}
    keys = []
    for sidecar in sidecars:
        meta = json.loads(sidecar.read_text())
        same = all(meta.get(k) == v for k, v in want.items())
        same = same and abs(float(meta.get("fps", 0)) - spec.fps) < 1e-6
        same = same and abs(float(meta.get("noise", -1)) - spec.noise) < 1e-9
        video = sidecar.with_name(sidecar.name.removesuffix(SIDECAR_SUFFIX))
        if not (same and video.exists()):
            return []
        keys.append(str(video.relative_to(root)))
    return keys


def missing_footage(root: Path, specs: tuple[FootageSpec, ...], *, offset: int = 0) -> list[int]:
    """Indices of ``specs`` not yet rendered (or rendered from another spec) under ``root``."""
    return [i for i, s in enumerate(specs) if not _rendered_keys(root, offset + i, s)]


def render_footage(
    root: Path, specs: tuple[FootageSpec, ...], *, offset: int = 0, workers: int | None = None
) -> list[str]:
    """Footage for ``specs`` in the local store at ``root``; returns the video keys in spec order.

    Videos already rendered from the same spec are reused; the others are (re)rendered in parallel.
    """
    keys = {i: _rendered_keys(root, offset + i, s) for i, s in enumerate(specs)}
    todo = [i for i, k in keys.items() if not k]
    if todo:
        log.info("rendering %d of %d videos into %s", len(todo), len(specs), root)
        for i in todo:
            shutil.rmtree(root / footage_prefix(_footage_date(offset + i)), ignore_errors=True)
        workers = workers or min(len(todo), os.cpu_count() or 1)
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {i: pool.submit(_render_one, str(root), offset + i, specs[i]) for i in todo}
            keys.update({i: f.result() for i, f in futures.items()})
    return [k for i in range(len(specs)) for k in keys[i]]


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
        planned = plan_footage(
            date,
            cameras=1,
            minutes=float(sidecar["duration_s"]) / 60.0,
            seed=int(sidecar["seed"]),
            width=int(sidecar["width"]),
            height=int(sidecar["height"]),
            fps=float(sidecar["fps"]),
            codec=str(sidecar["codec"]),
            noise=float(sidecar["noise"]),
            file_minutes=float(sidecar["duration_s"]) / 60.0,
        )[int(sidecar.get("file_index", 0))]
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


def _augment(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
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
        frames = _augment(frames, rng) if augment else frames.float()
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


def train_model(videos: list[VideoArrays], labels: list[str], cfg: TrainConfig, *, progress: bool = True):
    """Train extractor + head end to end. Returns (extractor, head, history)."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ecfg = cfg.extractor.motion_only()  # stage 1 reads clips forwards; the weights serve both ways
    extractor = ReferenceExtractor(ecfg)
    head = ReferenceHead(HeadConfig(embed_dim=ecfg.embed_dim, num_classes=len(labels)))
    # Auxiliary posture probe on the frame codes (training only; not part of the saved model).
    aux = nn.Linear(ecfg.frame_dim, len(POSTURES)) if cfg.posture_aux > 0 else None
    params = list(extractor.parameters()) + list(head.parameters())
    params += list(aux.parameters()) if aux is not None else []
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    weights = np.array([v.grid.num_clips for v in videos], dtype=np.float64)
    weights /= weights.sum()
    pos_weight = _pos_weight([v.targets for v in videos])
    by_label: dict[str, list] = {}
    for v in videos:
        for ev in v.events:
            if ev["label"] in labels:
                by_label.setdefault(ev["label"], []).append((v, ev))
    reverse = reverse_map(labels, cfg) if cfg.time_reverse > 0 else None
    extractor.train()
    head.train()
    history = []
    bar = tqdm(range(cfg.steps), desc="train", unit="step", disable=not progress)
    t0 = time.perf_counter()
    for step in bar:
        cur, prev, counts, target, posture = _window_batch(
            videos, weights, cfg, rng, augment=True, by_label=by_label, reverse=reverse
        )
        codes = extractor.encode_frames(cur, prev)
        embs = [
            clip_embeddings(extractor, c, target.shape[1], ecfg.clip_len, ecfg.clip_hop)
            for c in torch.split(codes, counts)
        ]
        logits = head(torch.stack(embs))
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        known = posture[:, 0] >= 0
        if aux is not None and bool(known.any()):
            loss = loss + cfg.posture_aux * F.binary_cross_entropy_with_logits(
                aux(codes[known]), posture[known]
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        history.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(history[-20:]):.4f}")
            if not progress:
                log.info(
                    "step %d/%d loss %.4f (%.0f s)",
                    step,
                    cfg.steps,
                    np.mean(history[-20:]),
                    time.perf_counter() - t0,
                )
    extractor.eval()
    head.eval()
    return extractor, head, history


def _step(opt: torch.optim.Optimizer, sched, loss: torch.Tensor) -> None:
    """One optimiser and LR-schedule step on ``loss``."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


def train_postures(videos: list[VideoArrays], cfg: TrainConfig, *, progress: bool = True) -> PostureEncoder:
    """Stage 1b: the posture branch, a still-frame classifier of what a frame shows (``POSTURES``: a
    standing, seated or lying figure, a walking or running stride, a raised arm), fitted on the synth
    timeline's postures of ``videos``' grid frames.

    Raises ValueError when no video has postures (footage not made by ``actrec synth``)."""
    from tqdm import tqdm

    usable = [v for v in videos if v.postures is not None and len(v.frames)]
    if not usable:
        raise ValueError(
            "the posture branch needs training footage made by `actrec synth` (its postures are planned "
            "from the sidecar's synth arguments); train with --no-postures otherwise"
        )
    torch.manual_seed(cfg.seed + 2)
    rng = np.random.default_rng(cfg.seed + 2)
    posture = PostureEncoder(cfg.extractor)
    opt = torch.optim.AdamW(posture.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.posture_steps, pct_start=0.1
    )
    weights = np.array([len(v.frames) for v in usable], dtype=np.float64)
    weights /= weights.sum()
    posture.train()
    for step in tqdm(range(cfg.posture_steps), desc="postures", unit="step", disable=not progress):
        xs, ys = [], []
        for _ in range(8):
            v = usable[rng.choice(len(usable), p=weights)]
            idx = rng.integers(0, len(v.frames), 8)
            xs.append(_augment(torch.from_numpy(v.frames[idx]), rng))
            ys.append(torch.from_numpy(v.postures[idx]))
        loss = F.binary_cross_entropy_with_logits(posture(normalised_rgb(torch.cat(xs))), torch.cat(ys))
        _step(opt, sched, loss)
        if not progress and step % 500 == 0:
            log.info("posture step %d/%d loss %.4f", step, cfg.posture_steps, loss.item())
    return posture.eval()


def with_config(
    extractor: ReferenceExtractor, config: ExtractorConfig, posture: PostureEncoder | None = None
) -> ReferenceExtractor:
    """``extractor``'s motion weights read with ``config`` (e.g. both ways), with the posture branch
    ``posture`` or else ``extractor``'s own; the same module when nothing changes.

    Raises ValueError when the motion networks differ or ``config`` needs a posture branch that
    neither gives."""
    if extractor.cfg == config and posture is None:
        return extractor
    if extractor.cfg.motion_only() != config.motion_only():
        raise ValueError(f"extractor weights for {extractor.cfg} cannot be read as {config}")
    state = {k: t for k, t in extractor.state_dict().items() if not k.startswith("posture.")}
    if config.postures:
        source = posture if posture is not None else extractor.posture
        if source is None or (posture is None and extractor.cfg.postures != config.postures):
            raise ValueError(f"extractor {extractor.cfg} has no posture branch of {config.postures} postures")
        state.update({f"posture.{k}": t for k, t in source.state_dict().items()})
    out = ReferenceExtractor(config)
    out.load_state_dict(state)
    return out.eval()


def _pos_weight(targets: list[np.ndarray]) -> torch.Tensor:
    """BCE positive weights from per-clip targets: rare classes count up to 3x, so they are not
    drowned by background."""
    pos = np.concatenate(targets).mean(axis=0)
    return torch.tensor(np.clip(0.3 / np.maximum(pos, 1e-3), 1.0, 3.0), dtype=torch.float32)


def _embed_video(extractor, video: VideoArrays, device="cpu", mirror: bool = False) -> np.ndarray:
    """A pre-decoded video's clip embeddings ``[num_clips, D]`` (the inference features path);
    ``mirror``: of the video flipped left to right."""
    from actrec_batch.model.features import embed_range

    clips = range(video.grid.num_clips)
    span = video.grid.grid_span(clips)
    frames = video.frames[span.start : span.stop]
    if mirror:
        frames = np.ascontiguousarray(frames[:, :, ::-1])
    return embed_range(extractor, video.grid, clips, frames, device).embeddings


def video_embeddings(
    extractor, videos: list[VideoArrays], device="cpu", mirror: bool = False
) -> list[np.ndarray]:
    """Each pre-decoded video's clip embeddings ``[num_clips, D]`` (``mirror``: flipped left to right)."""
    return [_embed_video(extractor, v, device, mirror) for v in videos]


@dataclass
class HeadSequence:
    """One video as stage 2 sees it: embeddings, targets and per-label loss weights, per clip."""

    x: np.ndarray  # [N, D]
    y: np.ndarray  # [N, C]
    weight: np.ndarray  # [N, C] (1: learn this label here; 0: no loss)


def head_sequences(
    embeddings: list[np.ndarray],
    videos: list[VideoArrays],
    labels: list[str],
    cfg: TrainConfig,
) -> list[HeadSequence]:
    """Each video forwards and, when ``cfg.extractor`` is bidirectional, backwards: the halves of
    its embedding swapped (the motion halves, and the posture means of the clip's two halves),
    time reversed, labels swapped by ``reverse_map``, and no loss on labels that have no reversed
    twin."""
    perm, allowed = reverse_map(labels, cfg)
    half, p = cfg.extractor.clip_dim, cfg.extractor.postures
    m = 2 * half  # motion width, both directions
    out = []
    for emb, v in zip(embeddings, videos, strict=True):
        ones = np.ones_like(v.targets)
        out.append(HeadSequence(emb, v.targets, ones))
        if cfg.extractor.bidirectional:
            parts = [emb[:, half:m], emb[:, :half], emb[:, m + p :], emb[:, m : m + p]]
            back = np.concatenate(parts, axis=1)[::-1]
            out.append(
                HeadSequence(
                    np.ascontiguousarray(back),
                    np.ascontiguousarray(v.targets[::-1][:, perm]),
                    np.broadcast_to(allowed.astype(np.float32), v.targets.shape).copy(),
                )
            )
    return out


def refit_head(
    sequences: list[HeadSequence],
    labels: list[str],
    cfg: TrainConfig,
    *,
    progress=True,
    head: nn.Module | None = None,
) -> nn.Module:
    """Stage 2: train a fresh head (with lag-difference features) on frozen clip embeddings.

    ``head``: the freshly initialised head to train (``[B, N, D] -> [B, N, len(labels)]`` logits), by
    default a ReferenceHead of ``cfg.extractor.embed_dim`` and ``cfg.head_lags``. Raises ValueError
    when no sequence is longer than ``cfg.head_refit_clips``."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 1)
    if head is None:
        head = ReferenceHead(
            HeadConfig(embed_dim=cfg.extractor.embed_dim, num_classes=len(labels), lags=tuple(cfg.head_lags))
        )
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.head_refit_steps, pct_start=0.1
    )
    pos_weight = _pos_weight([q.y for q in sequences])
    n = cfg.head_refit_clips
    usable = [q for q in sequences if len(q.x) > n]
    if not usable:
        raise ValueError(f"no training video has more than {n} clips to refit the head on")
    weights = np.array([len(q.x) for q in usable], dtype=np.float64)
    weights /= weights.sum()
    head.train()
    for step in tqdm(range(cfg.head_refit_steps), desc="refit head", unit="step", disable=not progress):
        xs, ys, ws = [], [], []
        for _ in range(cfg.head_refit_windows):
            q = usable[rng.choice(len(usable), p=weights)]
            j0 = int(rng.integers(0, len(q.x) - n + 1))
            xs.append(torch.from_numpy(q.x[j0 : j0 + n]))
            ys.append(torch.from_numpy(q.y[j0 : j0 + n]))
            ws.append(torch.from_numpy(q.weight[j0 : j0 + n]))
        loss = F.binary_cross_entropy_with_logits(
            head(torch.stack(xs)), torch.stack(ys), weight=torch.stack(ws), pos_weight=pos_weight
        )
        _step(opt, sched, loss)
        if not progress and step % 500 == 0:
            log.info("head refit step %d/%d loss %.4f", step, cfg.head_refit_steps, loss.item())
    head.eval()
    return head


def config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["train_footage"] = [asdict(s) for s in cfg.train_footage]
    d["val_footage"] = [asdict(s) for s in cfg.val_footage]
    return d


def score_arrays(extractor, head, video: VideoArrays, device="cpu") -> np.ndarray:
    """Per-clip probabilities of a pre-decoded video (the same features path as inference)."""
    from actrec_batch.model.features import head_scores

    return head_scores(head, _embed_video(extractor, video, device), device)


# Post-processing candidates tuned on the validation footage (never on evaluation seeds).
_TUNE_GRID = {
    "smooth_s": (0.0, 0.5, 0.8),
    "on_threshold": (0.4, 0.5, 0.6, 0.7),
    "off_threshold": (0.25, 0.35, 0.45),
    "min_duration_s": (0.3, 0.6, 0.9),
    "merge_gap_s": (0.3, 0.6),
}


# Labels that may suppress each other (EventParams.exclusive), kept only when that raises F1 on the
# validation footage: a figure walking is not also running, though the head, multi-label, often
# fires both during a brisk walk.
_EXCLUSIVE_CANDIDATES = ([["walk", "run"]],)


def _validation_f1(scored: list[tuple[VideoArrays, np.ndarray]], truths: list, labels: list[str], params):
    """Event F1@0.5 (and the report) of ``params`` on pre-scored validation videos (anything with the
    ``key``, ``centers_s``, ``hop_s`` and ``duration_s`` of :class:`VideoArrays`)."""
    from actrec_batch.evaluation import PredEvent, evaluate
    from actrec_batch.events import scores_to_events

    preds = [
        PredEvent(v.key, ev.label, ev.start_s, ev.end_s, ev.confidence)
        for v, p in scored
        for ev in scores_to_events(v.centers_s, p, labels, params, hop_s=v.hop_s, duration_s=v.duration_s)
    ]
    report = evaluate(preds, truths, labels)
    return report.to_json()["f1"], report


def tune_postprocess(scored: list[tuple[VideoArrays, np.ndarray]], labels: list[str]):
    """Pick the EventParams with the best event F1@0.5 on the validation videos (see
    :func:`_validation_f1`; ``v.events`` are the sidecar's event dicts). Returns (params, report).

    First a grid over the shared parameters, then each class's on-threshold, one class at a time,
    then mutually exclusive labels (``_EXCLUSIVE_CANDIDATES``), keeping a change only when it raises
    overall F1.
    """
    import itertools

    from actrec_batch.evaluation import GTEvent
    from actrec_batch.events import EventParams

    truths = [GTEvent(v.key, e["label"], e["start_s"], e["end_s"]) for v, _ in scored for e in v.events]
    candidates = [
        dict(zip(_TUNE_GRID, values, strict=True)) for values in itertools.product(*_TUNE_GRID.values())
    ]
    best = None
    for kw in candidates:
        if kw["off_threshold"] <= kw["on_threshold"]:
            f1, report = _validation_f1(scored, truths, labels, EventParams(**kw))
            if best is None or f1 > best[0] + 1e-9:
                best = (f1, EventParams(**kw), report)
    for label in labels:
        for on in (0.3, 0.4, 0.5, 0.6, 0.7):
            base = best[1]
            per_class = {
                **base.per_class,
                label: {"on_threshold": on, "off_threshold": min(base.off_threshold, on)},
            }
            params = EventParams(**{**base.to_dict(), "per_class": per_class})
            f1, report = _validation_f1(scored, truths, labels, params)
            if f1 > best[0] + 1e-9:
                best = (f1, params, report)
    for groups in _EXCLUSIVE_CANDIDATES:
        if not all(x in labels for group in groups for x in group):
            continue
        for at in (0.2, 0.35, 0.5):
            params = replace(best[1], exclusive=groups, exclusive_tiou=at)
            f1, report = _validation_f1(scored, truths, labels, params)
            if f1 > best[0] + 1e-9:
                best = (f1, params, report)
    return best[1], best[2]


def run_training(
    out_dir: Path,
    work_dir: Path,
    cfg: TrainConfig,
    *,
    name: str = "reference",
    version: str = "1",
    progress: bool = True,
    extractor_from: str | None = None,
):
    """The whole `actrec train`: footage -> decode -> train -> refit the head -> tune on validation ->
    model bundle.

    Returns the saved ModelCard. Rendered footage in ``work_dir`` is reused when present. With
    ``extractor_from`` (a model reference), stage 1 is skipped: that bundle's extractor is kept
    (its identity too) and only a new head is fitted on its embeddings.
    """
    from actrec_batch.model import save_model
    from actrec_batch.synth import LABELS

    t0 = time.perf_counter()
    torch.set_num_threads(os.cpu_count() or 1)
    labels = list(LABELS)
    root = work_dir / "store"
    timings = {}
    timings["videos_rendered"] = len(missing_footage(root, cfg.train_footage)) + len(
        missing_footage(root, cfg.val_footage, offset=_VAL_OFFSET)
    )
    train_keys = render_footage(root, cfg.train_footage)
    val_keys = render_footage(root, cfg.val_footage, offset=_VAL_OFFSET)
    timings["render_s"] = round(time.perf_counter() - t0, 1)
    log.info(
        "footage ready: %d train, %d validation videos (%.0f s)",
        len(train_keys),
        len(val_keys),
        timings["render_s"],
    )
    train, val = load_videos(root, [train_keys, val_keys], cfg.extractor, labels)
    timings["decode_s"] = round(time.perf_counter() - t0 - timings["render_s"], 1)
    t1 = time.perf_counter()
    extractor_id, extractor_version, stage1 = "reference-extractor", version, {}
    if extractor_from:
        from actrec_batch.model import load_model

        base = load_model(extractor_from, device="cpu")
        base_cfg = ExtractorConfig.from_dict(base.card.extractor.config)
        if base_cfg.motion_only() != cfg.extractor.motion_only():
            raise ValueError(f"{extractor_from}: its extractor config differs from the training config")
        motion = base.extractor.eval()
        # its own posture branch when it has the same one, else a new one (stage 1b)
        keep_posture = (base_cfg.postures, base_cfg.posture_widths) == (
            cfg.extractor.postures,
            cfg.extractor.posture_widths,
        )
        # Same weights read another way give other features: a new extractor version, so the
        # feature cache (keyed by extractor id and version) never mixes the two.
        extractor_id = base.card.extractor.id
        extractor_version = base.card.extractor.version if base_cfg == cfg.extractor else version
        stage1 = {
            "extractor_from": base.card.model_id,
            "extractor_sha256": base.card.extractor.sha256,
            # where the base itself reused an extractor, the time of the run that trained it
            "extractor_train_s": base.card.training.get("extractor_train_s")
            or base.card.training.get("timings", {}).get("train_s"),
            "extractor_final_loss": base.card.training.get("extractor_final_loss")
            or base.card.training.get("final_loss"),
        }
        history = []
    else:
        motion, _, history = train_model(train, labels, cfg, progress=progress)
        keep_posture = False
    timings["train_s"] = round(time.perf_counter() - t1, 1)
    posture = None
    if cfg.extractor.postures and not keep_posture:
        t_posture = time.perf_counter()
        posture = train_postures(train, cfg, progress=progress)
        timings["posture_s"] = round(time.perf_counter() - t_posture, 1)
    extractor = with_config(motion, cfg.extractor, posture)
    t2 = time.perf_counter()
    embeddings = video_embeddings(extractor, train)
    sequences = head_sequences(embeddings, train, labels, cfg)
    if cfg.head_flip:
        sequences += head_sequences(video_embeddings(extractor, train, mirror=True), train, labels, cfg)
    timings["embed_s"] = round(time.perf_counter() - t2, 1)
    head = refit_head(sequences, labels, cfg, progress=progress)
    timings["head_refit_s"] = round(time.perf_counter() - t2, 1)
    scored = [(v, score_arrays(extractor, head, v)) for v in val]
    params, report = tune_postprocess(scored, labels)
    timings["total_s"] = round(time.perf_counter() - t0, 1)
    val_json = report.to_json()
    card = save_model(
        out_dir,
        name=name,
        version=version,
        labels=labels,
        extractor=extractor,
        head=head,
        extractor_id=extractor_id,
        extractor_version=extractor_version,
        postprocess={"events": params.to_dict()},
        training={
            "config": config_dict(cfg),
            "timings": timings,
            "final_loss": float(np.mean(history[-50:])) if history else None,
            **stage1,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        metrics={
            "validation": {
                k: val_json[k]
                for k in ("precision", "recall", "f1", "per_class", "at_tiou", "median_boundary_error_s")
            }
        },
    )
    log.info("saved %s to %s: validation F1@0.5 %.3f", card.model_id, out_dir, val_json["f1"])
    return card, report
