"""The footage `actrec train-head` fits on (steps 1-2 of :mod:`.head`): the labelled videos of some
dates, with a backbone's clip embeddings of them read from (or added to) the feature cache."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.errors import ActrecError, ConfigError, StorageError
from actrec_batch.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

_COUNTERS = ("units_total", "units_skipped_checkpoint", "cache_hits", "units_computed", "frames_decoded")


@dataclass
class LabelledClips:
    """One labelled video as the head sees it: its clips (centres and the backbone's embeddings,
    from the feature cache) and its ground-truth events. Times are seconds from the first frame."""

    key: str  # store key, footage/date=D/camera=C/<file>
    date: dt.date
    duration_s: float
    events: list[dict]  # the sidecar's {"label", "start_s", "end_s"}
    centers_s: np.ndarray  # [N]
    hop_s: float
    embeddings: np.ndarray  # [N, D] float32


@dataclass
class LabelledFootage:
    """The labelled videos of some dates with their embeddings, and what filling the cache took."""

    videos: list[LabelledClips] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"key", "reason", "detail"}
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    ray_used: bool = False


def labelled_footage(
    settings: Settings,
    model_ref: str,
    dates: list[dt.date],
    *,
    store: ObjectStore | None = None,
    progress: bool = False,
) -> LabelledFootage:
    """The labelled videos of ``dates`` with the embeddings of ``model_ref``'s backbone (steps 1-2).

    Raises ConfigError for a date without labelled footage; ActrecError ``bad_ground_truth`` for a
    malformed sidecar.
    """
    from actrec_batch.pipeline.ray_backend import connect, disconnect

    store = store or open_store(settings.store)
    footage = LabelledFootage()
    labelled = {date: _labelled_keys(store, date) for date in dates}  # every date checked before any work
    kept_ray = False
    try:
        for n, (date, keys) in enumerate(labelled.items(), 1):
            _embed_date(settings, model_ref, store, date, keys, footage, progress)
            if footage.ray_used and not kept_ray and n < len(labelled):
                # A job starts and stops its own Ray (~10 s) unless one is up: once a date had to
                # compute, keep one for the dates left. A fully cached set never starts Ray.
                kept_ray = connect(settings)
    finally:
        disconnect(kept_ray)
    return footage


def _embed_date(
    settings: Settings,
    model_ref: str,
    store: ObjectStore,
    date: dt.date,
    keys: list[str],
    footage: LabelledFootage,
    progress: bool,
) -> None:
    """Add the labelled videos ``keys`` of ``date`` to ``footage``, with their embeddings."""
    from actrec_batch.evaluation import load_truth
    from actrec_batch.pipeline.job import InferenceJob, RunSpec, clip_hop_s
    from actrec_batch.pipeline.scoring import join_segments

    rows = _manifested(settings, store, date, keys)
    truth: dict[str, list[dict]] = {k: [] for k in keys}
    for g in load_truth(store, date, videos=keys):
        truth[g.video].append({"label": g.label, "start_s": g.start_s, "end_s": g.end_s})
    for key in sorted(set(keys) - {r["key"] for r in rows}):
        footage.skipped.append({"key": key, "reason": "not_manifested", "detail": "discovery quarantined it"})
    if not rows:
        return
    spec = RunSpec(date, model_ref=model_ref, video_keys=tuple(keys))
    job = InferenceJob(settings, spec, store=store, progress=progress)
    features = job.embed(head=False)
    for name in _COUNTERS:
        footage.counters[name] += int(getattr(job.result, name))
    footage.ray_used |= job.result.ray_used
    for video_id, failure in job.failed.items():
        footage.skipped.append(
            {"key": job.videos[video_id]["key"], "reason": failure.reason, "detail": failure.detail}
        )
    hop_s = clip_hop_s(job.model.card)
    for video_id, parts in sorted(features.items(), key=lambda kv: job.videos[kv[0]]["key"]):
        row = job.videos[video_id]
        parts = [p for p in parts if len(p.clips)]
        if not parts:
            footage.skipped.append(
                {"key": row["key"], "reason": "too_short", "detail": "shorter than one clip"}
            )
            continue
        centers, embeddings = join_segments(parts)
        footage.videos.append(
            LabelledClips(
                row["key"],
                date,
                float(row["duration_s"]),
                truth[row["key"]],
                centers,
                hop_s,
                np.ascontiguousarray(embeddings, dtype=np.float32),
            )
        )


def _labelled_keys(store: ObjectStore, date: dt.date) -> list[str]:
    from actrec_batch.evaluation import labelled_videos

    try:
        return labelled_videos(store, date)
    except ActrecError as exc:
        if exc.reason != "no_ground_truth":
            raise
        raise ConfigError(
            f"no labelled footage for {date}: no *{layout.SIDECAR_SUFFIX} sidecar under "
            f"{store.uri(layout.footage_prefix(date))}. Fix: write a sidecar beside each labelled video "
            f"(see the README, 'Train a head on your own labels'), or leave {date} out of --dates"
        ) from None


def _manifested(settings: Settings, store: ObjectStore, date: dt.date, keys: list[str]) -> list[dict]:
    """The manifest rows of ``keys``; discovery runs first when the manifest is missing or lacks one."""
    from actrec_batch.manifest import read_manifest
    from actrec_batch.pipeline.nightly import discover_stage

    def rows() -> list[dict] | None:
        try:
            return read_manifest(store, date).to_pylist()
        except StorageError as exc:
            if exc.reason != "not_found":
                raise
            return None

    manifest = rows()
    if manifest is None or not set(keys) <= {r["key"] for r in manifest}:
        log.info("train-head: discovering %s (its manifest is missing or lacks labelled videos)", date)
        discover_stage(settings, date, store=store)
        manifest = rows() or []
    wanted = set(keys)
    return [r for r in manifest if r["key"] in wanted]
