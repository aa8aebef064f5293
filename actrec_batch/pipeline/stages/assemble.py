"""Assemble: per chain of a camera's abutting files (:mod:`actrec_batch.chains`; a file with an
unknown start is a chain of one), the head over the chain's clips laid end to end, then the event
steps once over the whole chain, so an action across a cut between segments or files is one event.
A video whose segments cannot be joined is quarantined and leaves its chain.

:func:`event_row` is one row of the events table (:data:`~actrec_batch.pipeline.outputs.EVENTS_SCHEMA`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from actrec_batch.errors import QuarantineReason, QuarantineStage
from actrec_batch.events import DetectedEvent, event_id
from actrec_batch.manifest import QuarantineRecord
from actrec_batch.pipeline.stages import Stage
from actrec_batch.pipeline.state import JobState
from actrec_batch.pipeline.work import Failure, UnitSpec

STAGE = QuarantineStage.INFER


def clip_hop_s(card) -> float:
    """Seconds between the centres of consecutive clips of ``card``'s sampling."""
    config = card.extractor.config
    return config["clip_hop"] / config["sample_fps"]


def _code_version() -> str:
    from actrec_batch import __version__

    return __version__


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


class AssembleStage(Stage):
    """``process()`` returns the run's event rows, sorted, and counts processed and quarantined
    videos into the state's result."""

    def __init__(self, state: JobState) -> None:
        self.state = state

    def process(self) -> list[dict[str, Any]]:
        from actrec_batch.chains import chain_videos, parse_file_time_pattern, video_clocks

        state = self.state
        clips: dict[str, tuple[Any, Any]] = {}
        for video_id, units in state.units.items():
            if video_id in state.failed:
                continue
            try:
                clips[video_id] = self._video_clips(units, video_id)
            except Exception as exc:  # noqa: BLE001 - one video's bad features never end the run
                self._fail([video_id], "assembling its segments", exc)
        pattern = parse_file_time_pattern(state.settings.file_time_pattern)
        clocks = video_clocks([state.videos[v] for v in clips], pattern)
        rows: list[dict[str, Any]] = []
        for chain in chain_videos(clocks, state.settings.chain_tolerance_s):
            try:
                rows.extend(self._chain_rows(chain, clips))
            except Exception as exc:  # noqa: BLE001
                self._fail([v.video_id for v in chain.videos], "scoring its chain of files", exc)
        self._count_videos()
        for r in rows:
            r["run_id"] = state.spec.run_id
        return sorted(rows, key=lambda r: (r["video_key"], r["start_s"], r["label"]))

    def _count_videos(self) -> None:
        state = self.state
        for video_id in state.units:
            row = state.videos[video_id]
            if video_id in state.failed:
                f = state.failed[video_id]
                state.result.quarantine.append(QuarantineRecord.for_video(row, STAGE, f.reason, f.detail))
                continue
            state.result.videos_processed += 1
            state.result.video_seconds += float(row["duration_s"])

    def _fail(self, video_ids: list[str], what: str, exc: Exception) -> None:
        for video_id in video_ids:
            detail = f"{self.state.videos[video_id]['uri']}: {what} failed: {type(exc).__name__}: {exc}"
            self.state.fail_video(video_id, Failure(QuarantineReason.INFER_ERROR, detail))

    def _video_clips(self, units: list[UnitSpec], video_id: str) -> tuple[Any, Any]:
        """The video's clip centres ``[N]`` (seconds from its start) and embeddings ``[N, D]``."""
        from actrec_batch.pipeline.scoring import join_segments

        parts = [p for p in (self.state.features[(video_id, u.index)] for u in units) if len(p.clips)]
        if not parts:
            return np.zeros(0), None
        return join_segments(parts)

    def _chain_rows(self, chain, clips: dict[str, tuple[Any, Any]]) -> list[dict[str, Any]]:
        """The events rows of one chain: each event starts in the file holding its start and ends in
        the file holding its end (``end_video_id``, ``end_offset_s``); start_ts and end_ts come from
        those files' clocks."""
        from actrec_batch.chains import bridge_seams
        from actrec_batch.model.features import head_scores
        from actrec_batch.pipeline.scoring import VideoScores, video_events

        model, videos = self.state.model, self.state.videos
        hop_s = clip_hop_s(model.card)
        members = [(v, off, *clips[v.video_id]) for v, off in zip(chain.videos, chain.offsets_s, strict=True)]
        present = [(off + centers, emb) for _, off, centers, emb in members if emb is not None]
        if not present:
            return []
        times, embeddings, real = bridge_seams(present, hop_s)
        probs = head_scores(model.head, embeddings, model.device)
        scores = VideoScores(times[real], probs[real], hop_s, frames_decoded=0, segments=len(present))
        events = video_events(model, scores, duration_s=chain.duration_s, seams_s=chain.seams_s)
        rows = []
        for ev in events:
            first, last = chain.locate(ev.start_s, ev.end_s)
            start_clock, end_clock = chain.videos[first], chain.videos[last]
            off, end_off = chain.offsets_s[first], chain.offsets_s[last]
            local = DetectedEvent(ev.label, max(0.0, ev.start_s - off), ev.end_s - off, ev.confidence)
            rows.append(
                event_row(
                    model,
                    videos[start_clock.video_id],
                    local,
                    start=start_clock.start,
                    end_row=videos[end_clock.video_id],
                    end_start=end_clock.start,
                    end_offset_s=min(ev.end_s - end_off, end_clock.duration_s),
                )
            )
        return rows
