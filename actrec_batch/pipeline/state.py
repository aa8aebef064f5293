"""The shared state of one inference job, which every stage and both runners read and update.

:class:`JobState` holds the planned units, the features found or computed so far, the failed
videos with their reasons, the per-unit and per-video metrics, and the run's counters
(:class:`~actrec_batch.pipeline.result.JobResult`). A computed unit reaches it through
:meth:`JobState.unit_done`, which writes the feature cache, then the unit's checkpoint marker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from actrec_batch.config import Settings
from actrec_batch.errors import QuarantineReason
from actrec_batch.model.features import SegmentFeatures
from actrec_batch.pipeline.cache import Checkpoints, FeatureCache
from actrec_batch.pipeline.result import JobResult
from actrec_batch.pipeline.spec import RunSpec
from actrec_batch.pipeline.work import DecodedUnit, EmbeddedUnit, Failure, UnitSpec, VideoIndex
from actrec_batch.storage import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class JobState:
    """One job's model, store handles, plan and results (see the module docstring)."""

    settings: Settings
    spec: RunSpec
    store: ObjectStore
    model: Any
    cache: FeatureCache
    checkpoints: Checkpoints
    result: JobResult
    progress: bool = False
    units: dict[str, list[UnitSpec]] = field(default_factory=dict)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    features: dict[tuple[str, int], SegmentFeatures] = field(default_factory=dict)
    failed: dict[str, Failure] = field(default_factory=dict)
    unit_metrics: list[dict[str, Any]] = field(default_factory=list)
    index_metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clip_hop(self) -> int:
        """Grid frames between consecutive clips (a batch's size in frames is clips x this)."""
        return int(self.model.card.extractor.config["clip_hop"])

    def fail_video(self, video_id: str, failure: Failure) -> None:
        """Mark a video failed (its first failure is the one kept and quarantined)."""
        if video_id not in self.failed:
            uri = self.videos[video_id]["uri"]
            log.warning("quarantined %s [%s]: %s", uri, failure.reason, failure.detail)
            self.failed[video_id] = failure

    def commit_marker(self, spec: UnitSpec, record: dict[str, Any]) -> None:
        self.checkpoints.commit(
            self.checkpoints.key(spec.video_id, spec.content_id, spec.segment),
            {
                "run_id": self.spec.run_id,
                "cache_key": self.cache.key(spec.content_id, spec.segment),
                **record,
            },
        )

    def index_done(self, video_id: str, index: VideoIndex) -> None:
        """Record what indexing a video cost."""
        self.index_metrics.append(
            {
                "video_id": video_id,
                "wall_s": index.wall_s,
                "cpu_s": index.cpu_s,
                "attempt": index.attempt,
                "node_id": index.node_id,
                "frame_index": index.frames.source,
                "packets_rejected": index.frames.packets_rejected,
            }
        )
        self.result.retries += index.attempt

    def embedded(self, unit: DecodedUnit, out: EmbeddedUnit | None) -> None:
        """A decoded unit back from the embed stage: its features, or None when they are missing."""
        spec = unit.spec
        if out is None:
            detail = f"{spec.uri}: segment {spec.segment} came back without features"
            self.fail_video(spec.video_id, Failure(QuarantineReason.INFER_ERROR, detail))
            return
        feats = SegmentFeatures(out.clips, out.centers_s, out.embeddings)
        self.unit_done(spec, feats, unit_metrics(unit, out))

    def unit_done(self, spec: UnitSpec, feats: SegmentFeatures, metrics: dict[str, Any]) -> None:
        """Cache, then commit: a marker never points at features that were not written whole."""
        if spec.video_id in self.failed:
            return
        self.cache.put(self.cache.key(spec.content_id, spec.segment), feats)
        self.commit_marker(spec, {"source": "computed", **metrics})
        self.features[(spec.video_id, spec.index)] = feats
        self.unit_metrics.append({"video_id": spec.video_id, "segment": spec.segment, **metrics})
        self.result.units_computed += 1
        self.result.frames_decoded += int(metrics.get("frames_decoded", 0))
        self.result.retries += int(metrics.get("decode_attempt", 0)) + int(metrics.get("infer_attempt", 0))


def unit_metrics(unit: DecodedUnit, e: EmbeddedUnit) -> dict[str, Any]:
    """The ``metrics.json`` record of one computed unit (``units[]``)."""
    return {
        "frames_decoded": unit.frames_decoded,
        "decode_s": round(unit.decode_s, 4),
        "decode_cpu_s": round(unit.cpu_s, 4),
        "decode_attempt": unit.attempt,
        "decode_node": unit.node_id,
        "infer_s": round(e.infer_s, 4),
        "infer_attempt": e.attempt,
        "infer_node": e.node_id,
        "clips": len(e.clips),
        "decode_fallback": unit.decode_fallback,
        "packets_rejected": unit.packets_rejected,
        "frame_health": unit.frame_health,
    }
