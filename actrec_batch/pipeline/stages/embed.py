"""Embed: the model's extractor over decoded units' frames, several units per call, each unit
through the network on its own (its features do not depend on the batch).

:class:`~actrec_batch.pipeline.work.Embedder` does the work; the Ray runner holds a pool of them as
actors, :class:`EmbedStage` holds one in this process. Both place it by :func:`placement`, so the
same settings give the same device and thread count, hence the same features, on either runner.
"""

from __future__ import annotations

import numpy as np

from actrec_batch.pipeline.stages import Stage
from actrec_batch.pipeline.work import DecodedUnit, EmbeddedUnit, Embedder

CPU_ACTOR_CPUS = 0.0  # "auto" for a CPU embedder: no logical CPU held, so decode tasks keep every core


def resolve_gpus(actor_gpus: str | float, cluster_gpus: float) -> float:
    """GPUs per embedder: the setting, or for ``auto`` 1 when there is a GPU, else 0 (CPU)."""
    if actor_gpus == "auto":
        return 1.0 if cluster_gpus >= 1 else 0.0
    return float(actor_gpus)


def resolve_cpus(actor_cpus: str | float, gpus: float) -> float:
    """CPUs per embedder: the setting, or for ``auto`` 1 beside a GPU, else CPU_ACTOR_CPUS."""
    if actor_cpus == "auto":
        return 1.0 if gpus > 0 else CPU_ACTOR_CPUS
    return float(actor_cpus)


def placement(gpus: float, cpus: float) -> tuple[str | None, int]:
    """(device, torch threads) of an embedder: a GPU one picks its device and keeps torch's
    threads (0); a CPU one runs on ``cpu`` with one thread per CPU it holds (at least one)."""
    if gpus > 0:
        return None, 0
    return "cpu", max(1, int(cpus))


class EmbedStage(Stage):
    """One Embedder in this process. Setup loads the extractor (and sets torch's thread count,
    which teardown restores)."""

    def __init__(self, model_ref: str, store_uri: str, device: str | None, threads: int) -> None:
        self.model_ref, self.store_uri = model_ref, store_uri
        self.device, self.threads = device, threads
        self.embedder: Embedder | None = None
        self._torch_threads = 0

    def setup(self) -> None:
        import torch

        self._torch_threads = torch.get_num_threads()
        self.embedder = Embedder(self.model_ref, self.store_uri, self.device, self.threads)

    def process(self, units: list[DecodedUnit], frames: list[np.ndarray]) -> list[EmbeddedUnit]:
        assert self.embedder is not None, "EmbedStage.process before setup"
        return self.embedder.embed(units, frames)

    def teardown(self) -> None:
        import torch

        self.embedder = None
        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
