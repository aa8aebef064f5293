"""Decode: index a video (its frame times, one pass), then decode one unit's grid frames.

:func:`~actrec_batch.pipeline.work.index_video` and :func:`~actrec_batch.pipeline.work.decode_unit`
do the work; the Ray runner runs them as Ray tasks, :class:`DecodeStage` in this process. A video
error comes back as a :class:`~actrec_batch.pipeline.work.Failure`, never as an exception.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actrec_batch.pipeline.stages import Stage
from actrec_batch.pipeline.work import DecodedUnit, Failure, UnitSpec, VideoIndex, decode_unit, index_video


def decode_threads(decode_cpus: float) -> int:
    """Decoder threads of one decode: no more than the CPUs it reserves."""
    return max(1, int(decode_cpus))


class DecodeStage(Stage):
    """Index and decode in this process, from the store at ``store_uri``."""

    def __init__(self, store_uri: str, sampling: dict[str, Any], decode_cpus: float) -> None:
        self.store_uri = store_uri
        self.sampling = sampling
        self.threads = decode_threads(decode_cpus)

    def index(self, video: dict[str, Any]) -> VideoIndex | Failure:
        return index_video(self.store_uri, video["key"], video["uri"], float(video["duration_s"]))

    def process(self, spec: UnitSpec, index: VideoIndex) -> tuple[DecodedUnit | Failure, np.ndarray | None]:
        return decode_unit(self.store_uri, spec, index, self.sampling, self.threads)
