"""Local (single-process) inference over one date: manifest -> segments -> features -> scores -> events.

This is the stand-in for the Ray job of [3/8] and shares every step with it: a video is cut
into segments of at most ``segment_s`` seconds, each segment decodes only the grid frames its
clips need and yields clip embeddings, and the head and the event post-processing run over the
whole video's concatenated clips. Events therefore do not depend on where the cuts fall.

``actrec infer-local --date D`` writes ``events/date=D/events-<model>-<version>.parquet``
(replaced on rerun) and quarantines videos that fail to decode (stage ``infer``).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actrec_batch import tables
from actrec_batch.config import Settings
from actrec_batch.errors import ActrecError, QuarantineReason, QuarantineStage, VideoError
from actrec_batch.events import DetectedEvent, EventParams, event_id, scores_to_events
from actrec_batch.manifest import QuarantineRecord, read_manifest, write_quarantine
from actrec_batch.model import DEFAULT_MODEL
from actrec_batch.reconcile import reconcile
from actrec_batch.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

STAGE = QuarantineStage.INFER
DEFAULT_SEGMENT_S = 300.0

# The published file of this older path has no run_id (its last column in tables.EVENTS_FILE).
EVENTS_SCHEMA = tables.EVENTS_FILE.arrow_schema().remove(len(tables.EVENTS_FILE.columns) - 1)


def events_key(date: dt.date, model_id: str) -> str:
    name, _, version = model_id.partition("@")
    return f"events/date={date.isoformat()}/events-{name}-{version}.parquet"


@dataclass(frozen=True)
class VideoScores:
    """Per-clip scores of one whole video."""

    centers_s: np.ndarray
    scores: np.ndarray  # [N, C] probabilities
    hop_s: float
    frames_decoded: int
    segments: int


@dataclass
class InferResult:
    logical_date: dt.date
    model_id: str
    videos: int = 0
    videos_processed: int = 0
    events: int = 0
    segments: int = 0
    frames_decoded: int = 0
    wall_s: float = 0.0
    video_seconds: float = 0.0
    events_uri: str | None = None
    quarantine: list[QuarantineRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "logical_date": self.logical_date.isoformat(),
            "model": self.model_id,
            "videos_discovered": self.videos,
            "videos_processed": self.videos_processed,
            "videos_quarantined": len(self.quarantine),
            "quarantine": [{"uri": q.uri, "reason": q.reason, "detail": q.detail} for q in self.quarantine],
            "units_total": self.segments,
            "frames_decoded": self.frames_decoded,
            "events": self.events,
            "events_uri": self.events_uri,
            "video_seconds": round(self.video_seconds, 3),
            "wall_s": round(self.wall_s, 3),
            "video_s_per_wall_s": round(self.video_seconds / max(self.wall_s, 1e-9), 2),
        }


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


def _code_version() -> str:
    from actrec_batch import __version__

    return __version__


def _event_rows(model, row: dict[str, Any], events: list[DetectedEvent]) -> list[dict[str, Any]]:
    """Rows of events that lie within the video ``row`` (times from its start; its creation time as clock)."""
    created = row.get("creation_time")
    return [event_row(model, row, ev, start=created, end_row=row, end_start=created) for ev in events]


def event_row(
    model,
    row: dict[str, Any],
    ev: DetectedEvent,
    *,
    start: dt.datetime | None,
    end_row: dict[str, Any],
    end_start: dt.datetime | None,
    end_offset_s: float | None = None,
) -> dict[str, Any]:
    """One events row: ``ev`` starts in the video ``row`` (``ev.start_s`` and ``ev.end_s`` are seconds
    from its start) and ends in ``end_row`` at ``end_offset_s`` seconds (default ``ev.end_s``: the same
    video). ``start`` and ``end_start`` are the two videos' starts on the camera clock, or None."""
    end_offset_s = ev.end_s if end_offset_s is None else end_offset_s
    return {
        "event_id": event_id(row["video_id"], ev.label, ev.start_s, ev.end_s, model.card.model_id),
        "video_id": row["video_id"],
        "video_key": row["key"],
        "uri": row["uri"],
        "camera_id": row["camera_id"],
        "logical_date": row["logical_date"],
        "label": ev.label,
        "start_s": ev.start_s,
        "end_s": ev.end_s,
        "start_ts": start + dt.timedelta(seconds=ev.start_s) if start else None,
        "end_ts": end_start + dt.timedelta(seconds=end_offset_s) if end_start else None,
        "confidence": ev.confidence,
        "model_name": model.card.name,
        "model_version": model.card.version,
        "model_sha256": model.card.weights_sha256,
        "extractor_id": model.card.extractor_id,
        "content_id": row["content_id"],
        "code_version": _code_version(),
        "end_video_id": end_row["video_id"],
        "end_offset_s": end_offset_s,
    }


def infer_date(
    settings: Settings,
    date: dt.date,
    *,
    model_ref: str = DEFAULT_MODEL,
    segment_s: float = DEFAULT_SEGMENT_S,
    device: str | None = None,
    store: ObjectStore | None = None,
    progress: bool = False,
) -> InferResult:
    """Score every manifested video of ``date`` and write its events Parquet (replacing a previous run)."""
    from tqdm import tqdm

    from actrec_batch.model import load_model

    t0 = time.perf_counter()
    store = store or open_store(settings.store)
    manifest = read_manifest(store, date).to_pylist()
    model = load_model(model_ref, store_uri=settings.store, device=device)
    result = InferResult(logical_date=date, model_id=model.card.model_id, videos=len(manifest))
    rows: list[dict[str, Any]] = []
    for row in tqdm(manifest, desc=f"infer {date}", unit="video", disable=not progress):
        local = store.local_path(row["key"])
        try:
            if local is not None:
                scores = score_video(
                    model, local, duration_s=row["duration_s"], segment_s=segment_s, uri=row["uri"]
                )
            else:
                with store.open_read(row["key"]) as f:
                    scores = score_video(
                        model, f, duration_s=row["duration_s"], segment_s=segment_s, uri=row["uri"]
                    )
        except Exception as exc:  # noqa: BLE001 - one bad video is quarantined, never the end of the run
            reason = (
                exc.reason if isinstance(exc, (VideoError, ActrecError)) else QuarantineReason.INFER_ERROR
            )
            detail = (
                str(exc) if isinstance(exc, ActrecError) else f"{row['uri']}: {type(exc).__name__}: {exc}"
            )
            result.quarantine.append(QuarantineRecord.for_video(row, STAGE, reason, detail))
            continue
        events = video_events(model, scores, duration_s=row["duration_s"])
        rows.extend(_event_rows(model, row, events))
        result.videos_processed += 1
        result.segments += scores.segments
        result.frames_decoded += scores.frames_decoded
        result.video_seconds += row["duration_s"]
    table = pa.Table.from_pylist(
        sorted(rows, key=lambda r: (r["video_key"], r["start_s"], r["label"])), schema=EVENTS_SCHEMA
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    key = events_key(date, model.card.model_id)
    store.put_bytes(key, buf.getvalue())
    write_quarantine(store, date, STAGE, result.quarantine)
    result.events = table.num_rows
    result.events_uri = store.uri(key)
    result.wall_s = time.perf_counter() - t0
    reconcile(
        f"inference of {date}",
        result.videos,
        result.videos_processed,
        len(result.quarantine),
        discovered_as="manifested",
    )
    log.info(
        "infer %s: %d videos, %d events -> %s",
        date,
        result.videos_processed,
        result.events,
        result.events_uri,
    )
    return result
