"""What one run is asked to do: :class:`RunSpec`, the per-run values that travel as one object.

Settings (:class:`~actrec_batch.config.Settings`) say *how* runs go (store, Ray, segment length);
a RunSpec says *what* this run covers: its logical date, cameras, model, force and run id.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from actrec_batch.model import DEFAULT_MODEL


def new_run_id(date: dt.date) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{date.isoformat()}-{stamp}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RunSpec:
    """One run's values. ``run_id`` defaults to a new one for ``date``; ``cameras`` and
    ``video_keys`` (store keys) narrow the manifest when given; ``force`` recomputes every unit."""

    date: dt.date
    model_ref: str = DEFAULT_MODEL
    cameras: tuple[str, ...] = ()
    force: bool = False
    video_keys: tuple[str, ...] = ()
    run_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "video_keys", tuple(self.video_keys))
        if not self.run_id:
            object.__setattr__(self, "run_id", new_run_id(self.date))
