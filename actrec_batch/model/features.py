"""Clip embeddings of a video range: decode the grid frames it needs, encode them, pool clips.

One code path serves training, local inference and (later) the Ray job, so the features a
head is trained on are exactly the features it is served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from actrec_batch.model.sampling import ClipGrid, decode_grid_frames  # noqa: F401 - re-exported

FRAME_BATCH = 256  # frames per encoder call: bounds activation memory on CPU and GPU


@dataclass(frozen=True)
class SegmentFeatures:
    """Clip embeddings of one video range. ``clips`` indexes the video's global clip grid."""

    clips: range
    centers_s: np.ndarray  # [N] clip centre times, seconds from the first frame
    embeddings: np.ndarray  # [N, D] float32

    def __post_init__(self) -> None:
        n = len(self.clips)
        if self.centers_s.shape != (n,) or self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            raise ValueError(
                f"segment features for clips {self.clips} have shapes "
                f"{self.centers_s.shape} and {self.embeddings.shape}"
            )


def frame_pairs(
    frames: np.ndarray | torch.Tensor, first_is_context: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames to encode, their predecessors): ``frames[1:]`` after ``frames[:-1]``, or, when
    ``first_is_context`` is False because ``frames[0]`` is grid frame 0, every frame, the first
    being its own predecessor (no motion)."""
    x = torch.as_tensor(frames)
    if not first_is_context:
        x = torch.cat([x[:1], x])
    return x[1:], x[:-1]


def encode_pairs(extractor, cur: torch.Tensor, prev: torch.Tensor, device) -> torch.Tensor:
    """Frame codes of ``cur`` given ``prev``, FRAME_BATCH frames per encoder call."""
    out = [
        extractor.encode_frames(
            cur[lo : lo + FRAME_BATCH].to(device, non_blocking=True),
            prev[lo : lo + FRAME_BATCH].to(device, non_blocking=True),
        )
        for lo in range(0, cur.shape[0], FRAME_BATCH)
    ]
    return torch.cat(out) if out else torch.zeros(0, device=device)


def frame_codes(extractor, frames: np.ndarray | torch.Tensor, first_is_context: bool, device) -> torch.Tensor:
    """Codes of grid frames ``frames[1:]`` given their predecessors (or of all frames, the
    first standing still, when ``first_is_context`` is False because it is grid frame 0)."""
    return encode_pairs(extractor, *frame_pairs(frames, first_is_context), device)


def clip_embeddings(
    extractor, codes: torch.Tensor, num_clips: int, clip_len: int, clip_hop: int
) -> torch.Tensor:
    """Pool ``[L, d]`` consecutive frame codes into ``[num_clips, D]`` clip embeddings."""
    if num_clips == 0:
        return codes.new_zeros((0, 1))
    windows = codes.unfold(0, clip_len, clip_hop)[:num_clips]  # [N, d, T]
    return extractor.encode_clips(windows.transpose(1, 2).contiguous())


def embed_range(extractor, grid: ClipGrid, clips: range, frames: np.ndarray, device) -> SegmentFeatures:
    """Embeddings of ``clips`` from ``frames`` = the grid frames ``grid.grid_span(clips)``.

    Raises ValueError if ``frames`` does not hold exactly that span.
    """
    span = grid.grid_span(clips)
    if len(clips) == 0:
        return SegmentFeatures(clips, np.zeros(0), np.zeros((0, extractor_embed_dim(extractor)), np.float32))
    if frames.shape[0] != len(span):
        raise ValueError(f"clips {clips} need {len(span)} grid frames ({span}), got {frames.shape[0]}")
    first_is_context = span.start < clips.start * grid.clip_hop
    with torch.inference_mode():
        codes = frame_codes(extractor, frames, first_is_context, device)
        emb = clip_embeddings(extractor, codes, len(clips), grid.clip_len, grid.clip_hop)
    return SegmentFeatures(clips, grid.clip_centers(clips), emb.float().cpu().numpy())


def extractor_embed_dim(extractor) -> int:
    cfg = getattr(extractor, "cfg", None)
    return int(getattr(cfg, "embed_dim", 0)) or 1


def head_scores(head, embeddings: np.ndarray, device) -> np.ndarray:
    """Per-clip class probabilities ``[N, C]`` from a whole video's ``[N, D]`` embeddings."""
    if embeddings.shape[0] == 0:
        return np.zeros((0, 0), np.float32)
    with torch.inference_mode():
        logits = head(torch.as_tensor(embeddings, device=device)[None])[0]
        return torch.sigmoid(logits).float().cpu().numpy()
