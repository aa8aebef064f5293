"""The stages of an inference job, each with a lifecycle: ``setup()``, ``process(...)``, ``teardown()``.

* :mod:`.plan`: the manifest's videos cut into units; what checkpoints and the cache already hold.
* :mod:`.decode`: index a video and decode one unit's grid frames (the functions Ray tasks run).
* :mod:`.embed`: embed decoded units with the model's extractor (what the Ray actors hold).
* :mod:`.assemble`: the head and the event steps over each camera chain's clips: event rows.
* :mod:`.write`: the staged events and quarantine, then the run's ``metrics.json`` and ``infer.json``.

A runner (:mod:`actrec_batch.pipeline.runners`) drives decode and embed: in this process, or on Ray.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Stage:
    """A stage's lifecycle. ``setup`` acquires what ``process`` needs (a model, threads), and
    ``teardown`` gives it back, also after a failure. ``process`` has each stage's own signature."""

    def setup(self) -> None:
        """Acquire what process() needs (nothing by default)."""

    def teardown(self) -> None:
        """Release what setup() acquired (nothing by default)."""


@contextmanager
def running(*stages: Stage) -> Iterator[tuple[Stage, ...]]:
    """Set the stages up in order, and tear down those set up in reverse order on the way out."""
    up: list[Stage] = []
    try:
        for stage in stages:
            stage.setup()
            up.append(stage)
        yield stages
    finally:
        for stage in reversed(up):
            stage.teardown()
