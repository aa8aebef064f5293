"""The Ray runner: everything of a run that touches Ray. It starts the cluster connection and the
embedder pool (:class:`~actrec_batch.pipeline.ray_backend.RayBackend`) and drives them with the
:class:`~actrec_batch.pipeline.scheduler.Scheduler` (decode slots, batches, the in-flight cap,
retries and unit timeouts); the resource plan, actor usage and nodes go into the run's metrics.

On an autoscaling cluster the plan grows as nodes join: ``capacity`` in the metrics lists the
cluster as the run found it, the first plan, and each change (actors, decode slots, nodes)."""

from __future__ import annotations

from actrec_batch.config import Settings
from actrec_batch.pipeline.ray_backend import RayBackend, check_driver_address
from actrec_batch.pipeline.runners import progress_of
from actrec_batch.pipeline.scheduler import Scheduler
from actrec_batch.pipeline.state import JobState
from actrec_batch.pipeline.work import UnitSpec


class RayRunner:
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check(self) -> None:
        check_driver_address(self.settings)

    def compute(self, state: JobState, todo: list[UnitSpec]) -> None:
        backend = RayBackend(
            self.settings,
            state.spec.model_ref,
            state.store.root_uri,
            state.model.card.decode_sampling(),
            state.spec.run_id,
        )
        resources = state.result.resources
        state.result.ray_used = True
        try:
            res = backend.start()
            resources["ray_started_locally"] = backend.started_ray  # no cluster: priced as configured
            resources["plan"] = res.to_json()
            scheduler = Scheduler(
                state,
                backend,
                todo,
                res,
                timeout_s=self.settings.unit_timeout_s,
                clip_hop=state.clip_hop,
                progress=progress_of(state, todo),
            )
            scheduler.run()
            resources["peak_units_inflight"] = scheduler.peak_units_inflight
            resources["resubmitted"] = scheduler.resubmitted
            resources["actors"] = backend.actor_usage()
            resources["nodes"] = backend.nodes()
        finally:
            resources["capacity"] = [c.to_json() for c in backend.capacities]
            backend.stop()
