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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from actrec_batch.model.features import clip_embeddings, decode_grid_frames
from actrec_batch.model.reference import ExtractorConfig, HeadConfig, ReferenceExtractor, ReferenceHead
from actrec_batch.model.sampling import ClipGrid, build_grid, clip_targets

log = logging.getLogger(__name__)

TRAIN_SEED_RANGE = range(1000, 2000)


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


# Varied on purpose: resolution, aspect, frame rate, codec and noise differ between videos.
TRAIN_FOOTAGE: tuple[FootageSpec, ...] = (
    FootageSpec(1001, 7.5, 320, 240, 15, "h264", 0.02),
    FootageSpec(1002, 7.5, 426, 240, 12, "h264", 0.03),
    FootageSpec(1003, 7.5, 640, 360, 25, "h264", 0.01),
    FootageSpec(1004, 7.5, 320, 240, 10, "mpeg4", 0.04),
    FootageSpec(1005, 7.5, 480, 360, 20, "vp9", 0.02),
    FootageSpec(1006, 7.5, 320, 240, 30, "h264", 0.02),
    FootageSpec(1007, 7.5, 256, 192, 15, "h264", 0.05),
    FootageSpec(1008, 7.5, 400, 300, 15, "mpeg4", 0.02),
)
VAL_FOOTAGE: tuple[FootageSpec, ...] = (
    FootageSpec(1101, 5.0, 320, 240, 15, "h264", 0.02),
    FootageSpec(1102, 5.0, 426, 240, 20, "h264", 0.03),
)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 2400
    batch_windows: int = 8
    window_clips: int = 16
    event_centred: float = 0.5  # share of windows centred on a labelled event, classes drawn uniformly
    lr: float = 3e-3
    weight_decay: float = 1e-4
    train_footage: tuple[FootageSpec, ...] = TRAIN_FOOTAGE
    val_footage: tuple[FootageSpec, ...] = VAL_FOOTAGE
    extractor: ExtractorConfig = field(default_factory=ExtractorConfig)


@dataclass
class VideoArrays:
    """One decoded training video: its grid, grid frames and per-clip targets."""

    key: str
    grid: ClipGrid
    frames: np.ndarray  # [K, H, W, 3] uint8
    targets: np.ndarray  # [num_clips, C]
    events: list[dict]
    duration_s: float


def _render_one(root: str, index: int, spec: FootageSpec) -> list[str]:
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    torch.set_num_threads(1)
    date = dt.date(2000, 1, 1) + dt.timedelta(days=index)
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


def render_footage(
    root: Path, specs: tuple[FootageSpec, ...], *, offset: int = 0, workers: int | None = None
) -> list[str]:
    """Render ``specs`` into the local store at ``root`` in parallel; returns the video keys."""
    workers = workers or min(len(specs), os.cpu_count() or 1)
    with cf.ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_render_one, str(root), offset + i, s) for i, s in enumerate(specs)]
        return [k for f in futures for k in f.result()]


def load_video(root: Path, key: str, cfg: ExtractorConfig, labels: list[str]) -> VideoArrays:
    """Decode one labelled video onto the sampling grid."""
    from actrec_batch.video import frame_timestamps

    path = root / key
    sidecar = json.loads((root / f"{key}.labels.json").read_text())
    times = frame_timestamps(path)
    grid = build_grid(
        times,
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
        frame_times=times,
        uri=key,
    )
    return VideoArrays(
        key,
        grid,
        frames,
        clip_targets(grid, sidecar["events"], labels),
        sidecar["events"],
        float(sidecar["duration_s"]),
    )


def _augment(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Same random photometric + geometric transform on every frame of a window. uint8 -> float [0, 255]."""
    x = frames.permute(0, 3, 1, 2).float()  # [L, 3, H, W]
    _, _, h, w = x.shape
    if rng.random() < 0.5:
        x = x.flip(3)
    scale = rng.uniform(0.75, 1.0)
    aspect = np.exp(rng.uniform(-0.2, 0.2))
    ch, cw = min(h, int(h * scale / np.sqrt(aspect))), min(w, int(w * scale * np.sqrt(aspect)))
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    x = F.interpolate(x[:, :, y0 : y0 + ch, x0 : x0 + cw], size=(h, w), mode="bilinear", align_corners=False)
    gain = torch.tensor(rng.uniform(0.92, 1.08, size=3), dtype=torch.float32).view(1, 3, 1, 1)
    contrast = rng.uniform(0.7, 1.3)
    mean = x.mean()
    x = (x - mean) * contrast + mean * rng.uniform(0.7, 1.3)
    x = x * gain + torch.randn_like(x) * rng.uniform(0.0, 8.0)
    return x.clamp_(0, 255).permute(0, 2, 3, 1)


def _window_batch(
    videos: list[VideoArrays],
    weights: np.ndarray,
    cfg: TrainConfig,
    rng: np.random.Generator,
    augment: bool,
    by_label: dict | None = None,
):
    """Sample windows of consecutive clips: (current frames, previous frames, per-window code counts, targets)."""
    ecfg = cfg.extractor
    curs, prevs, counts, targets = [], [], [], []
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
        if span.start < j0 * ecfg.clip_hop:
            cur, prev = frames[1:], frames[:-1]
        else:  # grid frame 0: its own predecessor
            cur, prev = frames, torch.cat([frames[:1], frames[:-1]])
        curs.append(cur)
        prevs.append(prev)
        counts.append(cur.shape[0])
        targets.append(torch.from_numpy(v.targets[j0 : j0 + n]))
    return torch.cat(curs), torch.cat(prevs), counts, torch.stack(targets)


def train_model(videos: list[VideoArrays], labels: list[str], cfg: TrainConfig, *, progress: bool = True):
    """Train extractor + head end to end. Returns (extractor, head, history)."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    extractor = ReferenceExtractor(cfg.extractor)
    head = ReferenceHead(HeadConfig(embed_dim=cfg.extractor.embed_dim, num_classes=len(labels)))
    params = list(extractor.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    weights = np.array([v.grid.num_clips for v in videos], dtype=np.float64)
    weights /= weights.sum()
    pos = np.concatenate([v.targets for v in videos]).mean(axis=0)
    pos_weight = torch.tensor(np.clip(0.3 / np.maximum(pos, 1e-3), 1.0, 3.0), dtype=torch.float32)
    by_label: dict[str, list] = {}
    for v in videos:
        for ev in v.events:
            if ev["label"] in labels:
                by_label.setdefault(ev["label"], []).append((v, ev))
    extractor.train()
    head.train()
    history = []
    bar = tqdm(range(cfg.steps), desc="train", unit="step", disable=not progress)
    t0 = time.perf_counter()
    for step in bar:
        cur, prev, counts, target = _window_batch(videos, weights, cfg, rng, augment=True, by_label=by_label)
        codes = extractor.encode_frames(cur, prev)
        embs = [
            clip_embeddings(extractor, c, target.shape[1], cfg.extractor.clip_len, cfg.extractor.clip_hop)
            for c in torch.split(codes, counts)
        ]
        logits = head(torch.stack(embs))
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
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


def config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["train_footage"] = [asdict(s) for s in cfg.train_footage]
    d["val_footage"] = [asdict(s) for s in cfg.val_footage]
    return d


def score_arrays(extractor, head, video: VideoArrays, device="cpu") -> np.ndarray:
    """Per-clip probabilities of a pre-decoded video (the same features path as inference)."""
    from actrec_batch.model.features import embed_range, head_scores

    clips = range(video.grid.num_clips)
    span = video.grid.grid_span(clips)
    feats = embed_range(extractor, video.grid, clips, video.frames[span.start : span.stop], device)
    return head_scores(head, feats.embeddings, device)


# Post-processing candidates tuned on the validation footage (never on evaluation seeds).
_TUNE_GRID = {
    "smooth_s": (0.0, 0.5, 0.8),
    "on_threshold": (0.4, 0.5, 0.6, 0.7),
    "off_threshold": (0.25, 0.35, 0.45),
    "min_duration_s": (0.3, 0.6, 0.9),
    "merge_gap_s": (0.3, 0.6),
}


def _validation_f1(scored: list[tuple[VideoArrays, np.ndarray]], truths: list, labels: list[str], params):
    """Event F1@0.5 (and the report) of ``params`` on pre-scored validation videos."""
    from actrec_batch.evaluation import PredEvent, evaluate
    from actrec_batch.events import scores_to_events

    preds = [
        PredEvent(v.key, ev.label, ev.start_s, ev.end_s, ev.confidence)
        for v, p in scored
        for ev in scores_to_events(
            v.grid.clip_centers(), p, labels, params, hop_s=v.grid.hop_s, duration_s=v.duration_s
        )
    ]
    report = evaluate(preds, truths, labels)
    return report.to_json()["f1"], report


def tune_postprocess(scored: list[tuple[VideoArrays, np.ndarray]], labels: list[str]):
    """Pick the EventParams with the best event F1@0.5 on the validation videos. Returns (params, report).

    First a grid over the shared parameters, then each class's on-threshold, one class at a time,
    keeping a change only when it raises overall F1.
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
    return best[1], best[2]


def run_training(
    out_dir: Path,
    work_dir: Path,
    cfg: TrainConfig,
    *,
    name: str = "reference",
    version: str = "1",
    progress: bool = True,
):
    """The whole `actrec train`: footage -> decode -> train -> tune on validation -> model bundle.

    Returns the saved ModelCard. Rendered footage in ``work_dir`` is reused when present.
    """
    from actrec_batch.model import save_model
    from actrec_batch.synth import LABELS

    t0 = time.perf_counter()
    torch.set_num_threads(os.cpu_count() or 1)
    labels = list(LABELS)
    root = work_dir / "store"
    timings = {}
    train_keys = _rendered(root, cfg.train_footage, 0) or render_footage(root, cfg.train_footage)
    val_keys = _rendered(root, cfg.val_footage, 100) or render_footage(root, cfg.val_footage, offset=100)
    timings["render_s"] = round(time.perf_counter() - t0, 1)
    log.info(
        "footage ready: %d train, %d validation videos (%.0f s)",
        len(train_keys),
        len(val_keys),
        timings["render_s"],
    )
    train = [load_video(root, k, cfg.extractor, labels) for k in train_keys]
    val = [load_video(root, k, cfg.extractor, labels) for k in val_keys]
    timings["decode_s"] = round(time.perf_counter() - t0 - timings["render_s"], 1)
    t1 = time.perf_counter()
    extractor, head, history = train_model(train, labels, cfg, progress=progress)
    timings["train_s"] = round(time.perf_counter() - t1, 1)
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
        extractor_id="reference-extractor",
        extractor_version=version,
        postprocess={"events": params.to_dict()},
        training={
            "config": config_dict(cfg),
            "timings": timings,
            "final_loss": float(np.mean(history[-50:])),
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


def _rendered(root: Path, specs: tuple[FootageSpec, ...], offset: int) -> list[str]:
    """Keys of already-rendered footage for ``specs`` (all or nothing)."""
    keys = []
    for i, _ in enumerate(specs):
        date = dt.date(2000, 1, 1) + dt.timedelta(days=offset + i)
        found = sorted(
            p
            for p in (root / f"footage/date={date.isoformat()}").glob("camera=*/*")
            if not p.name.endswith(".labels.json")
        )
        if not found:
            return []
        keys.extend(str(p.relative_to(root)) for p in found)
    return keys
