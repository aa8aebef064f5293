"""The one shape every benchmark section reports in, so `make bench` can merge them.

A *section* is one script's results (``decode``, ``e2e``, ``warehouse``, ...). It holds
*figures*, each measured ``n >= 3`` times and reported as median, min and max, and *goals*,
each a figure compared with a target. Sections are written to ``bench/results/<name>.json``;
``bench/report.py`` merges them into ``bench/results.json`` and ``BENCHMARKS.md``.

Timings are never asserted here: a missed goal is a result (``holds: false``), not an error.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# ACTREC_BENCH_RESULTS: another folder for the sections (bench/all.py --results; the harness test)
RESULTS = Path(os.environ.get("ACTREC_BENCH_RESULTS") or ROOT / "bench" / "results")
# profiles of `make bench` go to bench/profiles/ (kept in git, next to BENCHMARKS.md, which names
# them); those of a run into another results folder (a smoke run, the harness test) stay there
_DEFAULT_RESULTS = ROOT / "bench" / "results"
PROFILES = (
    ROOT / "bench" / "profiles" if RESULTS.resolve() == _DEFAULT_RESULTS.resolve() else RESULTS / "profiles"
)


@dataclass
class Figure:
    """One measured quantity: ``runs`` are the individual measurements, in ``unit``."""

    id: str
    what: str
    unit: str
    runs: list[float]
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return float(statistics.median(self.runs))

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(median=self.median, min=min(self.runs), max=max(self.runs), n=len(self.runs))
        return out


@dataclass
class Goal:
    """``measured op target``, e.g. a ratio ``>= 0.8``; ``figure`` names the figure it judges."""

    id: str
    goal: str
    figure: str
    op: str  # ">=" or "<="
    target: float
    measured: float | None
    why_missed: str = ""  # profile-backed reason, filled where a goal is missed

    @property
    def holds(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.target if self.op == ">=" else self.measured <= self.target

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "holds": self.holds}


@dataclass
class Section:
    name: str
    title: str
    footage: str = ""  # what was measured on, in words
    figures: list[Figure] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    smoke: bool = False  # a tiny-size run: figures are not comparable with the goals

    def figure(self, fid: str) -> Figure:
        for fig in self.figures:
            if fig.id == fid:
                return fig
        raise KeyError(f"no figure {fid!r} in section {self.name!r}")

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.name,
            "title": self.title,
            "footage": self.footage,
            "smoke": self.smoke,
            "figures": [f.as_json() for f in self.figures],
            "goals": [g.as_json() for g in self.goals],
            "notes": self.notes,
        }

    def save(self, results: Path = RESULTS) -> Path:
        results.mkdir(parents=True, exist_ok=True)
        path = results / f"{self.name}.json"
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")
        return path


def repeat(fn: Callable[[], float], n: int = 3, warmup: int = 0) -> list[float]:
    """Call ``fn`` ``warmup`` times unrecorded, then ``n`` times; return what it returned."""
    if n < 1:
        raise ValueError(f"repeats must be >= 1, got {n}")
    for _ in range(warmup):
        fn()
    return [float(fn()) for _ in range(n)]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(wall seconds, fn())``."""
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value
