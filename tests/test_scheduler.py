"""The Ray runner's scheduler without Ray: a fake backend answers its index, decode and embed
submissions in order, on a fake clock, so every path (failures, timeouts, a lost embedder, a
split batch) and every state transition is exercised in milliseconds."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from actrec_batch.errors import ActrecError
from actrec_batch.pipeline.messages import (
    UNIT_TRANSITIONS,
    ActorLost,
    CallFailed,
    Capacity,
    DecodeTask,
    EmbedCall,
    IndexTask,
    UnitState,
    VideoState,
)
from actrec_batch.pipeline.progress import Progress
from actrec_batch.pipeline.scheduler import Scheduler
from actrec_batch.pipeline.stages.plan import plan_units
from actrec_batch.pipeline.work import DecodedUnit, EmbeddedUnit, Failure, UnitSpec, VideoIndex

DATE = dt.date(2026, 11, 21)
HANG = object()  # a task that never finishes


def _video(name: str, duration_s: float = 30.0) -> dict[str, Any]:
    return {
        "video_id": name,
        "key": f"{name}.mp4",
        "uri": f"mem://{name}.mp4",
        "content_id": name,
        "duration_s": duration_s,
    }


@dataclass
class FakeSink:
    videos: dict[str, dict[str, Any]]
    spec: Any = field(default_factory=lambda: SimpleNamespace(date=DATE))
    failed: dict[str, Failure] = field(default_factory=dict)
    result: Any = field(default_factory=lambda: SimpleNamespace(retries=0))
    indexed: list[str] = field(default_factory=list)
    done: list[tuple[str, int]] = field(default_factory=list)

    def fail_video(self, video_id: str, failure: Failure) -> None:
        self.failed.setdefault(video_id, failure)

    def index_done(self, video_id: str, index: VideoIndex) -> None:
        self.indexed.append(video_id)

    def embedded(self, unit: DecodedUnit, out: EmbeddedUnit | None) -> None:
        if out is None:
            self.fail_video(unit.spec.video_id, Failure("infer_error", "came back without features"))
        elif unit.spec.video_id not in self.failed:
            self.done.append((unit.spec.video_id, unit.spec.index))


class FakeBackend:
    """Submissions get increasing refs; wait() returns the oldest finished one, or lets the fake
    clock run out the timeout when every pending task hangs."""

    def __init__(
        self,
        *,
        actors: int = 1,
        bad_index=(),
        bad_decode=(),
        hang=(),
        lost=0,
        dead=False,
        bad_embed=(),
        tick=0.0,
        grow=(),
        lost_wait_s=0.0,
    ):
        self.lost_wait_s = lost_wait_s  # an autoscaling cluster's: lost units wait this long for capacity
        self.now, self.tick = 0.0, tick  # tick: seconds each wait() takes
        self.grow = list(grow)  # capacities reported, one per capacity() call, then no change
        self.avoided: list[frozenset[int]] = []
        self.results: dict[int, Any] = {}
        self.next = 0
        self.calls = [0] * actors
        self.bad_index, self.bad_decode, self.hang = set(bad_index), set(bad_decode), set(hang)
        self.lost, self.dead, self.bad_embed = lost, dead, set(bad_embed)
        self.cancelled: list[int] = []
        self.replaced: list[tuple[int, int]] = []
        self.batches: list[int] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def capacity(self):
        if not self.grow:
            return None
        cap = self.grow.pop(0)
        self.calls += [0] * (cap.actors - len(self.calls))  # the pool grows
        return cap

    def _ref(self, value: Any) -> int:
        self.next += 1
        self.results[self.next] = value
        return self.next

    def index(self, video):
        if video["video_id"] in self.bad_index:
            return self._ref(Failure("unreadable", f"{video['uri']}: bad"))
        return self._ref(VideoIndex(frames=None, wall_s=0.1, cpu_s=0.1, attempt=0, node_id="n"))

    def decode(self, spec: UnitSpec, index_ref):
        if spec.video_id in self.hang:
            return self._ref(HANG), None
        if spec.video_id in self.bad_decode:
            return self._ref(Failure("decode_error", f"{spec.uri}: bad")), None
        unit = DecodedUnit(
            spec, range(spec.index * 4, spec.index * 4 + 4), np.zeros(4), False, 8, 0.1, 0.1, 0, "n"
        )
        return self._ref(unit), f"frames-{spec.video_id}-{spec.index}"

    def free_actor(self, avoid=frozenset()):
        self.avoided.append(avoid)
        pool = [i for i in range(len(self.calls)) if i not in avoid] or range(len(self.calls))
        best = min(pool, key=lambda i: self.calls[i])
        return best if self.calls[best] < 2 else None

    def embed(self, actor, units, frame_refs):
        self.calls[actor] += 1
        self.batches.append(len(units))
        if self.lost:
            self.lost -= 1
            return self._ref(ActorLost("ActorUnavailableError", dead=self.dead)), 0
        if (
            len(units) > 1
            and any(u.spec.video_id in self.bad_embed for u in units)
            or (len(units) == 1 and units[0].spec.video_id in self.bad_embed)
        ):
            return self._ref(CallFailed(RuntimeError("boom"))), 0
        out = [EmbeddedUnit(u.spec, u.clips, u.centers_s, np.zeros((4, 2)), 0.1, 0, "n") for u in units]
        return self._ref(out), 0

    def embed_done(self, actor, generation):
        self.calls[actor] -= 1

    def replace_actor(self, actor, generation):
        self.replaced.append((actor, generation))

    def cancel(self, ref):
        self.cancelled.append(ref)

    def wait(self, refs, timeout):
        self.now += self.tick
        for ref in sorted(refs):
            if self.results[ref] is not HANG:
                return [ref]
        self.now += timeout
        return []

    def task_result(self, ref, uri):
        return self.results.pop(ref)

    def embed_result(self, ref):
        return self.results.pop(ref)

    def failure(self, exc, uri, default):
        return Failure(default, f"{uri}: {type(exc).__name__}: {exc}")


def _run(backend: FakeBackend, videos=("a", "b"), **res) -> tuple[Scheduler, FakeSink]:
    rows = {v: _video(v) for v in videos}
    todo = [u for row in rows.values() for u in plan_units(row, 10.0)]
    sink = FakeSink(rows)
    plan = SimpleNamespace(
        **{"actors": 1, "decode_slots": 2, "max_inflight_units": 3, "batch_frames": 64, "retries": 1, **res}
    )
    progress = Progress(DATE, len(todo), 60.0, enabled=False)
    s = Scheduler(
        sink,
        backend,
        todo,
        plan,
        timeout_s=30.0,
        clip_hop=2,
        progress=progress,
        clock=backend.clock,
        sleep=backend.sleep,
    )
    s.run()
    return s, sink


def test_every_unit_is_embedded_within_the_inflight_cap():
    backend = FakeBackend()
    s, sink = _run(backend)
    assert sorted(sink.done) == [(v, k) for v in "ab" for k in range(3)]
    assert set(s.unit_state.values()) == {UnitState.DONE}
    assert set(s.video_state.values()) == {VideoState.SUBMITTED}
    assert sink.indexed == ["a", "b"] and not sink.failed
    assert 1 <= s.peak_units_inflight <= 3 and s.units_inflight == 0
    assert not s.pending and not s.decoded and not s.retry


def test_a_video_that_fails_to_index_or_decode_is_dropped_and_the_others_finish():
    s, sink = _run(FakeBackend(bad_index={"a"}, bad_decode={"b"}), videos=("a", "b", "c"))
    assert sink.failed["a"].reason == "unreadable" and sink.failed["b"].reason == "decode_error"
    assert s.video_state == {"a": VideoState.FAILED, "b": VideoState.FAILED, "c": VideoState.SUBMITTED}
    assert all(s.unit_state[("a", k)] is UnitState.FAILED for k in range(3))
    assert all(s.unit_state[("b", k)] is UnitState.FAILED for k in range(3))
    assert sorted(sink.done) == [("c", k) for k in range(3)]


def test_a_hung_decode_times_out_on_the_clock_and_is_cancelled():
    backend = FakeBackend(hang={"a"})
    s, sink = _run(backend)
    assert (
        sink.failed["a"].reason == "timeout" and "took over 30 s (unit_timeout_s)" in sink.failed["a"].detail
    )
    assert backend.cancelled and backend.now >= 30.0
    assert s.video_state["a"] is VideoState.FAILED and s.video_state["b"] is VideoState.SUBMITTED
    assert sorted(sink.done) == [("b", k) for k in range(3)]


@pytest.mark.parametrize("dead", [False, True])
def test_a_lost_embedder_is_retried_after_a_backoff_and_replaced_when_dead(dead):
    backend = FakeBackend(lost=2, dead=dead)
    s, sink = _run(backend)
    assert sorted(sink.done) == [(v, k) for v in "ab" for k in range(3)] and not sink.failed
    assert sink.result.retries == 2 and backend.now >= 1.0  # a backoff of 1 s, then 2 s
    assert (len(backend.replaced) == 2) is dead
    assert frozenset({0}) in backend.avoided and not s.lost  # avoided while lost, until it answered


def test_an_embedder_lost_past_its_resubmissions_fails_the_run():
    with pytest.raises(ActrecError, match="lost past its 1 restarts") as err:
        _run(FakeBackend(lost=100))
    assert err.value.reason == "actor_lost"


def test_on_an_autoscaling_cluster_lost_units_wait_for_capacity_not_a_count():
    """The autoscaler replaces a killed spot node within minutes; resubmissions are counted, but
    the run gives up only after the backend's lost_wait_s. Lost for 6 calls (past the count of 4):
    with a 120 s wait it completes, with none it fails at the count. One unit in flight, so the
    losses fall on one batch."""
    with pytest.raises(ActrecError, match="lost past its 1 restarts and 4 resubmissions"):
        _run(FakeBackend(lost=6), max_inflight_units=1)
    backend = FakeBackend(lost=6, lost_wait_s=120.0)
    s, sink = _run(backend, max_inflight_units=1)
    assert sorted(sink.done) == [(v, k) for v in "ab" for k in range(3)] and not sink.failed
    assert sink.result.retries == 6 and backend.now >= 1 + 2 + 4 + 8 + 16
    with pytest.raises(ActrecError, match=r"resubmissions over \d+ s") as err:
        _run(FakeBackend(lost=100, lost_wait_s=120.0), max_inflight_units=1)
    assert err.value.reason == "actor_lost"


def test_a_failing_batch_is_split_and_only_the_unit_that_fails_alone_is_quarantined():
    backend = FakeBackend(bad_embed={"a"})
    s, sink = _run(backend, batch_frames=10_000, max_inflight_units=6, decode_slots=6)  # batches of several
    assert max(backend.batches) > 1
    assert sink.failed["a"].reason == "infer_error" and "RuntimeError: boom" in sink.failed["a"].detail
    assert sorted(sink.done) == [("b", k) for k in range(3)]
    assert s.video_state["a"] is VideoState.FAILED
    assert {s.unit_state[("a", k)] for k in range(3)} == {UnitState.FAILED}


def test_capacity_grows_as_the_backend_reports_nodes_joining():
    # One decode slot and one unit in flight, until the cluster grows (re-planned every REPLAN_S of
    # the clock): then 2 embedders, 3 decode slots and 5 units in flight.
    grown = Capacity(actors=2, decode_slots=3, max_inflight_units=5, cpus=4.0, gpus=2.0, nodes=3)
    backend = FakeBackend(tick=1.0, grow=[grown])
    s, sink = _run(backend, videos=("a", "b", "c"), decode_slots=1, max_inflight_units=1)
    assert sorted(sink.done) == [(v, k) for v in "abc" for k in range(3)] and not sink.failed
    assert s.capacities == [grown] and s.capacity == grown
    assert s.peak_units_inflight > 1  # past the first plan's cap: the growth was used
    assert len(backend.calls) == 2


def test_an_unchanged_capacity_is_not_recorded():
    backend = FakeBackend(tick=1.0)
    s, sink = _run(backend, videos=("a", "b", "c"), decode_slots=1, max_inflight_units=1)
    assert not s.capacities and s.capacity == Capacity(1, 1, 1)
    assert s.peak_units_inflight == 1 and len(sink.done) == 9


def test_a_move_outside_the_transition_table_is_a_bookkeeping_error():
    s, _ = _run(FakeBackend(), videos=("a",))
    spec = plan_units(_video("a"), 10.0)[0]
    with pytest.raises(ActrecError, match="cannot go done -> decoding") as err:
        s._move(spec, UnitState.DECODING)
    assert err.value.reason == "internal"
    terminal = {state for state, nxt in UNIT_TRANSITIONS.items() if not nxt}
    assert terminal == {UnitState.DONE, UnitState.FAILED}


def test_messages_are_typed_dataclasses():
    import dataclasses

    for cls in (IndexTask, DecodeTask, EmbedCall, ActorLost, CallFailed, Capacity):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen


def test_the_job_and_the_scheduler_import_without_ray():
    code = (
        "import sys, actrec_batch.pipeline.job, actrec_batch.pipeline.scheduler, actrec_batch.pipeline.runners\n"
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


# ------------------------------------------------------------ elastic planning (Ray-free)


def _elastic_settings(**flags):
    from actrec_batch.config import load_settings

    base = {"actor_gpus": 1, "inference_actors": 2, "max_inflight_units": 6}
    return load_settings({**base, **flags}, env={})


class Sizes:
    """The cluster's (CPUs, GPUs, nodes) at each call, the last one repeating; a fake clock."""

    def __init__(self, *sizes):
        self.sizes, self.now = list(sizes), 0.0

    def __call__(self):
        return self.sizes.pop(0) if len(self.sizes) > 1 else self.sizes[0]

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_job_asks_for_its_pool_and_decode_slots():
    from actrec_batch.pipeline.ray_capacity import wanted_bundles

    gpu = {"CPU": 1.0, "GPU": 1.0}
    assert wanted_bundles(_elastic_settings(), 0.0) == [gpu, gpu] + [{"CPU": 1.0}] * 4
    cpu_only = _elastic_settings(actor_gpus=0, inference_actors=0, max_inflight_units=0)
    assert wanted_bundles(cpu_only, 0.0) == [{"CPU": 1.0}]  # a 0-CPU embedder needs no bundle


def test_the_first_plan_waits_for_nodes_then_grows_as_they_join_and_never_shrinks():
    from actrec_batch.pipeline.ray_capacity import first_plan, replan

    s = _elastic_settings()
    # the head alone, then one GPU node (2 CPUs), then a second one and a decode node
    sizes = Sizes((0.0, 0.0, 1), (0.0, 0.0, 1), (2.0, 1.0, 2))
    res = first_plan(s, sizes, 60.0, clock=lambda: sizes.now, sleep=sizes.sleep)
    assert (res.actors, res.decode_slots, res.max_inflight_units) == (1, 1, 6) and sizes.now == 2.0
    res, cap = replan(s, res, lambda: (6.0, 2.0, 4))
    assert cap == Capacity(actors=2, decode_slots=4, max_inflight_units=6, cpus=6.0, gpus=2.0, nodes=4)
    res, cap = replan(s, res, lambda: (4.0, 1.0, 3))  # a spot node lost: the plan stands
    assert (cap.actors, cap.decode_slots, cap.nodes) == (2, 4, 3)


def test_the_first_plan_names_the_setting_when_no_node_comes():
    from actrec_batch.errors import ConfigError
    from actrec_batch.pipeline.ray_capacity import first_plan

    sizes = Sizes((0.0, 0.0, 1))
    with pytest.raises(ConfigError, match=r"0 GPUs \(after waiting 5 s for the autoscaler\)\. Fix: use 0"):
        first_plan(_elastic_settings(), sizes, 5.0, clock=lambda: sizes.now, sleep=sizes.sleep)
    with pytest.raises(ConfigError, match="the Ray cluster has 0 GPUs. Fix"):  # no wait: at once
        first_plan(_elastic_settings(), sizes, 0.0, clock=lambda: sizes.now, sleep=sizes.sleep)
