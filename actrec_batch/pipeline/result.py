"""What one inference run did (:class:`JobResult`, the keys of ``infer.json`` it owns) and the
resource ledger of its ``metrics.json``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from actrec_batch.manifest import QuarantineRecord


@dataclass
class JobResult:
    """What one inference run did. ``to_json()`` has the summary keys it owns (docs/reference.md#inferjson)."""

    run_id: str
    logical_date: dt.date
    model_id: str
    videos: int = 0
    videos_processed: int = 0
    units_total: int = 0
    units_skipped_checkpoint: int = 0
    units_computed: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_corrupt: int = 0
    frames_decoded: int = 0
    retries: int = 0
    events: int = 0
    video_seconds: float = 0.0
    wall_s: float = 0.0
    ray_used: bool = False
    staging_uri: str | None = None
    metrics_uri: str | None = None
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    io: dict[str, Any] | None = None  # the driver process's store traffic (storage.io_counts)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "logical_date": self.logical_date.isoformat(),
            "model": self.model_id,
            "videos_manifested": self.videos,
            "videos_processed": self.videos_processed,
            "videos_quarantined": len(self.quarantine),
            "quarantine": [{"uri": q.uri, "reason": q.reason, "detail": q.detail} for q in self.quarantine],
            "units_total": self.units_total,
            "units_skipped_checkpoint": self.units_skipped_checkpoint,
            "units_computed": self.units_computed,
            "frames_decoded": self.frames_decoded,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "cache_corrupt": self.cache_corrupt,
            "retries": self.retries,
            "events": self.events,
            "video_seconds": round(self.video_seconds, 3),
            "wall_s": round(self.wall_s, 3),
            "video_s_per_wall_s": round(self.video_seconds / max(self.wall_s, 1e-9), 2),
            "ray_used": self.ray_used,
            "staging_uri": self.staging_uri,
            "metrics_uri": self.metrics_uri,
        }


def resource_ledger(
    units: list[dict[str, Any]], index: list[dict[str, Any]], ray_info: dict[str, Any]
) -> dict[str, Any]:
    """CPU- and GPU-seconds by resource: what was reserved, what was busy, and the idle remainder.

    Decode and index tasks hold ``decode_cpus`` for their wall time. Actors hold ``actor_cpus`` and
    ``actor_gpus`` for their whole life, busy or not, so their idle time is paid for too.
    """
    plan = ray_info.get("plan", {})
    decode_cpus = float(plan.get("decode_cpus", 1.0))
    task_wall = sum(u.get("decode_s", 0.0) for u in units) + sum(i.get("wall_s", 0.0) for i in index)
    task_cpu = sum(u.get("decode_cpu_s", 0.0) for u in units) + sum(i.get("cpu_s", 0.0) for i in index)
    actor_life = actor_busy = actor_cpu = 0.0
    for a in ray_info.get("actors", []):
        if "started" in a:
            actor_life += max(0.0, a["now"] - a["started"])
            actor_busy += a["busy_s"]
            actor_cpu += a["cpu_s"]
    a_cpus = float(plan.get("actor_cpus", 0.0))
    a_gpus = float(plan.get("actor_gpus", 0.0))
    return {
        "cpu": {
            "reserved_s": round(task_wall * decode_cpus + actor_life * a_cpus, 3),
            "busy_s": round(task_cpu + actor_cpu, 3),
            "decode_task_s": round(task_wall * decode_cpus, 3),
            "actor_reserved_s": round(actor_life * a_cpus, 3),
            "actor_busy_cpu_s": round(actor_cpu, 3),
        },
        "gpu": {
            "reserved_s": round(actor_life * a_gpus, 3),
            "busy_s": round(actor_busy * a_gpus, 3),
            "idle_s": round(max(0.0, actor_life - actor_busy) * a_gpus, 3),
        },
        "actor_seconds": round(actor_life, 3),
        "actor_busy_s": round(actor_busy, 3),
    }
