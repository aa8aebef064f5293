"""The inference job of one logical date: manifest -> work units -> features -> events.

Lifecycle (:meth:`InferenceJob.run`):

1. **plan**: read the manifest, cut every video into units of at most ``segment_s`` seconds.
2. **resume**: a unit with a checkpoint marker for this (date, model, segmenting) is skipped
   (``units_skipped_checkpoint``); otherwise a feature-cache entry for its content, segment,
   extractor and sampling is reused (``cache_hits``). Damaged entries are recomputed.
3. **compute** (only if a unit is left, so a rescore over cached features never starts Ray):
   CPU tasks index and decode units, the actor pool embeds them in cross-unit batches; each
   finished unit is written to the cache and then committed (marker). At most
   ``max_inflight_units`` units are in memory at once; a 2-hour video never is, whole.
4. **assemble**: per video, the head runs over the concatenated segments and the event
   post-processing runs over the whole video, so an action across a cut is one event.
5. **write**: the run's events to its staging area, its ``metrics.json`` (per unit, per
   resource) and ``summary.json``; quarantine records (stage ``infer``).

:meth:`InferenceJob.embed` runs steps 1 to 3 alone: ``actrec train-head`` fills the feature cache
with it, exactly as a run would, and reads the embeddings back.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sys
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.errors import ActrecError, QuarantineReason, QuarantineStage, StorageError
from actrec_batch.manifest import QuarantineRecord, read_manifest, write_quarantine
from actrec_batch.model.features import SegmentFeatures
from actrec_batch.pipeline.cache import Checkpoints, FeatureCache, segment_name
from actrec_batch.pipeline.work import DecodedUnit, Failure, UnitSpec, VideoIndex
from actrec_batch.reconcile import reconcile
from actrec_batch.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

STAGE = QuarantineStage.INFER
PROGRESS_EVERY_S = 10.0
ACTOR_RESUBMITS = 3  # driver-side resubmissions of a batch after Ray's own actor-call retries
_WAIT_S = 0.5


def new_run_id(date: dt.date) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{date.isoformat()}-{stamp}-{uuid.uuid4().hex[:6]}"


def clip_hop_s(card) -> float:
    """Seconds between the centres of consecutive clips of ``card``'s sampling."""
    config = card.extractor.config
    return config["clip_hop"] / config["sample_fps"]


def plan_units(video: dict[str, Any], segment_s: float) -> list[UnitSpec]:
    """The units of one manifest row: ``[k * segment_s, (k + 1) * segment_s)`` until its duration."""
    duration = float(video["duration_s"])
    count = max(1, math.ceil(duration / segment_s - 1e-9))
    return [
        UnitSpec(
            video_id=video["video_id"],
            key=video["key"],
            uri=video["uri"],
            content_id=video["content_id"],
            duration_s=duration,
            index=k,
            start_s=k * segment_s,
            end_s=duration if k == count - 1 else (k + 1) * segment_s,
            segment=segment_name(segment_s, k),
        )
        for k in range(count)
    ]


@dataclass
class JobResult:
    """What one inference run did. ``to_json()`` has the CONTRACTS.md summary keys it owns."""

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


class _Progress:
    """A log line every PROGRESS_EVERY_S seconds (and a tqdm bar on a terminal)."""

    def __init__(self, date: dt.date, total: int, seconds_total: float, enabled: bool) -> None:
        from tqdm import tqdm

        self.date, self.total, self.seconds_total = date, total, seconds_total
        self.done, self.seconds = 0, 0.0
        self.t0 = self.last = time.perf_counter()
        self.bar = tqdm(
            total=total, desc=f"infer {date}", unit="unit", disable=not (enabled and sys.stderr.isatty())
        )

    def advance(self, units: int, seconds: float) -> None:
        self.done += units
        self.seconds += seconds
        self.bar.update(units)
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S or self.done == self.total:
            self.last = now
            rate = self.seconds / max(now - self.t0, 1e-9)
            left = (self.seconds_total - self.seconds) / rate if rate > 0 else float("inf")
            eta = f"{left:.0f} s" if math.isfinite(left) else "?"
            log.info(
                "infer %s: %d/%d units, %.1f video-s per wall-s, ETA %s",
                self.date,
                self.done,
                self.total,
                rate,
                eta,
            )

    def close(self) -> None:
        self.bar.close()


class InferenceJob:
    """One date's inference with one model. Build it, then call :meth:`run` once."""

    def __init__(
        self,
        settings: Settings,
        date: dt.date,
        *,
        model_ref: str,
        store: ObjectStore | None = None,
        run_id: str | None = None,
        progress: bool = False,
        force: bool = False,
        cameras: tuple[str, ...] = (),
        video_keys: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.cameras = tuple(cameras)
        self.video_keys = frozenset(video_keys)  # only these videos (store keys) when given
        self.date = date
        self.model_ref = model_ref
        self.store = store or open_store(settings.store)
        self.run_id = run_id or new_run_id(date)
        self.progress = progress
        self.force = force
        self.units: dict[str, list[UnitSpec]] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        self.features: dict[tuple[str, int], SegmentFeatures] = {}
        self.failed: dict[str, Failure] = {}
        self.unit_metrics: list[dict[str, Any]] = []
        self.index_metrics: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------------------- lifecycle

    def run(self) -> JobResult:
        t0 = time.perf_counter()
        self.embed()
        rows = self._assemble()
        self._write(rows)
        self.result.wall_s = time.perf_counter() - t0
        self._write_reports()
        r = self.result
        reconcile(
            f"inference of {self.date}",
            r.videos,
            r.videos_processed,
            len(r.quarantine),
            discovered_as="manifested",
        )
        log.info(
            "infer %s (%s): %d videos, %d units (%d from checkpoints, %d cache hits, %d computed), %d events, "
            "%.1f s",
            self.date,
            r.model_id,
            r.videos_processed,
            r.units_total,
            r.units_skipped_checkpoint,
            r.cache_hits,
            r.units_computed,
            r.events,
            r.wall_s,
        )
        return r

    def embed(self, *, head: bool = True) -> dict[str, list[SegmentFeatures]]:
        """Steps 1 to 3 only (plan, resume, compute): every unit's features, in the cache and in
        ``self.features``. Decodes only the units that neither a checkpoint nor the cache holds.
        ``head=False``: the model may be a backbone bundle without a head (``actrec train-head``).

        Returns the segment features, in clip order, of each video (by ``video_id``) that did not
        fail; ``self.failed`` has the others with their reasons, ``self.result`` the counters.
        """
        from actrec_batch.model import load_extractor, load_model
        from actrec_batch.pipeline.ray_backend import check_driver_address

        check_driver_address(self.settings)
        load = load_model if head else load_extractor
        self.model = load(self.model_ref, store_uri=self.settings.store, device="cpu")
        card = self.model.card
        self.cache = FeatureCache.for_model(self.store, card)
        self.checkpoints = Checkpoints.for_run(self.store, self.date, card, self.settings.segment_s)
        self.result = JobResult(self.run_id, self.date, card.model_id)
        self._plan()
        todo = self._resume()
        if todo:
            self._compute(todo)
        return {
            video_id: [self.features[(video_id, u.index)] for u in units]
            for video_id, units in self.units.items()
            if video_id not in self.failed
        }

    def _plan(self) -> None:
        try:
            manifest = read_manifest(self.store, self.date).to_pylist()
        except StorageError as exc:
            if exc.reason != "not_found":
                raise
            raise ActrecError(
                f"no manifest for {self.date} in {self.store.uri(layout.manifest_key(self.date))}: "
                f"run `actrec discover --date {self.date}` first (or `actrec infer --discover`)",
                reason="no_manifest",
            ) from None
        if self.cameras:
            manifest = [r for r in manifest if r["camera_id"] in self.cameras]
        if self.video_keys:
            manifest = [r for r in manifest if r["key"] in self.video_keys]
        for row in manifest:
            self.videos[row["video_id"]] = row
            self.units[row["video_id"]] = plan_units(row, self.settings.segment_s)
        self.result.videos = len(manifest)
        self.result.units_total = sum(len(u) for u in self.units.values())

    def _resume(self) -> list[UnitSpec]:
        """Load what checkpoints and the cache already hold; return the units left to compute."""
        if self.force:  # only this run's videos: a --camera run leaves the other cameras' markers
            self.checkpoints.clear(list(self.units))
        committed = set() if self.force else self.checkpoints.committed()
        specs = [u for units in self.units.values() for u in units]

        def lookup(spec: UnitSpec) -> tuple[UnitSpec, bool, SegmentFeatures | None]:
            if self.force:  # recompute: neither markers nor the cache are read
                return spec, False, None
            marker = self.checkpoints.key(spec.video_id, spec.content_id, spec.segment) in committed
            return spec, marker, self.cache.get(self.cache.key(spec.content_id, spec.segment))

        todo = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            for spec, marker, feats in pool.map(lookup, specs):
                if feats is None:
                    todo.append(spec)
                    continue
                self.features[(spec.video_id, spec.index)] = feats
                if marker:
                    self.result.units_skipped_checkpoint += 1
                else:
                    self.result.cache_hits += 1
                    self._commit_marker(spec, {"source": "cache"})
        self.result.cache_misses = len(todo)
        self.result.cache_corrupt = self.cache.corrupt
        return todo

    def _commit_marker(self, spec: UnitSpec, record: dict[str, Any]) -> None:
        self.checkpoints.commit(
            self.checkpoints.key(spec.video_id, spec.content_id, spec.segment),
            {"run_id": self.run_id, "cache_key": self.cache.key(spec.content_id, spec.segment), **record},
        )

    # ------------------------------------------------------------------------------------- compute

    def _compute(self, todo: list[UnitSpec]) -> None:
        from actrec_batch.pipeline.ray_backend import RayBackend

        backend = RayBackend(
            self.settings,
            self.model_ref,
            self.store.root_uri,
            self.model.card.decode_sampling(),
            self.run_id,
        )
        self.result.ray_used = True
        try:
            res = backend.start()
            self.result.resources["plan"] = res.to_json()
            scheduler = _Scheduler(self, backend, todo, res)
            scheduler.run()
            self.result.resources["peak_units_inflight"] = scheduler.peak_units_inflight
            self.result.resources["actors"] = backend.actor_usage()
            self.result.resources["nodes"] = backend.nodes()
        finally:
            backend.stop()

    def fail_video(self, video_id: str, failure: Failure) -> None:
        if video_id not in self.failed:
            uri = self.videos[video_id]["uri"]
            log.warning("quarantined %s [%s]: %s", uri, failure.reason, failure.detail)
            self.failed[video_id] = failure

    def unit_done(self, spec: UnitSpec, feats: SegmentFeatures, metrics: dict[str, Any]) -> None:
        """Cache, then commit: a marker never points at features that were not written whole."""
        if spec.video_id in self.failed:
            return
        self.cache.put(self.cache.key(spec.content_id, spec.segment), feats)
        self._commit_marker(spec, {"source": "computed", **metrics})
        self.features[(spec.video_id, spec.index)] = feats
        self.unit_metrics.append({"video_id": spec.video_id, "segment": spec.segment, **metrics})
        self.result.units_computed += 1
        self.result.frames_decoded += int(metrics.get("frames_decoded", 0))
        self.result.retries += int(metrics.get("decode_attempt", 0)) + int(metrics.get("infer_attempt", 0))

    # ------------------------------------------------------------------------------------ assemble

    def _assemble(self) -> list[dict[str, Any]]:
        """Per chain of a camera's abutting files (:mod:`actrec_batch.chains`; a file with an unknown
        start is a chain of one): the head over the chain's clips laid end to end, then the event
        steps once over the whole chain, so an action across a cut between segments or files is one
        event. A video whose segments cannot be joined is quarantined and leaves the chain."""
        from actrec_batch.chains import chain_videos, parse_file_time_pattern, video_clocks

        clips: dict[str, tuple[Any, Any]] = {}
        for video_id, units in self.units.items():
            if video_id in self.failed:
                continue
            try:
                clips[video_id] = self._video_clips(units, video_id)
            except Exception as exc:  # noqa: BLE001 - one video's bad features never end the run
                self._fail_assembly([video_id], "assembling its segments", exc)
        pattern = parse_file_time_pattern(self.settings.file_time_pattern)
        clocks = video_clocks([self.videos[v] for v in clips], pattern)
        rows: list[dict[str, Any]] = []
        for chain in chain_videos(clocks, self.settings.chain_tolerance_s):
            try:
                rows.extend(self._chain_rows(chain, clips))
            except Exception as exc:  # noqa: BLE001
                self._fail_assembly([v.video_id for v in chain.videos], "scoring its chain of files", exc)
        for video_id in self.units:
            row = self.videos[video_id]
            if video_id in self.failed:
                f = self.failed[video_id]
                self.result.quarantine.append(QuarantineRecord.for_video(row, STAGE, f.reason, f.detail))
                continue
            self.result.videos_processed += 1
            self.result.video_seconds += float(row["duration_s"])
        for r in rows:
            r["run_id"] = self.run_id
        return sorted(rows, key=lambda r: (r["video_key"], r["start_s"], r["label"]))

    def _fail_assembly(self, video_ids: list[str], what: str, exc: Exception) -> None:
        for video_id in video_ids:
            detail = f"{self.videos[video_id]['uri']}: {what} failed: {type(exc).__name__}: {exc}"
            self.fail_video(video_id, Failure(QuarantineReason.INFER_ERROR, detail))

    def _video_clips(self, units: list[UnitSpec], video_id: str) -> tuple[Any, Any]:
        """The video's clip centres ``[N]`` (seconds from its start) and embeddings ``[N, D]``."""
        import numpy as np

        from actrec_batch.inference import join_segments

        parts = [p for p in (self.features[(video_id, u.index)] for u in units) if len(p.clips)]
        if not parts:
            return np.zeros(0), None
        return join_segments(parts)

    def _chain_rows(self, chain, clips: dict[str, tuple[Any, Any]]) -> list[dict[str, Any]]:
        """The events rows of one chain: each event starts in the file holding its start and ends in
        the file holding its end (``end_video_id``, ``end_offset_s``); start_ts and end_ts come from
        those files' clocks."""
        from actrec_batch.chains import bridge_seams
        from actrec_batch.events import DetectedEvent
        from actrec_batch.inference import VideoScores, event_row, video_events
        from actrec_batch.model.features import head_scores

        hop_s = clip_hop_s(self.model.card)
        members = [(v, off, *clips[v.video_id]) for v, off in zip(chain.videos, chain.offsets_s, strict=True)]
        present = [(off + centers, emb) for _, off, centers, emb in members if emb is not None]
        if not present:
            return []
        times, embeddings, real = bridge_seams(present, hop_s)
        probs = head_scores(self.model.head, embeddings, self.model.device)
        scores = VideoScores(times[real], probs[real], hop_s, frames_decoded=0, segments=len(present))
        events = video_events(self.model, scores, duration_s=chain.duration_s, seams_s=chain.seams_s)
        rows = []
        for ev in events:
            first, last = chain.locate(ev.start_s, ev.end_s)
            start_clock, end_clock = chain.videos[first], chain.videos[last]
            off, end_off = chain.offsets_s[first], chain.offsets_s[last]
            local = DetectedEvent(ev.label, max(0.0, ev.start_s - off), ev.end_s - off, ev.confidence)
            rows.append(
                event_row(
                    self.model,
                    self.videos[start_clock.video_id],
                    local,
                    start=start_clock.start,
                    end_row=self.videos[end_clock.video_id],
                    end_start=end_clock.start,
                    end_offset_s=min(ev.end_s - end_off, end_clock.duration_s),
                )
            )
        return rows

    # --------------------------------------------------------------------------------------- write

    def _write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        from actrec_batch.pipeline.outputs import STAGED_EVENTS_SCHEMA
        from actrec_batch.runs import RunFolder

        table = pa.Table.from_pylist(rows, schema=STAGED_EVENTS_SCHEMA)
        staging_uri = RunFolder(self.store, self.date, self.run_id).write_staged_events(table)
        records = list(self.result.quarantine)
        if self.cameras:  # a run over some cameras keeps the other cameras' records
            records += [
                QuarantineRecord(**r)
                for r in _existing_quarantine(self.store, self.date)
                if layout.camera_of(r["key"], self.date) not in self.cameras
            ]
        write_quarantine(self.store, self.date, STAGE, records)
        self.result.events = table.num_rows
        self.result.staging_uri = staging_uri

    def _write_reports(self) -> None:
        from actrec_batch.runs import InferRecord, MetricsDocument, RunFolder

        folder = RunFolder(self.store, self.date, self.run_id)
        metrics = MetricsDocument(
            run_id=self.run_id,
            logical_date=self.date.isoformat(),
            model=self.result.model_id,
            segment_s=self.settings.segment_s,
            units=self.unit_metrics,
            index=self.index_metrics,
            resources=resource_ledger(self.unit_metrics, self.index_metrics, self.result.resources),
            ray=self.result.resources,
        )
        self.result.metrics_uri = folder.write(metrics)
        card = self.model.card
        infer = InferRecord(  # the later stages (validation, publishing) read the model's identity from here
            **self.result.to_json(),
            model_name=card.name,
            model_version=card.version,
            model_labels=list(card.labels),
            model_sha256=card.weights_sha256,
            extractor_id=card.extractor_id,
            # how files were chained into camera chains (the quality stage scores on the same chains)
            chaining={
                "file_time_pattern": self.settings.file_time_pattern,
                "tolerance_s": self.settings.chain_tolerance_s,
            },
        )
        folder.write(infer)


def _existing_quarantine(store: ObjectStore, date: dt.date) -> list[dict[str, Any]]:
    from actrec_batch.manifest import read_quarantine

    try:
        return read_quarantine(store, date, STAGE).to_pylist()
    except StorageError as exc:
        if exc.reason == "not_found":
            return []
        raise


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


class _Scheduler:
    """The driver loop: keeps decode slots full, batches decoded units onto actors, enforces the
    in-flight cap and per-unit timeouts, and hands finished units back to the job."""

    def __init__(self, job: InferenceJob, backend, todo: list[UnitSpec], res) -> None:
        self.job, self.backend, self.res = job, backend, res
        self.timeout = job.settings.unit_timeout_s
        self.by_video: dict[str, deque[UnitSpec]] = {}
        for spec in todo:
            self.by_video.setdefault(spec.video_id, deque()).append(spec)
        self.to_index: deque[str] = deque(self.by_video)
        self.index_refs: dict[str, Any] = {}  # video_id -> ObjectRef of its VideoIndex, once ready
        self.ready: deque[str] = deque()  # indexed videos with units left to decode
        self.pending: dict[Any, tuple] = {}  # ref -> (kind, payload, deadline)
        self.decoded: list[tuple[DecodedUnit, Any]] = []  # waiting for an actor
        self.retry: list[tuple[float, int, list]] = []  # (not before, attempts, batch) after an actor outage
        self.units_inflight = 0
        self.peak_units_inflight = 0
        self.cpu_inflight = 0
        seconds = sum(s.end_s - s.start_s for s in todo)
        self.progress = _Progress(job.date, len(todo), seconds, job.progress)

    def run(self) -> None:
        import ray

        try:
            while self.by_video or self.pending or self.decoded or self.retry:
                self._fill()
                self._flush()
                if not self.pending:
                    if self.retry:  # only batches waiting out an actor's outage
                        time.sleep(max(0.0, min(t for t, _, _ in self.retry) - time.monotonic()))
                        continue
                    if self.by_video or self.decoded:  # nothing running, yet work is left: a bookkeeping bug
                        raise ActrecError(
                            f"inference of {self.job.date}: the scheduler stalled with "
                            f"{sum(map(len, self.by_video.values()))} units queued",
                            reason="internal",
                        )
                    break
                done, _ = ray.wait(list(self.pending), num_returns=1, timeout=_WAIT_S)
                for ref in done:
                    self._handle(ref)
                self._expire()
        finally:
            self.progress.close()

    # ------------------------------------------------------------------------- submitting work

    def _fill(self) -> None:
        res = self.res
        while self.cpu_inflight < res.decode_slots:
            spec = self._next_ready_unit() if self.units_inflight < res.max_inflight_units else None
            if spec is not None:
                ref, frames_ref = self.backend.decode(spec, self.index_refs[spec.video_id])
                if spec.video_id not in self.by_video:  # its last unit: the submitted tasks pin the index
                    self.index_refs.pop(spec.video_id, None)
                self.pending[ref] = ("decode", (spec, frames_ref), time.monotonic() + self.timeout)
                self.cpu_inflight += 1
                self.units_inflight += 1
                self.peak_units_inflight = max(self.peak_units_inflight, self.units_inflight)
                continue
            if self.to_index and len(self.ready) < res.decode_slots:
                video_id = self.to_index.popleft()
                ref = self.backend.index(self.job.videos[video_id])
                self.pending[ref] = ("index", video_id, time.monotonic() + self.timeout)
                self.cpu_inflight += 1
                continue
            break

    def _next_ready_unit(self) -> UnitSpec | None:
        while self.ready:
            video_id = self.ready[0]
            queue = self.by_video.get(video_id)
            if video_id in self.job.failed or not queue:
                self.ready.popleft()
                self._drop_video(video_id)
                continue
            spec = queue.popleft()
            if not queue:
                self.ready.popleft()
                del self.by_video[video_id]
            return spec
        return None

    def _drop_video(self, video_id: str) -> None:
        left = self.by_video.pop(video_id, None)
        if left:
            self.progress.advance(len(left), 0.0)

    def _flush(self) -> None:
        """Send decoded units to an actor once a batch is full, or when nothing else is coming.
        Batches back from an unavailable actor go first, once their backoff is over."""
        now = time.monotonic()
        for item in sorted(self.retry, key=lambda r: r[0]):
            actor = self.backend.free_actor()
            if item[0] > now or actor is None:
                break
            self.retry.remove(item)
            _, attempts, batch = item
            ref, gen = self.backend.embed(actor, [u for u, _ in batch], [f for _, f in batch])
            self.pending[ref] = ("embed", (actor, gen, batch, attempts), None)
        if not self.decoded:
            return
        frames = sum(len(u.clips) * self.job.model.card.extractor.config["clip_hop"] for u, _ in self.decoded)
        decoding = any(kind == "decode" for kind, _, _ in self.pending.values())
        if frames < self.res.batch_frames and decoding and self.units_inflight < self.res.max_inflight_units:
            return
        actor = self.backend.free_actor()
        if actor is None:
            return
        batch, self.decoded = self.decoded, []
        ref, gen = self.backend.embed(actor, [u for u, _ in batch], [f for _, f in batch])
        self.pending[ref] = ("embed", (actor, gen, batch, 0), None)

    # ------------------------------------------------------------------------- handling results

    def _handle(self, ref) -> None:
        import ray

        kind, payload, _ = self.pending.pop(ref)
        if kind == "index":
            self.cpu_inflight -= 1
            video_id = payload
            try:
                out = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the worker died past its retries
                out = _ray_failure(exc, self.job.videos[video_id]["uri"])
            if isinstance(out, Failure):
                self.job.fail_video(video_id, out)
                self._drop_video(video_id)
                return
            assert isinstance(out, VideoIndex)
            self.job.index_metrics.append(
                {
                    "video_id": video_id,
                    "wall_s": out.wall_s,
                    "cpu_s": out.cpu_s,
                    "attempt": out.attempt,
                    "node_id": out.node_id,
                    "frame_index": out.frames.source,
                    "packets_rejected": out.frames.packets_rejected,
                }
            )
            self.job.result.retries += out.attempt
            self.index_refs[video_id] = ref
            self.ready.append(video_id)
        elif kind == "decode":
            self.cpu_inflight -= 1
            spec, frames_ref = payload
            try:
                out = ray.get(ref)
            except Exception as exc:  # noqa: BLE001
                out = _ray_failure(exc, spec.uri)
            if isinstance(out, Failure):
                self.units_inflight -= 1
                self.job.fail_video(spec.video_id, out)
                self.progress.advance(1, 0.0)
                self._drop_video(spec.video_id)
                return
            if spec.video_id in self.job.failed:
                self.units_inflight -= 1
                self.progress.advance(1, 0.0)
                return
            self.decoded.append((out, frames_ref))
        else:
            actor, gen, batch, attempts = payload
            self.backend.embed_done(actor, gen)
            try:
                outs = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                # Ray's own max_task_retries can burn out while a lost node is not yet declared dead
                # (calls fail fast with "unavailable"); back off and resubmit, replacing a dead actor.
                if attempts >= self.res.retries + ACTOR_RESUBMITS:
                    raise ActrecError(
                        f"inference of {self.job.date}: an inference actor was lost past its "
                        f"{self.res.retries} restarts and {attempts} resubmissions ({type(exc).__name__}); "
                        "committed units are kept, rerun to resume",
                        reason="actor_lost",
                    ) from None
                if isinstance(exc, ray.exceptions.ActorDiedError):
                    self.backend.replace_actor(actor, gen)
                delay = min(30.0, 2.0**attempts)
                log.warning(
                    "inference actor %d unavailable (%s); resubmitting %d units in %.0f s",
                    actor,
                    type(exc).__name__,
                    len(batch),
                    delay,
                )
                self.job.result.retries += 1
                self.retry.append((time.monotonic() + delay, attempts + 1, batch))
                return
            except Exception as exc:  # noqa: BLE001 - split the batch; quarantine only a unit that fails alone
                if len(batch) > 1:
                    log.warning(
                        "an embed call of %d units failed (%s); retrying them one by one", len(batch), exc
                    )
                    self.retry.extend((time.monotonic(), attempts, [item]) for item in batch)
                    return
                unit = batch[0][0]
                self.job.fail_video(unit.spec.video_id, _ray_failure(exc, unit.spec.uri, "infer_error"))
                outs = []
            by_key = {(e.spec.video_id, e.spec.index): e for e in outs}
            for unit, _ in batch:
                self.units_inflight -= 1
                e = by_key.get((unit.spec.video_id, unit.spec.index))
                if e is None:
                    self.job.fail_video(
                        unit.spec.video_id,
                        Failure(
                            "infer_error",
                            f"{unit.spec.uri}: segment {unit.spec.segment} came back without features",
                        ),
                    )
                else:
                    self.job.unit_done(
                        unit.spec,
                        SegmentFeatures(e.clips, e.centers_s, e.embeddings),
                        {
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
                        },
                    )
                self.progress.advance(1, unit.spec.end_s - unit.spec.start_s)

    def _expire(self) -> None:
        now = time.monotonic()
        for ref, (kind, payload, deadline) in list(self.pending.items()):
            if deadline is None or now < deadline:
                continue
            del self.pending[ref]
            self.cpu_inflight -= 1
            self.backend.cancel(ref)
            video_id = payload if kind == "index" else payload[0].video_id
            if kind == "decode":
                self.units_inflight -= 1
                self.progress.advance(1, 0.0)
            what = "indexing" if kind == "index" else f"segment {payload[0].segment}"
            self.job.fail_video(
                video_id,
                Failure(
                    QuarantineReason.TIMEOUT,
                    f"{self.job.videos[video_id]['uri']}: {what} took over {self.timeout:g} s (unit_timeout_s)",
                ),
            )
            self._drop_video(video_id)


def _ray_failure(exc: Exception, uri: str, default: str = QuarantineReason.DECODE_ERROR) -> Failure:
    """A Failure for an exception Ray raised instead of a result."""
    import ray

    name = type(exc).__name__
    first = " ".join(str(exc).split())[:300]
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        return Failure(QuarantineReason.TIMEOUT, f"{uri}: cancelled after the unit timeout")
    if isinstance(exc, ray.exceptions.WorkerCrashedError):
        return Failure(
            QuarantineReason.DECODE_CRASH,
            f"{uri}: the worker process died (native crash?) on every retry: {first}",
        )
    if isinstance(exc, (ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError)):
        return Failure(QuarantineReason.WORKER_LOST, f"{uri}: {name}: {first}")
    return Failure(default, f"{uri}: {name}: {first}")
