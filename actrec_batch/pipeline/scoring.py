"""Scores of a whole video and the events in them, shared by the assemble stage and training.

* :func:`join_segments` lays a video's segment features end to end (each clip exactly once).
* :func:`segments_scores` runs the head over them; :func:`video_events` the card's event steps.
* :func:`score_video` is the whole path for one video file in this process (decode, embed, head),
  segment by segment: the reference the tests hold the runners to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from actrec_batch.events import DetectedEvent, EventParams, scores_to_events

DEFAULT_SEGMENT_S = 300.0


@dataclass(frozen=True)
class VideoScores:
    """Per-clip scores of one whole video."""

    centers_s: np.ndarray
    scores: np.ndarray  # [N, C] probabilities
    hop_s: float
    frames_decoded: int
    segments: int


def score_video(
    model, source: Any, *, duration_s: float, segment_s: float = DEFAULT_SEGMENT_S, uri: str | None = None
) -> VideoScores:
    """Scores of one video, computed segment by segment (each segment decodes only what it needs)."""
    from actrec_batch.model.features import decode_grid_frames, embed_range
    from actrec_batch.model.sampling import build_grid
    from actrec_batch.pipeline.work import check_frames_cover
    from actrec_batch.video import DecodeStats, frame_index

    sampling = model.card.decode_sampling()
    index = frame_index(source, uri=uri)
    times = index.times_s
    check_frames_cover(times, duration_s, uri or str(source))
    grid = build_grid(
        times,
        sample_fps=sampling["sample_fps"],
        clip_len=sampling["clip_len"],
        clip_hop=sampling["clip_hop"],
        duration_s=duration_s,
    )
    stats = DecodeStats()
    parts = []
    starts = np.arange(0.0, max(duration_s, 1e-9), segment_s)
    for start in starts:
        clips = grid.clips_in(float(start), float(start + segment_s))
        if len(clips) == 0:
            continue
        frames = decode_grid_frames(
            source,
            grid,
            grid.grid_span(clips),
            width=sampling["frame_width"],
            height=sampling["frame_height"],
            frame_index=index,
            uri=uri,
            stats=stats,
        )
        feats = embed_range(
            model.extractor,
            grid,
            clips,
            frames,
            model.device,
            embed_dim=model.card.extractor.config["embed_dim"],
        )
        parts.append(feats)
    return segments_scores(
        model, parts, grid.hop_s, frames_decoded=stats.frames_decoded, segments=len(starts)
    )


def segments_scores(model, parts: list, hop_s: float, *, frames_decoded: int, segments: int) -> VideoScores:
    """The head over a whole video's segment features (empty segments allowed), in clip order."""
    from actrec_batch.model.features import head_scores

    parts = [p for p in parts if len(p.clips)]
    if not parts:
        return VideoScores(
            np.zeros(0), np.zeros((0, len(model.card.labels))), hop_s, frames_decoded, segments
        )
    centers, embeddings = join_segments(parts)
    return VideoScores(
        centers, head_scores(model.head, embeddings, model.device), hop_s, frames_decoded, segments
    )


def join_segments(parts: list) -> tuple[np.ndarray, np.ndarray]:
    """One video's clip centres and embeddings from its segments' features, which must own
    consecutive clip ranges (each clip exactly once). Raises ValueError on a gap or overlap."""
    for before, after in zip(parts, parts[1:], strict=False):
        if before.clips.stop != after.clips.start:
            raise ValueError(f"segments own clips {before.clips} then {after.clips}: not consecutive")
    return (np.concatenate([p.centers_s for p in parts]), np.concatenate([p.embeddings for p in parts]))


def video_events(
    model, scores: VideoScores, *, duration_s: float, seams_s: tuple[float, ...] = ()
) -> list[DetectedEvent]:
    """The card's event post-processing over the scores of a whole video, or of a chain of files
    laid end to end with cuts at ``seams_s`` (:mod:`actrec_batch.chains`)."""
    params = EventParams.from_dict(model.card.postprocess.get("events", {}))
    if scores.scores.shape[0] == 0:
        return []
    return scores_to_events(
        scores.centers_s,
        scores.scores,
        list(model.card.labels),
        params,
        hop_s=scores.hop_s,
        duration_s=duration_s,
        seams_s=seams_s,
    )
