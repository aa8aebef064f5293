"""Everything that talks to Ray: connecting, sizing, and the task and actor wrappers.

* Indexing and decoding are CPU tasks (``decode_cpus`` each) with ``max_retries``: when a worker
  process dies (a native crash in a decoder) or its node goes away (a spot instance reclaimed),
  Ray runs the task again elsewhere. Video errors come back as values and are never retried.
* Inference is a pool of :class:`~actrec_batch.pipeline.work.Embedder` actors, one per GPU
  (``actor_gpus``, fractions allowed) or CPU actors when the cluster has no GPU; ``max_restarts``
  and ``max_task_retries`` bring an actor back on another node and replay the call in flight.

Sizes come from settings, never from code: see :func:`plan_resources`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from actrec_batch.config import Settings
from actrec_batch.errors import ConfigError, QuarantineReason
from actrec_batch.pipeline.messages import ActorLost, CallFailed
from actrec_batch.pipeline.stages.decode import decode_threads
from actrec_batch.pipeline.stages.embed import placement, resolve_cpus, resolve_gpus
from actrec_batch.pipeline.work import FAULT_ENV, Embedder, Failure, decode_unit, failure_of, index_video

log = logging.getLogger(__name__)

MAX_CALLS_PER_ACTOR = 2  # calls queued on one actor: one running, one ready behind it


@dataclass(frozen=True)
class Resources:
    """How a run uses the cluster (all from settings and the cluster's size)."""

    cluster_cpus: float
    cluster_gpus: float
    actors: int
    actor_cpus: float
    actor_gpus: float
    decode_cpus: float
    decode_slots: int  # decode/index tasks in flight
    max_inflight_units: int  # units decoding, decoded or being embedded (bounds memory)
    batch_frames: int
    retries: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan_resources(settings: Settings, cluster_cpus: float, cluster_gpus: float) -> Resources:
    """Size the actor pool and the decode fan-out. Raises ConfigError when they cannot fit."""
    gpus = resolve_gpus(settings.actor_gpus, cluster_gpus)
    if gpus > 0 and cluster_gpus < gpus:
        raise ConfigError(
            f"bad setting actor_gpus = {gpus:g} (--actor-gpus / ACTREC_ACTOR_GPUS): the Ray cluster has "
            f"{cluster_gpus:g} GPUs. Fix: use 0 for CPU actors, or auto"
        )
    actors = settings.inference_actors
    if actors == 0:
        actors = max(1, int(cluster_gpus // gpus)) if gpus > 0 else max(1, int(cluster_cpus // 8))
    actor_cpus = resolve_cpus(settings.actor_cpus, gpus)
    left = cluster_cpus - actors * actor_cpus
    if left < settings.decode_cpus:
        raise ConfigError(
            f"bad setting actor_cpus = {actor_cpus:g} (--actor-cpus / ACTREC_ACTOR_CPUS): {actors} actors "
            f"x {actor_cpus:g} CPUs leave {left:g} of the cluster's {cluster_cpus:g} CPUs, less than one "
            f"decode task's {settings.decode_cpus:g}. Fix: lower --actor-cpus, --inference-actors or "
            "--decode-cpus, or add CPUs"
        )
    slots = max(1, int(left // settings.decode_cpus))
    inflight = settings.max_inflight_units or slots + actors
    return Resources(
        cluster_cpus=cluster_cpus,
        cluster_gpus=cluster_gpus,
        actors=actors,
        actor_cpus=actor_cpus,
        actor_gpus=gpus,
        decode_cpus=settings.decode_cpus,
        decode_slots=slots,
        max_inflight_units=max(1, inflight),
        batch_frames=settings.batch_frames,
        retries=settings.task_retries,
    )


def check_driver_address(settings: Settings) -> None:
    """A driver cannot connect to a Jobs API address (http://host:8265): say so before any work."""
    address = settings.ray_address
    if address and address.startswith(("http://", "https://")):
        raise ConfigError(
            f"bad setting ray_address = {address!r} (--ray-address / ACTREC_RAY_ADDRESS): that is a Ray Jobs "
            "API address, which `ray job submit` and the Airflow task use. Fix: for a driver, use 'auto' "
            "or ray://host:10001"
        )


def connect(settings: Settings) -> bool:
    """Connect to (or start) Ray. Returns True when this call started a local Ray that
    :func:`disconnect` should stop.

    ``ACTREC_RAY_ADDRESS`` wins; otherwise ``RAY_ADDRESS`` (set by ``ray job submit``) is used; with
    neither, a local Ray starts on 127.0.0.1.
    """
    import ray

    if ray.is_initialized():
        return False
    check_driver_address(settings)
    address = settings.ray_address
    env = {k: os.environ[k] for k in FAULT_ENV if os.environ.get(k)}
    kwargs: dict[str, Any] = {
        "namespace": "actrec",
        "logging_level": logging.WARNING,
        "log_to_driver": True,
    }
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    started = False
    try:
        if address and address != "local":
            ray.init(address=address, **kwargs)
        elif os.environ.get("RAY_ADDRESS"):
            ray.init(**kwargs)  # inside `ray job submit`: RAY_ADDRESS names the cluster
        else:
            if settings.local_ray_cpus:
                kwargs["num_cpus"] = settings.local_ray_cpus
            # address="local": always a new Ray of our own. Without it, ray.init() joins whatever cluster
            # /tmp/ray/ray_current_cluster names (another `ray start` on the same host).
            ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, **kwargs)
            started = True
    except ConnectionError as exc:
        raise ConfigError(
            f"bad setting ray_address = {address!r} (--ray-address / ACTREC_RAY_ADDRESS): cannot connect "
            f"({' '.join(str(exc).split())[:200]}). Fix: start the cluster (if it uses token authentication, "
            "set RAY_AUTH_MODE=token and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN), or unset it for a local Ray"
        ) from None
    log.info(
        "ray: %s", "started locally on 127.0.0.1" if started else f"connected to {address or 'RAY_ADDRESS'}"
    )
    return started


def disconnect(started: bool) -> None:
    import ray

    if started and ray.is_initialized():
        ray.shutdown()


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
        self.actors: list[Any] = []
        self.calls: list[int] = []
        self.res: Resources | None = None

    def start(self) -> Resources:
        import ray

        self.started_ray = connect(self.settings)
        total = ray.cluster_resources()
        self.res = plan_resources(self.settings, float(total.get("CPU", 0)), float(total.get("GPU", 0)))
        r = self.res
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
        self.actors = [self._new_actor() for _ in range(r.actors)]
        self.calls = [0] * r.actors
        self.generation = [0] * r.actors
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

    def index(self, video: dict[str, Any]):
        return self._index.remote(self.store_uri, video["key"], video["uri"], float(video["duration_s"]))

    def decode(self, spec, index_ref):
        threads = decode_threads(self.res.decode_cpus)
        return self._decode.remote(self.store_uri, spec, index_ref, self.sampling, threads)

    def free_actor(self) -> int | None:
        """The least busy actor with room for another call, or None."""
        best = min(range(len(self.actors)), key=lambda i: self.calls[i], default=None)
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

    def nodes(self) -> list[dict[str, Any]]:
        import ray

        return [
            {
                "node_id": n["NodeID"],
                "alive": bool(n["Alive"]),
                "address": n.get("NodeManagerAddress"),
                "resources": {k: v for k, v in n.get("Resources", {}).items() if not k.startswith("node:")},
                # a node started with the custom resource "spot" is billed at the spot price
                "market": "spot" if "spot" in n.get("Resources", {}) else "on_demand",
            }
            for n in ray.nodes()
        ]

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
            return ActorLost(type(exc).__name__, dead=isinstance(exc, ray.exceptions.ActorDiedError))
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
        disconnect(self.started_ray)
