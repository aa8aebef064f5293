"""The training loops of `actrec train`: stage 1 (extractor + head end to end on augmented windows),
stage 1b (the posture branch on still frames), and stage 2 (a fresh head refitted on the frozen
extractor's clip embeddings, also what `actrec train-head` fits)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from actrec_batch.model.features import clip_embeddings
from actrec_batch.model.reference import (
    HeadConfig,
    PostureEncoder,
    ReferenceExtractor,
    ReferenceHead,
    normalised_rgb,
)
from actrec_batch.synth.timeline import POSTURES
from actrec_batch.training.config import TrainConfig
from actrec_batch.training.data import VideoArrays, _window_batch, augment_frames, reverse_map

log = logging.getLogger(__name__)


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
            xs.append(augment_frames(torch.from_numpy(v.frames[idx]), rng))
            ys.append(torch.from_numpy(v.postures[idx]))
        loss = F.binary_cross_entropy_with_logits(posture(normalised_rgb(torch.cat(xs))), torch.cat(ys))
        _step(opt, sched, loss)
        if not progress and step % 500 == 0:
            log.info("posture step %d/%d loss %.4f", step, cfg.posture_steps, loss.item())
    return posture.eval()


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


def score_arrays(extractor, head, video: VideoArrays, device="cpu") -> np.ndarray:
    """Per-clip probabilities of a pre-decoded video (the same features path as inference)."""
    from actrec_batch.model.features import head_scores

    return head_scores(head, _embed_video(extractor, video, device), device)
