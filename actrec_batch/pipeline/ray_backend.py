"""Everything that talks to Ray: connecting, sizing, and the task and actor wrappers.

* Indexing and decoding are CPU tasks (``decode_cpus`` each) with ``max_retries``: when a worker
  process dies (a native crash in a decoder) or its node goes away (a spot instance reclaimed),
  Ray runs the task again elsewhere. Video errors come back as values and are never retried.
* Inference is a pool of :class:`~actrec_batch.pipeline.work.Embedder` actors, one per GPU
  (``actor_gpus``, fractions allowed) or CPU actors when the cluster has no GPU; ``max_restarts``
  and ``max_task_retries`` bring an actor back on another node and replay the call in flight.

Sizes come from settings, never from code: see :func:`~actrec_batch.pipeline.ray_capacity.plan_resources`.
On a cluster it connects to (an autoscaling one), the run asks for what it needs and its pool and
decode slots grow as nodes join (:mod:`~actrec_batch.pipeline.ray_capacity`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from actrec_batch.config import Settings
from actrec_batch.errors import QuarantineReason
from actrec_batch.pipeline import ray_capacity
from actrec_batch.pipeline.messages import ActorLost, CallFailed, Capacity
from actrec_batch.pipeline.node_times import NodeTimes
from actrec_batch.pipeline.ray_capacity import Resources, plan_resources  # noqa: F401 - re-exported
from actrec_batch.pipeline.ray_connect import check_driver_address, connect, disconnect  # noqa: F401 - re-exported
from actrec_batch.pipeline.stages.decode import decode_threads
from actrec_batch.pipeline.stages.embed import placement
from actrec_batch.pipeline.work import Embedder, Failure, decode_unit, failure_of, index_video

log = logging.getLogger(__name__)

MAX_CALLS_PER_ACTOR = 2  # calls queued on one actor: one running, one ready behind it


def cluster_size() -> tuple[float, float, int]:
    """(CPUs, GPUs, alive nodes) of the connected Ray cluster now."""
    import ray

    total = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return float(total.get("CPU", 0)), float(total.get("GPU", 0)), nodes


def ask(bundles: list[dict[str, float]]) -> None:
    """Set the run's standing request to the autoscaler (an empty list withdraws it)."""
    from ray.autoscaler.sdk import request_resources

    try:
        request_resources(bundles=bundles) if bundles else request_resources(num_cpus=0)
    except Exception as exc:  # noqa: BLE001 - a cluster without an autoscaler: nothing to ask
        log.debug("request_resources: %s", exc)


class RayBackend:
    """Submits index and decode tasks and embed calls; owns the actor pool."""

    def __init__(
        self,
        settings: Settings,
        model_ref: str,
        store_uri: str,
        sampling: dict[str, Any],
        run_id: str = "run",
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.model_ref = model_ref
        self.store_uri = store_uri
        self.sampling = sampling
        self.started_ray = False
        self.lost_wait_s = 0.0  # on an autoscaling cluster: while the autoscaler replaces a lost node
        self.actors: list[Any] = []
        self.calls: list[int] = []
        self.generation: list[int] = []
        self.res: Resources | None = None
        self.capacities: list[Capacity] = []  # the cluster at the start, the first plan, then each change
        self.asked: list[dict[str, float]] = []  # the standing request to the autoscaler
        self.node_times = NodeTimes()  # when each node joined and left during the run (what is billed)

    def start(self) -> Resources:
        """Connect, ask the autoscaler for what the run needs (on a cluster it connects to), and
        start the embedders that fit the cluster now; :meth:`capacity` grows the pool later."""
        self.started_ray = connect(self.settings)
        self.observe_nodes()
        cpus, gpus, nodes = cluster_size()
        self.capacities = [Capacity(0, 0, 0, cpus, gpus, nodes)]  # the cluster as the run found it
        elastic = not self.started_ray
        if elastic:
            self.asked = ray_capacity.wanted_bundles(self.settings, gpus)
            ask(self.asked)
        wait_s = ray_capacity.NODE_WAIT_S if elastic else 0.0
        self.lost_wait_s = wait_s
        self.res = r = ray_capacity.first_plan(self.settings, cluster_size, wait_s)
        self.capacities.append(ray_capacity.capacity_of(r, cluster_size()[2]))
        self._start_pool(r)
        log.info(
            "ray: %g CPUs, %g GPUs; %d inference actor(s) x (%g CPU, %g GPU); %d decode slots of %g CPU; "
            "at most %d units in flight",
            r.cluster_cpus,
            r.cluster_gpus,
            r.actors,
            r.actor_cpus,
            r.actor_gpus,
            r.decode_slots,
            r.decode_cpus,
            r.max_inflight_units,
        )
        return r

    def _start_pool(self, r: Resources) -> None:
        import ray

        self._index = ray.remote(index_video).options(num_cpus=r.decode_cpus, max_retries=r.retries)
        self._decode = ray.remote(decode_unit).options(
            num_cpus=r.decode_cpus, max_retries=r.retries, num_returns=2
        )
        actor_cls = ray.remote(Embedder)
        actor_opts = {
            "num_cpus": r.actor_cpus,
            "num_gpus": r.actor_gpus,
            "max_restarts": r.retries,
            "max_task_retries": r.retries,
        }
        device, threads = placement(r.actor_gpus, r.actor_cpus)
        self._made = 0

        def new_actor():
            self._made += 1  # named, so operators (and the preemption test) can find it: ray.get_actor(name)
            name = f"actrec-embedder-{self.run_id}-{self._made}"
            opts = {**actor_opts, "name": name}
            return actor_cls.options(**opts).remote(self.model_ref, self.settings.store, device, threads)

        self._new_actor = new_actor
        self._grow_pool(r.actors)

    def _grow_pool(self, actors: int) -> None:
        while len(self.actors) < actors:
            self.actors.append(self._new_actor())
            self.calls.append(0)
            self.generation.append(0)

    def capacity(self) -> Capacity | None:
        """Re-plan from the cluster's size now (on a cluster the run connected to): new embedders
        join the pool as GPUs join. None when nothing changed. Also notes which nodes are up
        (:meth:`observe_nodes`)."""
        self.observe_nodes()
        if self.started_ray or self.res is None:
            return None
        self.res, cap = ray_capacity.replan(self.settings, self.res, cluster_size)
        if cap == self.capacities[-1]:
            return None
        self._grow_pool(cap.actors)
        self.capacities.append(cap)
        return cap

    def index(self, video: dict[str, Any]):
        return self._index.remote(self.store_uri, video["key"], video["uri"], float(video["duration_s"]))

    def decode(self, spec, index_ref):
        threads = decode_threads(self.res.decode_cpus)
        return self._decode.remote(self.store_uri, spec, index_ref, self.sampling, threads)

    def free_actor(self, avoid: frozenset[int] = frozenset()) -> int | None:
        """The least busy actor with room for another call, or None; one in ``avoid`` (lost a
        moment ago: calls would queue until it is back) only when every actor is."""
        pool = [i for i in range(len(self.actors)) if i not in avoid] or range(len(self.actors))
        best = min(pool, key=lambda i: self.calls[i], default=None)
        if best is None or self.calls[best] >= MAX_CALLS_PER_ACTOR:
            return None
        return best

    def embed(self, actor: int, units: list, frame_refs: list) -> tuple[Any, int]:
        """Submit an embed call; returns (ref, generation of the actor in that slot)."""
        self.calls[actor] += 1
        return self.actors[actor].embed.remote(units, frame_refs), self.generation[actor]

    def embed_done(self, actor: int, generation: int) -> None:
        if generation == self.generation[actor]:  # a late answer from a replaced actor frees nothing
            self.calls[actor] -= 1

    def replace_actor(self, actor: int, generation: int) -> None:
        """A fresh actor in place of one that died past its restarts, unless that already happened
        (another call of the same dead actor reported first). The dead actor's usage is lost."""
        import ray

        if generation != self.generation[actor]:
            return
        with contextlib.suppress(Exception):
            ray.kill(self.actors[actor])
        self.actors[actor] = self._new_actor()
        self.calls[actor] = 0
        self.generation[actor] += 1

    def actor_usage(self) -> list[dict[str, Any]]:
        import ray

        out = []
        for a in self.actors:
            try:
                out.append(ray.get(a.usage.remote(), timeout=30))
            except Exception as exc:  # noqa: BLE001 - a lost actor has no usage to report
                out.append({"error": type(exc).__name__})
        return out

    def observe_nodes(self) -> None:
        """Note the cluster's nodes now (the scheduler re-plans every 2 s, so join and leave times
        are known to about that)."""
        import ray

        self.node_times.observe(ray.nodes(), time.monotonic())

    def nodes(self) -> list[dict[str, Any]]:
        """Every node seen during the run (:class:`~actrec_batch.pipeline.node_times.NodeTimes`)."""
        self.observe_nodes()
        return self.node_times.to_json(time.monotonic())

    def wait(self, refs: list, timeout: float) -> list:
        """The first of ``refs`` to finish within ``timeout`` seconds (or none)."""
        import ray

        done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        return done

    def task_result(self, ref, uri: str):
        """An index or decode task's result; a Failure when its worker died past its retries."""
        import ray

        try:
            return ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the worker died past its retries
            return self.failure(exc, uri, QuarantineReason.DECODE_ERROR)

    def embed_result(self, ref) -> list | ActorLost | CallFailed:
        """An embed call's units, or why it has none: its actor is unavailable, or the call raised."""
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            why = " ".join(str(exc).split())[:240]  # e.g. the death's cause: a lost node, a failed creation
            dead = isinstance(exc, ray.exceptions.ActorDiedError)
            return ActorLost(f"{type(exc).__name__}: {why}", dead=dead)
        except Exception as exc:  # noqa: BLE001 - the scheduler splits the batch
            return CallFailed(exc)

    def failure(self, exc: Exception, uri: str, default: str) -> Failure:
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
        return failure_of(exc, uri, default)

    def cancel(self, ref) -> None:
        import ray

        try:
            ray.cancel(ref, force=True)
        except Exception as exc:  # noqa: BLE001 - already finished or gone
            log.debug("cancel %s: %s", ref, exc)

    def stop(self) -> None:
        import ray

        for a in self.actors:
            with contextlib.suppress(Exception):  # already dead
                ray.kill(a)
        self.actors = []
        if self.asked:  # withdrawn, so idle nodes scale down
            ask([])
        disconnect(self.started_ray)
