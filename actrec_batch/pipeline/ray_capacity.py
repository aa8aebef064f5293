"""How a Ray run sizes itself: the resource plan, from settings and the cluster's size, and its
growth on an autoscaling cluster.

* :func:`plan_resources` sizes the actor pool and the decode fan-out for the cluster as it is.
* On a cluster the run connects to, the run asks the autoscaler for what it needs
  (:func:`wanted_bundles`: ``--inference-actors`` embedders and their decode slots, through
  ``ray.autoscaler.sdk.request_resources``), waits for the first nodes that fit one embedder and one
  decode task (:func:`first_plan`), then re-plans as nodes join (:func:`replan`): the pool and the
  decode slots only grow, up to the settings; a lost node's work is retried by Ray, and the run's
  standing request makes the autoscaler replace the node.
* When the run ends it withdraws its request, so idle nodes scale down.

Ray-free: the cluster's size comes in as a function (``size() -> (CPUs, GPUs, alive nodes)``, from
:mod:`~actrec_batch.pipeline.ray_backend`), so the planning is tested without a cluster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from actrec_batch.config import Settings
from actrec_batch.errors import ConfigError
from actrec_batch.pipeline.messages import Capacity
from actrec_batch.pipeline.stages.embed import resolve_cpus, resolve_gpus

log = logging.getLogger(__name__)

NODE_WAIT_S = 900.0  # how long a run waits for an autoscaling cluster's first nodes (spot GPUs take minutes)
POLL_S = 1.0
Size = Callable[[], tuple[float, float, int]]  # the cluster's (CPUs, GPUs, alive nodes) now


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


def plan_resources(
    settings: Settings, cluster_cpus: float, cluster_gpus: float, *, elastic: bool = False
) -> Resources:
    """Size the actor pool and the decode fan-out. Raises ConfigError when they cannot fit.
    ``elastic``: GPU embedders are as many as the GPUs up now hold, up to ``--inference-actors``
    (more join the pool as GPUs join); otherwise all of them, placed as GPUs free up."""
    gpus = resolve_gpus(settings.actor_gpus, cluster_gpus)
    if gpus > 0 and cluster_gpus < gpus:
        raise ConfigError(
            f"bad setting actor_gpus = {gpus:g} (--actor-gpus / ACTREC_ACTOR_GPUS): the Ray cluster has "
            f"{cluster_gpus:g} GPUs. Fix: use 0 for CPU actors, or auto"
        )
    actors = settings.inference_actors
    if actors == 0:
        actors = max(1, int(cluster_gpus // gpus)) if gpus > 0 else max(1, int(cluster_cpus // 8))
    elif elastic and gpus > 0:
        actors = min(actors, int(cluster_gpus // gpus))
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


def wanted_bundles(settings: Settings, cluster_gpus: float) -> list[dict[str, float]]:
    """What the run asks the autoscaler for: ``--inference-actors`` embedders (one with ``auto``),
    each with its GPUs and CPUs, and one decode slot per embedder, or as many as
    ``--max-inflight-units`` leaves beside them."""
    gpus = resolve_gpus(settings.actor_gpus, cluster_gpus)
    actor = {"CPU": resolve_cpus(settings.actor_cpus, gpus), "GPU": gpus}
    actors = settings.inference_actors or 1
    slots = max(1, settings.max_inflight_units - actors) if settings.max_inflight_units else actors
    bundle = {k: v for k, v in actor.items() if v > 0}
    return [bundle] * (actors if bundle else 0) + [{"CPU": settings.decode_cpus}] * slots


def first_plan(
    settings: Settings,
    size: Size,
    wait_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Resources:
    """The plan for the cluster as soon as it fits one embedder and one decode task, waiting up to
    ``wait_s`` seconds for an autoscaling cluster's nodes; past that, the plan's error stands."""
    deadline = clock() + wait_s
    waited = False
    while True:
        cpus, gpus, nodes = size()
        try:
            res = plan_resources(settings, cpus, gpus, elastic=True)
        except ConfigError as exc:
            if clock() >= deadline:
                if waited:
                    waited_s = f" (after waiting {wait_s:g} s for the autoscaler). Fix:"
                    raise ConfigError(str(exc).replace(". Fix:", waited_s, 1)) from None
                raise
            if not waited:
                log.info(
                    "ray: %g CPUs, %g GPUs on %d node(s) do not fit the run yet; waiting up to %g s for "
                    "the autoscaler (%s)",
                    cpus,
                    gpus,
                    nodes,
                    wait_s,
                    exc,
                )
            waited = True
            sleep(POLL_S)
            continue
        return res


def replan(settings: Settings, res: Resources, size: Size) -> tuple[Resources, Capacity]:
    """``res`` grown to the cluster's size now: more embedders (same shape, up to the settings)
    and decode slots as nodes joined; never fewer (a lost node's work waits for its replacement)."""
    cpus, gpus, nodes = size()
    actors, slots = res.actors, res.decode_slots
    try:
        now = plan_resources(settings, cpus, gpus, elastic=True)
    except ConfigError:  # fewer nodes than at the start (a spot reclaim): keep the plan
        now = None
    if now is not None and now.actor_gpus == res.actor_gpus:
        actors = max(actors, now.actors)
        slots = max(slots, int((cpus - actors * res.actor_cpus) // res.decode_cpus))
    inflight = settings.max_inflight_units or slots + actors
    grown = replace(
        res,
        cluster_cpus=cpus,
        cluster_gpus=gpus,
        actors=actors,
        decode_slots=slots,
        max_inflight_units=inflight,
    )
    return grown, capacity_of(grown, nodes)


def capacity_of(res: Resources, nodes: int) -> Capacity:
    return Capacity(
        res.actors, res.decode_slots, res.max_inflight_units, res.cluster_cpus, res.cluster_gpus, nodes
    )
