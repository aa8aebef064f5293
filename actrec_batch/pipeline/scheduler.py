"""The Ray runner's driver loop, without Ray: it keeps decode slots full, batches decoded units onto
embedders, enforces the in-flight cap and per-unit timeouts, resubmits the batches of a lost
embedder, and hands finished units back to the job.

Everything Ray does goes through a :class:`~actrec_batch.pipeline.messages.Backend` (:class:`~actrec_batch.pipeline.ray_backend.RayBackend`,
or a fake one in the tests). What is in flight is a typed message per submission
(:mod:`~actrec_batch.pipeline.messages`: IndexTask, DecodeTask, EmbedCall, and RetryBatch while a batch
waits out a backoff), and every unit and video moves through the states of :class:`UnitState` and
:class:`VideoState` along the transitions of ``UNIT_TRANSITIONS`` and ``VIDEO_TRANSITIONS``; any
other move is a bookkeeping bug and raises.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from actrec_batch.errors import ActrecError, QuarantineReason
from actrec_batch.pipeline.messages import (
    INFLIGHT,
    UNIT_TRANSITIONS,
    VIDEO_TRANSITIONS,
    ActorLost,
    Backend,
    Batch,
    CallFailed,
    Capacity,
    DecodeTask,
    EmbedCall,
    IndexTask,
    RetryBatch,
    Sink,
    UnitState,
    VideoState,
)
from actrec_batch.pipeline.progress import Progress
from actrec_batch.pipeline.work import Failure, UnitSpec

log = logging.getLogger(__name__)

ACTOR_RESUBMITS = 3  # driver-side resubmissions of a batch after Ray's own actor-call retries
WAIT_S = 0.5
MAX_BACKOFF_S = 30.0
REPLAN_S = 2.0  # how often the backend re-plans the run's capacity from the cluster's size


class Scheduler:
    """One run's driver loop over ``todo`` (see the module docstring). ``res`` is the run's
    :class:`~actrec_batch.pipeline.ray_backend.Resources`; ``clip_hop`` sizes a batch in frames.

    Every ``REPLAN_S`` it asks the backend for the run's :class:`Capacity`: on an autoscaling
    cluster, decode slots and the in-flight cap grow as nodes join (``capacities`` keeps each one)."""

    def __init__(
        self,
        sink: Sink,
        backend: Backend,
        todo: list[UnitSpec],
        res: Any,
        *,
        timeout_s: float,
        clip_hop: int,
        progress: Progress,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sink, self.backend, self.res = sink, backend, res
        self.timeout, self.clip_hop, self.progress = timeout_s, clip_hop, progress
        self.clock, self.sleep = clock, sleep
        self.by_video: dict[str, deque[UnitSpec]] = {}
        self.unit_state: dict[tuple[str, int], UnitState] = {}
        for spec in todo:
            self.by_video.setdefault(spec.video_id, deque()).append(spec)
            self.unit_state[(spec.video_id, spec.index)] = UnitState.QUEUED
        self.video_state = {video_id: VideoState.QUEUED for video_id in self.by_video}
        self.to_index: deque[str] = deque(self.by_video)
        self.index_refs: dict[str, Any] = {}  # video_id -> ref of its VideoIndex, while units are left
        self.ready: deque[str] = deque()  # indexed videos with units left to decode
        self.pending: dict[Any, IndexTask | DecodeTask | EmbedCall] = {}
        self.decoded: Batch = []  # waiting for an embedder
        self.retry: list[RetryBatch] = []
        self.units_inflight = 0
        self.peak_units_inflight = 0
        self.capacity = Capacity(res.actors, res.decode_slots, res.max_inflight_units)
        self.capacities: list[Capacity] = []  # each change the backend reported, in order
        self.resubmitted: dict[str, int] = {}  # "video_id/segment" -> embed resubmissions of the unit
        self.lost: frozenset[int] = frozenset()  # actors whose last call found them unavailable
        self._replan_at = self.clock() + REPLAN_S
        self._handlers: dict[type, Callable[[Any, Any], None]] = {
            IndexTask: self._on_index,
            DecodeTask: self._on_decode,
            EmbedCall: self._on_embed,
        }

    def run(self) -> None:
        try:
            while self.by_video or self.pending or self.decoded or self.retry:
                self._fill()
                self._flush()
                if not self.pending:
                    if self.retry:  # only batches waiting out an embedder's outage
                        self.sleep(max(0.0, min(r.not_before for r in self.retry) - self.clock()))
                        continue
                    if self.by_video or self.decoded:  # nothing running, yet work is left: a bookkeeping bug
                        raise ActrecError(
                            f"inference of {self.sink.spec.date}: the scheduler stalled with "
                            f"{sum(map(len, self.by_video.values()))} units queued",
                            reason="internal",
                        )
                    break
                for ref in self.backend.wait(list(self.pending), WAIT_S):
                    msg = self.pending.pop(ref)
                    self._handlers[type(msg)](ref, msg)
                self._expire()
                self._replan()
        finally:
            self.progress.close()

    # ------------------------------------------------------------------------------- states

    def _move(self, spec: UnitSpec, new: UnitState) -> None:
        key = (spec.video_id, spec.index)
        old = self.unit_state[key]
        if new not in UNIT_TRANSITIONS[old]:
            raise ActrecError(
                f"{spec.uri}: segment {spec.segment} cannot go {old.value} -> {new.value}", reason="internal"
            )
        self.unit_state[key] = new
        self.units_inflight += (new in INFLIGHT) - (old in INFLIGHT)
        self.peak_units_inflight = max(self.peak_units_inflight, self.units_inflight)

    def _move_video(self, video_id: str, new: VideoState) -> None:
        old = self.video_state[video_id]
        if new not in VIDEO_TRANSITIONS[old]:
            uri = self.sink.videos[video_id]["uri"]
            raise ActrecError(f"{uri}: cannot go {old.value} -> {new.value}", reason="internal")
        self.video_state[video_id] = new

    def _fail(self, video_id: str, failure: Failure) -> None:
        self.sink.fail_video(video_id, failure)
        self._video_failed(video_id)

    def _video_failed(self, video_id: str) -> None:
        """The video failed (the sink has its reason): its units not yet submitted are dropped."""
        self._move_video(video_id, VideoState.FAILED)
        self._drop_video(video_id)

    def _drop_video(self, video_id: str) -> None:
        """Forget the units of ``video_id`` that were not submitted (it failed, or none are left)."""
        left = self.by_video.pop(video_id, None)
        if left:
            for spec in left:
                self._move(spec, UnitState.FAILED)
            self.progress.advance(len(left), 0.0)

    # ----------------------------------------------------------------------- submitting work

    def _replan(self) -> None:
        """Take the backend's new capacity (nodes joined or left), at most every REPLAN_S."""
        now = self.clock()
        if now < self._replan_at:
            return
        self._replan_at = now + REPLAN_S
        new = self.backend.capacity()
        if new is None or new == self.capacity:
            return
        log.info(
            "capacity: %d actor(s), %d decode slots, at most %d units in flight (cluster: %g CPUs, %g GPUs, "
            "%d nodes)",
            new.actors,
            new.decode_slots,
            new.max_inflight_units,
            new.cpus,
            new.gpus,
            new.nodes,
        )
        self.capacity = new
        self.capacities.append(new)

    def _cpu_inflight(self) -> int:
        return sum(not isinstance(m, EmbedCall) for m in self.pending.values())

    def _fill(self) -> None:
        res = self.capacity
        while self._cpu_inflight() < res.decode_slots:
            spec = self._next_ready_unit() if self.units_inflight < res.max_inflight_units else None
            if spec is not None:
                ref, frames_ref = self.backend.decode(spec, self.index_refs[spec.video_id])
                if spec.video_id not in self.by_video:  # its last unit: the submitted tasks pin the index
                    self.index_refs.pop(spec.video_id, None)
                    self._move_video(spec.video_id, VideoState.SUBMITTED)
                self.pending[ref] = DecodeTask(spec, frames_ref, self.clock() + self.timeout)
                self._move(spec, UnitState.DECODING)
                continue
            if self.to_index and len(self.ready) < res.decode_slots:
                video_id = self.to_index.popleft()
                video = self.sink.videos[video_id]
                ref = self.backend.index(video)
                self.pending[ref] = IndexTask(video_id, video["uri"], self.clock() + self.timeout)
                self._move_video(video_id, VideoState.INDEXING)
                continue
            break

    def _next_ready_unit(self) -> UnitSpec | None:
        while self.ready:
            video_id = self.ready[0]
            queue = self.by_video.get(video_id)
            if video_id in self.sink.failed or not queue:
                self.ready.popleft()
                self._drop_video(video_id)
                continue
            spec = queue.popleft()
            if not queue:
                self.ready.popleft()
                del self.by_video[video_id]
            return spec
        return None

    def _flush(self) -> None:
        """Send decoded units to an embedder once a batch is full, or when nothing else is coming.
        Batches back from an unavailable embedder go first, once their backoff is over."""
        now = self.clock()
        for item in sorted(self.retry, key=lambda r: r.not_before):
            actor = self.backend.free_actor(self.lost)
            if item.not_before > now or actor is None:
                break
            self.retry.remove(item)
            self._submit(actor, item.batch, item.attempts, item.lost_since)
        if not self.decoded:
            return
        frames = sum(len(u.clips) * self.clip_hop for u, _ in self.decoded)
        decoding = any(isinstance(m, DecodeTask) for m in self.pending.values())
        full = self.units_inflight >= self.capacity.max_inflight_units
        if frames < self.res.batch_frames and decoding and not full:
            return
        actor = self.backend.free_actor(self.lost)
        if actor is None:
            return
        batch, self.decoded = self.decoded, []
        self._submit(actor, batch, 0)

    def _submit(self, actor: int, batch: Batch, attempts: int, lost_since: float | None = None) -> None:
        ref, gen = self.backend.embed(actor, [u for u, _ in batch], [f for _, f in batch])
        self.pending[ref] = EmbedCall(actor, gen, batch, attempts, lost_since)
        for unit, _ in batch:
            self._move(unit.spec, UnitState.EMBEDDING)

    # ------------------------------------------------------------------------ handling results

    def _on_index(self, ref: Any, msg: IndexTask) -> None:
        out = self.backend.task_result(ref, msg.uri)
        if isinstance(out, Failure):
            self._fail(msg.video_id, out)
            return
        self.sink.index_done(msg.video_id, out)
        self.index_refs[msg.video_id] = ref
        self.ready.append(msg.video_id)
        self._move_video(msg.video_id, VideoState.READY)

    def _on_decode(self, ref: Any, msg: DecodeTask) -> None:
        spec = msg.spec
        out = self.backend.task_result(ref, spec.uri)
        if isinstance(out, Failure) or spec.video_id in self.sink.failed:
            self._move(spec, UnitState.FAILED)
            self.progress.advance(1, 0.0)
            if isinstance(out, Failure):
                self._fail(spec.video_id, out)
            return
        self._move(spec, UnitState.DECODED)
        self.decoded.append((out, msg.frames_ref))

    def _on_embed(self, ref: Any, msg: EmbedCall) -> None:
        self.backend.embed_done(msg.actor, msg.generation)
        out = self.backend.embed_result(ref)
        if isinstance(out, ActorLost):
            self.lost |= {msg.actor}  # new batches go to the others until it answers again
            self._resubmit_later(msg, out)
            return
        self.lost -= {msg.actor}
        if isinstance(out, CallFailed):
            if len(msg.batch) > 1:  # split the batch; quarantine only a unit that fails alone
                log.warning(
                    "an embed call of %d units failed (%s); retrying them one by one",
                    len(msg.batch),
                    out.error,
                )
                self._wait_retry([RetryBatch(self.clock(), msg.attempts, [item]) for item in msg.batch])
                return
            spec = msg.batch[0][0].spec
            self._fail(spec.video_id, self.backend.failure(out.error, spec.uri, QuarantineReason.INFER_ERROR))
            out = []
        by_key = {(e.spec.video_id, e.spec.index): e for e in out}
        for unit, _ in msg.batch:
            spec = unit.spec
            self.sink.embedded(unit, by_key.get((spec.video_id, spec.index)))
            failed = spec.video_id in self.sink.failed
            self._move(spec, UnitState.FAILED if failed else UnitState.DONE)
            if failed:
                self._video_failed(spec.video_id)
            self.progress.advance(1, spec.end_s - spec.start_s)

    def _resubmit_later(self, msg: EmbedCall, lost: ActorLost) -> None:
        """Ray's own actor-call retries can burn out while a lost node is not yet declared dead
        (calls fail fast as unavailable): back off and resubmit, replacing a dead embedder.

        The run gives up after ``ACTOR_RESUBMITS`` resubmissions, but on an autoscaling cluster
        not before the backend's ``lost_wait_s`` has passed since the units were first lost: the
        autoscaler is replacing the node, and the count alone would run out first under load."""
        now = self.clock()
        lost_since = now if msg.lost_since is None else msg.lost_since
        waited = now - lost_since
        if msg.attempts >= self.res.retries + ACTOR_RESUBMITS and waited >= self.backend.lost_wait_s:
            raise ActrecError(
                f"inference of {self.sink.spec.date}: an inference actor was lost past its "
                f"{self.res.retries} restarts and {msg.attempts} resubmissions over {waited:.0f} s "
                f"({lost.error}); committed units are kept, rerun to resume",
                reason="actor_lost",
            )
        if lost.dead:
            self.backend.replace_actor(msg.actor, msg.generation)
        delay = min(MAX_BACKOFF_S, 2.0**msg.attempts)
        log.warning(
            "inference actor %d unavailable (%s); resubmitting %d units in %.0f s",
            msg.actor,
            lost.error,
            len(msg.batch),
            delay,
        )
        self.sink.result.retries += 1
        for unit, _ in msg.batch:  # embedded again: the cost ledger counts it as wasted work
            key = f"{unit.spec.video_id}/{unit.spec.segment}"
            self.resubmitted[key] = self.resubmitted.get(key, 0) + 1
        self._wait_retry([RetryBatch(now + delay, msg.attempts + 1, msg.batch, lost_since)])

    def _wait_retry(self, items: list[RetryBatch]) -> None:
        for item in items:
            for unit, _ in item.batch:
                self._move(unit.spec, UnitState.RETRY_WAIT)
            self.retry.append(item)

    def _expire(self) -> None:
        now = self.clock()
        for ref, msg in list(self.pending.items()):
            if isinstance(msg, EmbedCall) or now < msg.deadline:
                continue
            del self.pending[ref]
            self.backend.cancel(ref)
            if isinstance(msg, DecodeTask):
                self._move(msg.spec, UnitState.FAILED)
                self.progress.advance(1, 0.0)
                video_id = msg.spec.video_id
            else:
                video_id = msg.video_id
            uri = self.sink.videos[video_id]["uri"]
            self._fail(
                video_id,
                Failure(
                    QuarantineReason.TIMEOUT,
                    f"{uri}: {msg.what} took over {self.timeout:g} s (unit_timeout_s)",
                ),
            )
