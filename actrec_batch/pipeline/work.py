"""What runs on the workers: index a video, decode one unit, embed decoded units.

Plain functions and one plain class, with no Ray in them: :mod:`actrec_batch.pipeline.ray_backend`
wraps them as Ray tasks and actors, and tests can call them directly. A video error never escapes
as an exception: it comes back as a :class:`Failure` with its reason code, so Ray does not retry
what would fail again. Only a dying worker (a native crash, a lost node) is left to Ray's retries.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actrec_batch.errors import QuarantineReason

# Fault injection for the test suite only: a unit of a video whose key contains the value of
# ACTREC_FAULT_CRASH dies with SIGSEGV (as a native decoder crash would), ACTREC_FAULT_HANG sleeps
# forever, and ACTREC_FAULT_SLOW=<seconds> slows every decode down (to catch a run in the middle).
FAULT_ENV = ("ACTREC_FAULT_CRASH", "ACTREC_FAULT_HANG", "ACTREC_FAULT_SLOW")


@dataclass(frozen=True)
class Failure:
    """A unit or video that cannot be processed: quarantined with ``reason``."""

    reason: str
    detail: str


@dataclass(frozen=True)
class UnitSpec:
    """One work unit: segment ``index`` = ``[start_s, end_s)`` of one video."""

    video_id: str
    key: str
    uri: str
    content_id: str
    duration_s: float
    index: int
    start_s: float
    end_s: float
    segment: str  # cache/checkpoint name of the segment, e.g. "300s-00002"


@dataclass
class DecodedUnit:
    """Grid frames one unit's clips need, plus where they sit on the video's clip grid."""

    spec: UnitSpec
    clips: range
    centers_s: np.ndarray
    first_is_context: bool
    frames_decoded: int
    decode_s: float
    cpu_s: float
    attempt: int
    node_id: str
    decode_fallback: str | None = None  # DecodeStats.fallback: how frames were found when not by the index
    packets_rejected: int = 0  # damaged frames the decoder rejected (skipped)
    frame_health: dict[str, Any] | None = None  # FrameHealth.to_json() of the decoded frames


@dataclass
class EmbeddedUnit:
    spec: UnitSpec
    clips: range
    centers_s: np.ndarray
    embeddings: np.ndarray
    infer_s: float
    attempt: int
    node_id: str
    meta: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _store(uri: str):
    from actrec_batch.storage import open_store

    return open_store(uri)


def _ray():
    """The ray module when this process uses Ray (a Ray worker always has it imported), else None:
    the local runner never imports Ray."""
    return sys.modules.get("ray")


def _attempt() -> int:
    """How many times Ray has retried the current task (0 outside Ray)."""
    ray = _ray()
    if ray is None:
        return 0
    try:
        return int(ray._private.worker.global_worker.core_worker.get_current_task_attempt_number())
    except Exception:  # noqa: BLE001 - not in a Ray task, or a Ray without the call
        return 0


def _node_id() -> str:
    ray = _ray()
    if ray is None:
        return "local"
    try:
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    except Exception:  # noqa: BLE001
        return "local"


def _faults(key: str) -> None:
    crash, hang, slow = (os.environ.get(name) for name in FAULT_ENV)
    if crash and crash in key:
        os.kill(os.getpid(), signal.SIGSEGV)
    if hang and hang in key:
        while True:
            time.sleep(60)
    if slow:
        time.sleep(float(slow))


def _source(store_uri: str, key: str):
    store = _store(store_uri)
    local = store.local_path(key)
    return local if local is not None else store.open_read(key)


def _failure(exc: Exception, uri: str) -> Failure:
    from actrec_batch.errors import ActrecError, QuarantineReason

    if isinstance(exc, ActrecError):
        return Failure(exc.reason, " ".join(str(exc).split())[:500])
    return Failure(
        QuarantineReason.DECODE_ERROR, f"{uri}: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
    )


def failure_of(exc: Exception, uri: str, default: str = QuarantineReason.DECODE_ERROR) -> Failure:
    """A Failure with reason ``default`` for an exception that escaped a stage (not a video error)."""
    first = " ".join(str(exc).split())[:300]
    return Failure(default, f"{uri}: {type(exc).__name__}: {first}")


def check_frames_cover(times: np.ndarray, duration_s: float, uri: str) -> None:
    """Raise ``VideoError(truncated)`` when the frames stop well short of the manifest's duration."""
    from actrec_batch.errors import QuarantineReason, VideoError

    covered = float(times[-1] - times[0]) if times.size else 0.0
    if covered < duration_s - max(1.0, 0.05 * duration_s):
        raise VideoError(
            f"{uri}: frames cover {covered:.1f} s but the manifest says {duration_s:.1f} s; "
            "the file changed or was cut after discovery",
            reason=QuarantineReason.TRUNCATED,
        )


@dataclass
class VideoIndex:
    """The frame index of a whole video (:class:`~actrec_batch.video.FrameIndex`), and what
    finding it cost. ``frames.source`` says whether it came from the container's timestamps or
    from a decoding pass (containers such as AVI store no presentation times)."""

    frames: Any  # actrec_batch.video.FrameIndex (not imported here: workers import av lazily)
    wall_s: float
    cpu_s: float
    attempt: int
    node_id: str

    @property
    def times(self) -> np.ndarray:
        """Presentation time of every frame in seconds, in presentation order."""
        return self.frames.times_s


def index_video(store_uri: str, key: str, uri: str, duration_s: float) -> VideoIndex | Failure:
    """The frame index of a whole video (one pass over the file; it decodes only where the
    container's timestamps must be checked against the decoder), checked against the manifest."""
    from actrec_batch.video import frame_index

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        src = _source(store_uri, key)
        try:
            frames = frame_index(src, uri=uri)
        finally:
            if hasattr(src, "close"):
                src.close()
        check_frames_cover(frames.times_s, duration_s, uri)
        return VideoIndex(frames, time.perf_counter() - t0, time.process_time() - c0, _attempt(), _node_id())
    except Exception as exc:  # noqa: BLE001 - a bad video is a result, not a crash
        return _failure(exc, uri)


def decode_unit(
    store_uri: str, spec: UnitSpec, index: VideoIndex, sampling: dict[str, Any], threads: int = 1
) -> tuple[DecodedUnit | Failure, np.ndarray | None]:
    """Decode the grid frames of one unit with ``threads`` decoder threads:
    ``(DecodedUnit, frames [N, H, W, 3] uint8)``, or a Failure. The unit carries the frames'
    :func:`~actrec_batch.video.health.frame_health` (black and static frames)."""
    from actrec_batch.model.sampling import build_grid, decode_grid_frames
    from actrec_batch.video import DecodeStats
    from actrec_batch.video.health import frame_health

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        _faults(spec.key)
        times = index.times
        grid = build_grid(
            times,
            sample_fps=sampling["sample_fps"],
            clip_len=sampling["clip_len"],
            clip_hop=sampling["clip_hop"],
            duration_s=spec.duration_s,
        )
        clips = grid.clips_in(spec.start_s, spec.end_s)
        span = grid.grid_span(clips)
        stats = DecodeStats()
        src = _source(store_uri, spec.key)
        try:
            frames = decode_grid_frames(
                src,
                grid,
                span,
                width=sampling["frame_width"],
                height=sampling["frame_height"],
                frame_index=index.frames,
                uri=spec.uri,
                stats=stats,
                threads=threads,
            )
        finally:
            if hasattr(src, "close"):
                src.close()
    except Exception as exc:  # noqa: BLE001 - a bad video is a result, not a crash
        return _failure(exc, spec.uri), None
    unit = DecodedUnit(
        spec=spec,
        clips=clips,
        centers_s=grid.clip_centers(clips),
        first_is_context=len(clips) > 0 and span.start < clips.start * grid.clip_hop,
        frames_decoded=stats.frames_decoded,
        decode_s=time.perf_counter() - t0,
        cpu_s=time.process_time() - c0,
        attempt=_attempt(),
        node_id=_node_id(),
        decode_fallback=stats.fallback,
        packets_rejected=stats.packets_rejected,
        # on the frames decoded anyway: what tells a black or frozen camera costs no decode
        frame_health=frame_health(frames).to_json(),
    )
    return unit, frames


def _resolve(frames: list) -> list[np.ndarray]:
    """Arrays from a list that may hold Ray ObjectRefs (nested refs are not resolved by Ray)."""
    ray = _ray()
    if ray is None:  # not under Ray: no refs
        return frames
    refs = [i for i, f in enumerate(frames) if isinstance(f, ray.ObjectRef)]
    if refs:
        got = ray.get([frames[i] for i in refs])
        frames = list(frames)
        for i, arr in zip(refs, got, strict=True):
            frames[i] = arr
    return frames


class Embedder:
    """Holds a model's extractor on its device and embeds decoded units, several per call (one
    round trip to the actor). Inside the call each unit goes through the network on its own (see
    :func:`~actrec_batch.model.features.embed_units`), so a unit's features are the same bytes
    whatever batch the scheduler made: a resumed run or one that lost a node gives identical events.
    """

    def __init__(self, model_ref: str, store_uri: str | None, device: str | None, threads: int = 0) -> None:
        import torch

        from actrec_batch.model import load_extractor

        if threads > 0:
            torch.set_num_threads(threads)
        self.model = load_extractor(model_ref, store_uri=store_uri, device=device)
        self.started = time.time()
        self.busy_s = 0.0
        self.cpu_s = 0.0
        self.calls = 0

    def device(self) -> str:
        """Where the extractor runs (an ONNX backbone may run on the CPU beside a CUDA head)."""
        return str(getattr(self.model.extractor, "device", self.model.device))

    def embed(self, units: list[DecodedUnit], frames: list[np.ndarray]) -> list[EmbeddedUnit]:
        from actrec_batch.model.features import UnitFrames, embed_units

        t0, c0 = time.perf_counter(), time.process_time()
        frames = _resolve(frames)
        config = self.model.card.extractor.config
        embeddings = embed_units(
            self.model.extractor,
            [
                UnitFrames(f, unit.first_is_context, len(unit.clips))
                for unit, f in zip(units, frames, strict=True)
            ],
            clip_len=int(config["clip_len"]),
            clip_hop=int(config["clip_hop"]),
            embed_dim=int(config["embed_dim"]),
            device=self.model.device,
        )
        attempt, node = _attempt(), _node_id()
        out = [
            EmbeddedUnit(unit.spec, unit.clips, unit.centers_s, emb, 0.0, attempt, node)
            for unit, emb in zip(units, embeddings, strict=True)
        ]
        took = time.perf_counter() - t0
        counts = [len(f) if len(unit.clips) else 0 for unit, f in zip(units, frames, strict=True)]
        total = sum(counts) or 1
        for e, n in zip(out, counts, strict=True):
            e.infer_s = took * n / total  # the batch's time, shared by frames
        self.busy_s += took
        self.cpu_s += time.process_time() - c0
        self.calls += 1
        return out

    def usage(self) -> dict[str, Any]:
        """Lifetime, busy and CPU seconds of this actor, for the resource ledger."""
        return {
            "started": self.started,
            "now": time.time(),
            "busy_s": self.busy_s,
            "cpu_s": self.cpu_s,
            "calls": self.calls,
            "device": self.device(),
            "node_id": _node_id(),
        }
