"""Runners: what drives the decode and embed stages over a run's units.

* :class:`LocalRunner` runs them in this process, one unit after another (tests, ``--runner local``).
  It enforces no unit timeout: nothing in a process can stop a hung decoder.
* :class:`~actrec_batch.pipeline.runner_ray.RayRunner` runs them on Ray: decode tasks, a pool of
  embedder actors, retries, timeouts (the ``runner`` setting's default, ``ray``).

Both place the embedder alike (:func:`~actrec_batch.pipeline.stages.embed.placement`) and hand
each unit to :class:`~actrec_batch.pipeline.state.JobState`, so they produce the same events.
"""

from __future__ import annotations

import os
from typing import Protocol

from actrec_batch.config import Settings
from actrec_batch.errors import QuarantineReason
from actrec_batch.pipeline.progress import Progress
from actrec_batch.pipeline.stages import running
from actrec_batch.pipeline.stages.decode import DecodeStage
from actrec_batch.pipeline.stages.embed import EmbedStage, placement, resolve_cpus, resolve_gpus
from actrec_batch.pipeline.state import JobState
from actrec_batch.pipeline.work import Failure, UnitSpec, failure_of


class Runner(Protocol):
    name: str

    def check(self) -> None:
        """Refuse a setting this runner cannot work with, before any work."""

    def compute(self, state: JobState, todo: list[UnitSpec]) -> None:
        """Decode and embed ``todo``; each unit ends in ``state`` (features, or its video failed)."""


def make_runner(settings: Settings) -> Runner:
    """The runner the ``runner`` setting names."""
    if settings.runner == "local":
        return LocalRunner(settings)
    from actrec_batch.pipeline.runner_ray import RayRunner

    return RayRunner(settings)


def progress_of(state: JobState, todo: list[UnitSpec]) -> Progress:
    seconds = sum(s.end_s - s.start_s for s in todo)
    return Progress(state.spec.date, len(todo), seconds, state.progress)


class LocalRunner:
    """The decode and embed stages in this process, unit by unit."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check(self) -> None:
        pass

    def embed_stage(self, state: JobState) -> EmbedStage:
        import torch

        gpus = resolve_gpus(self.settings.actor_gpus, float(torch.cuda.device_count()))
        device, threads = placement(gpus, resolve_cpus(self.settings.actor_cpus, gpus))
        return EmbedStage(state.spec.model_ref, self.settings.store, device, threads)

    def compute(self, state: JobState, todo: list[UnitSpec]) -> None:
        by_video: dict[str, list[UnitSpec]] = {}
        for spec in todo:
            by_video.setdefault(spec.video_id, []).append(spec)
        # One unit at a time here, nothing else decoding: the decoder gets a thread per core
        # (FFmpeg's frame threads give the same frames; 1080p night: 50.5 s -> 43.0 s on 2 cores).
        decode = DecodeStage(
            state.store.root_uri, state.model.card.decode_sampling(), float(os.cpu_count() or 1)
        )
        embed = self.embed_stage(state)
        progress = progress_of(state, todo)
        try:
            with running(decode, embed):
                for video_id, specs in by_video.items():
                    self._video(state, decode, embed, video_id, specs, progress)
        finally:
            progress.close()

    def _video(self, state, decode, embed, video_id: str, specs: list[UnitSpec], progress: Progress) -> None:
        index = decode.index(state.videos[video_id])
        if isinstance(index, Failure):
            state.fail_video(video_id, index)
            progress.advance(len(specs), 0.0)
            return
        state.index_done(video_id, index)
        for spec in specs:
            if video_id in state.failed:
                progress.advance(1, 0.0)
                continue
            unit, frames = decode.process(spec, index)
            if isinstance(unit, Failure):
                state.fail_video(video_id, unit)
                progress.advance(1, 0.0)
                continue
            try:
                (out,) = embed.process([unit], [frames])
            except Exception as exc:  # noqa: BLE001 - quarantined as the Ray runner does a unit that fails alone
                state.fail_video(video_id, failure_of(exc, spec.uri, QuarantineReason.INFER_ERROR))
                out = None
            state.embedded(unit, out)
            progress.advance(1, spec.end_s - spec.start_s)
