"""Clip embeddings of a video range: decode the grid frames it needs, encode them, pool clips.

One code path (:func:`embed_units`) serves training, local inference and the Ray job's Embedder, so
the features a head is trained on are exactly the features it is served. The reference extractor is
run here as frame codes then clip pooling; a ``video``-arch backbone
(:class:`~actrec_batch.model.video.VideoBackbone`) embeds whole clips itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

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


class UnitFrames(NamedTuple):
    """The grid frames ``grid.grid_span(clips)`` of one range of clips, ``[L, H, W, 3]`` uint8 RGB.
    ``first_is_context``: ``frames[0]`` precedes the first clip (the reference model's motion code
    reads it; a video backbone skips it)."""

    frames: np.ndarray
    first_is_context: bool
    num_clips: int


def embed_units(
    extractor, units: Sequence[UnitFrames], *, clip_len: int, clip_hop: int, embed_dim: int, device
) -> list[np.ndarray]:
    """``[num_clips, embed_dim]`` float32 clip embeddings of each unit.

    Each unit goes through the network on its own, ``FRAME_BATCH`` frames at a time from its first
    frame, so its embeddings are the same bytes whatever other units share the call: floating-point
    kernels give a row slightly different results in batches of other sizes, and the scheduler's
    batches change with the cluster (a resumed run, a lost node). Units are minutes of footage
    (``segment_s``), so the batches stay full."""
    if hasattr(extractor, "embed_units"):  # a video backbone: whole clips in, embeddings out
        return extractor.embed_units(units)
    out = []
    with torch.inference_mode():
        for unit in units:
            if unit.num_clips == 0:
                out.append(np.zeros((0, embed_dim), np.float32))
                continue
            # a private, writable copy (the frames may be shared memory)
            cur, prev = frame_pairs(torch.from_numpy(np.array(unit.frames)), unit.first_is_context)
            codes = encode_pairs(extractor, cur, prev, device)
            emb = clip_embeddings(extractor, codes, unit.num_clips, clip_len, clip_hop)
            out.append(emb.float().cpu().numpy())
    return out


def embed_range(
    extractor, grid: ClipGrid, clips: range, frames: np.ndarray, device, *, embed_dim: int | None = None
) -> SegmentFeatures:
    """Embeddings of ``clips`` from ``frames`` = the grid frames ``grid.grid_span(clips)``.

    ``embed_dim`` (the card's) sizes the result when ``clips`` is empty; it defaults to the extractor's.
    Raises ValueError if ``frames`` does not hold exactly that span.
    """
    span = grid.grid_span(clips)
    embed_dim = embed_dim or extractor_embed_dim(extractor)
    if len(clips) == 0:
        return SegmentFeatures(clips, np.zeros(0), np.zeros((0, embed_dim), np.float32))
    if frames.shape[0] != len(span):
        raise ValueError(f"clips {clips} need {len(span)} grid frames ({span}), got {frames.shape[0]}")
    unit = UnitFrames(frames, span.start < clips.start * grid.clip_hop, len(clips))
    (emb,) = embed_units(
        extractor, [unit], clip_len=grid.clip_len, clip_hop=grid.clip_hop, embed_dim=embed_dim, device=device
    )
    return SegmentFeatures(clips, grid.clip_centers(clips), emb)


def extractor_embed_dim(extractor) -> int:
    cfg = getattr(extractor, "cfg", None) or getattr(extractor, "sampling", None)
    return int(getattr(cfg, "embed_dim", 0)) or 1


def head_scores(head, embeddings: np.ndarray, device) -> np.ndarray:
    """Per-clip class probabilities ``[N, C]`` from a whole video's ``[N, D]`` embeddings.

    On the CPU the head runs on one torch thread: its sums then have one order, so the scores (and
    the events' times and confidences) are the same bits whatever thread count the process has (the
    local runner's, a Ray driver's); with more threads they differ in the last bits. The head is
    small next to the extractor, so one thread costs little."""
    if embeddings.shape[0] == 0:
        return np.zeros((0, 0), np.float32)
    with torch.inference_mode(), _one_cpu_thread(device):
        logits = head(torch.as_tensor(embeddings, device=device)[None])[0]
        return torch.sigmoid(logits).float().cpu().numpy()


@contextlib.contextmanager
def _one_cpu_thread(device) -> Iterator[None]:
    before = torch.get_num_threads()
    switch = torch.device(device or "cpu").type == "cpu" and before != 1
    if switch:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if switch:
            torch.set_num_threads(before)
