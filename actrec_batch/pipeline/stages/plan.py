"""Plan units: the manifest's videos (narrowed to the run's cameras and keys) cut into units of at
most ``segment_s`` seconds; then what checkpoints and the feature cache already hold.

A unit with a checkpoint marker for this (date, model, segmenting) is skipped
(``units_skipped_checkpoint``); otherwise a feature-cache entry for its content, segment, extractor
and sampling is reused (``cache_hits``). Damaged entries are recomputed. The rest is left to compute.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from actrec_batch import layout
from actrec_batch.errors import ActrecError, StorageError
from actrec_batch.manifest import read_manifest
from actrec_batch.model.features import SegmentFeatures
from actrec_batch.pipeline.cache import segment_name
from actrec_batch.pipeline.stages import Stage
from actrec_batch.pipeline.state import JobState
from actrec_batch.pipeline.work import UnitSpec

LOOKUP_THREADS = 8


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


class PlanStage(Stage):
    """``process()`` fills the state's videos and units and returns the units left to compute."""

    def __init__(self, state: JobState) -> None:
        self.state = state

    def process(self) -> list[UnitSpec]:
        self._plan()
        return self._resume()

    def _plan(self) -> None:
        state, spec = self.state, self.state.spec
        try:
            manifest = read_manifest(state.store, spec.date).to_pylist()
        except StorageError as exc:
            if exc.reason != "not_found":
                raise
            raise ActrecError(
                f"no manifest for {spec.date} in {state.store.uri(layout.manifest_key(spec.date))}: "
                f"run `actrec discover --date {spec.date}` first (or `actrec infer --discover`)",
                reason="no_manifest",
            ) from None
        if spec.cameras:
            manifest = [r for r in manifest if r["camera_id"] in spec.cameras]
        if spec.video_keys:
            keys = frozenset(spec.video_keys)
            manifest = [r for r in manifest if r["key"] in keys]
        for row in manifest:
            state.videos[row["video_id"]] = row
            state.units[row["video_id"]] = plan_units(row, state.settings.segment_s)
        state.result.videos = len(manifest)
        state.result.units_total = sum(len(u) for u in state.units.values())

    def _resume(self) -> list[UnitSpec]:
        """Load what checkpoints and the cache already hold; return the units left to compute."""
        state, force = self.state, self.state.spec.force
        if force:  # only this run's videos: a --camera run leaves the other cameras' markers
            state.checkpoints.clear(list(state.units))
        committed = set() if force else state.checkpoints.committed()
        specs = [u for units in state.units.values() for u in units]

        def lookup(spec: UnitSpec) -> tuple[UnitSpec, bool, SegmentFeatures | None]:
            if force:  # recompute: neither markers nor the cache are read
                return spec, False, None
            marker = state.checkpoints.key(spec.video_id, spec.content_id, spec.segment) in committed
            return spec, marker, state.cache.get(state.cache.key(spec.content_id, spec.segment))

        todo = []
        with ThreadPoolExecutor(max_workers=LOOKUP_THREADS) as pool:
            for spec, marker, feats in pool.map(lookup, specs):
                if feats is None:
                    todo.append(spec)
                    continue
                state.features[(spec.video_id, spec.index)] = feats
                if marker:
                    state.result.units_skipped_checkpoint += 1
                else:
                    state.result.cache_hits += 1
                    state.commit_marker(spec, {"source": "cache"})
        state.result.cache_misses = len(todo)
        state.result.cache_corrupt = state.cache.corrupt
        return todo
