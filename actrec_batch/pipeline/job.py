"""The inference job of one logical date: manifest -> work units -> features -> events.

Stages (:mod:`actrec_batch.pipeline.stages`), in the order :meth:`InferenceJob.run` runs them:

1. **plan**: read the manifest, cut every video into units of at most ``segment_s`` seconds, and
   take what checkpoints and the feature cache already hold (``units_skipped_checkpoint``,
   ``cache_hits``; damaged entries are recomputed).
2. **decode** and 3. **embed** (only if a unit is left, so a rescore over cached features never
   starts Ray), driven by the run's runner (:mod:`actrec_batch.pipeline.runners`): Ray by default,
   or this process (``runner = local``). Each finished unit is written to the cache, then
   committed (marker). On Ray at most ``max_inflight_units`` units are in memory at once.
4. **assemble**: per camera chain, the head over the concatenated segments and the event
   post-processing over the whole chain, so an action across a cut is one event.
5. **write**: the run's events to its staging area, quarantine records (stage ``infer``), then
   its reports, ``metrics.json`` (per unit, per resource) and ``infer.json``.

:meth:`InferenceJob.embed` runs steps 1 to 3 alone: ``actrec train-head`` fills the feature cache
with it, exactly as a run would, and reads the embeddings back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from actrec_batch.config import Settings
from actrec_batch.model.features import SegmentFeatures
from actrec_batch.pipeline.cache import Checkpoints, FeatureCache
from actrec_batch.pipeline.result import JobResult, resource_ledger
from actrec_batch.pipeline.runners import Runner, make_runner
from actrec_batch.pipeline.spec import RunSpec, new_run_id
from actrec_batch.pipeline.stages.assemble import STAGE, AssembleStage, clip_hop_s
from actrec_batch.pipeline.stages.plan import PlanStage, plan_units
from actrec_batch.pipeline.stages.write import ReportStage, WriteStage
from actrec_batch.pipeline.state import JobState
from actrec_batch.pipeline.work import Failure, UnitSpec
from actrec_batch.reconcile import reconcile
from actrec_batch.storage import ObjectStore, open_store
from actrec_batch.storage.io_counts import IO, io_delta

__all__ = [
    "STAGE",
    "InferenceJob",
    "JobResult",
    "RunSpec",
    "clip_hop_s",
    "new_run_id",
    "plan_units",
    "resource_ledger",
]

log = logging.getLogger(__name__)


class InferenceJob:
    """One run's inference (``spec``: its date, model, cameras...). Build it, then call
    :meth:`run` once (or :meth:`embed`, for the features alone)."""

    def __init__(
        self,
        settings: Settings,
        spec: RunSpec,
        *,
        store: ObjectStore | None = None,
        progress: bool = False,
        runner: Runner | None = None,
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.store = store or open_store(settings.store)
        self.progress = progress
        self.runner = runner or make_runner(settings)
        self.state: JobState | None = None

    # What callers read back after embed() or run().
    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def date(self):
        return self.spec.date

    @property
    def model(self) -> Any:
        return self._state.model

    @property
    def result(self) -> JobResult:
        return self._state.result

    @property
    def failed(self) -> dict[str, Failure]:
        return self._state.failed

    @property
    def videos(self) -> dict[str, dict[str, Any]]:
        return self._state.videos

    @property
    def units(self) -> dict[str, list[UnitSpec]]:
        return self._state.units

    @property
    def _state(self) -> JobState:
        if self.state is None:
            raise RuntimeError("InferenceJob: call run() or embed() first")
        return self.state

    def run(self) -> JobResult:
        t0, io0 = time.perf_counter(), IO.snapshot()
        self.embed()
        state = self._state
        rows = AssembleStage(state).process()
        WriteStage(state).process(rows)
        state.result.wall_s = time.perf_counter() - t0
        # this process's store traffic (Ray workers' own is theirs: storage.io_counts)
        state.result.io = io_delta(io0)
        self.write_reports()
        r = state.result
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

    def write_reports(self) -> None:
        """The run's ``metrics.json`` and ``infer.json`` (the run records)."""
        ReportStage(self._state).process()

    def embed(self, *, head: bool = True) -> dict[str, list[SegmentFeatures]]:
        """Steps 1 to 3 only (plan, decode, embed): every unit's features, in the cache and in the
        state. Decodes only the units that neither a checkpoint nor the cache holds.
        ``head=False``: the model may be a backbone bundle without a head (``actrec train-head``).

        Returns the segment features, in clip order, of each video (by ``video_id``) that did not
        fail; ``self.failed`` has the others with their reasons, ``self.result`` the counters.
        """
        self.runner.check()
        state = self.state = self._open(head)
        todo = PlanStage(state).process()
        if todo:
            self.runner.compute(state, todo)
        return {
            video_id: [state.features[(video_id, u.index)] for u in units]
            for video_id, units in state.units.items()
            if video_id not in state.failed
        }

    def _open(self, head: bool) -> JobState:
        from actrec_batch.model import load_extractor, load_model

        load = load_model if head else load_extractor
        model = load(self.spec.model_ref, store_uri=self.settings.store, device="cpu")
        card = model.card
        return JobState(
            settings=self.settings,
            spec=self.spec,
            store=self.store,
            model=model,
            cache=FeatureCache.for_model(self.store, card),
            checkpoints=Checkpoints.for_run(self.store, self.date, card, self.settings.segment_s),
            result=JobResult(self.run_id, self.date, card.model_id),
            progress=self.progress,
        )
