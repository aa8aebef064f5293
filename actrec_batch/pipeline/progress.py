"""Progress of a run's computed units: a log line every PROGRESS_EVERY_S seconds (and a tqdm bar
on a terminal). Both runners report through it."""

from __future__ import annotations

import datetime as dt
import logging
import math
import sys
import time

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0


class Progress:
    """A log line every PROGRESS_EVERY_S seconds (and a tqdm bar on a terminal)."""

    def __init__(self, date: dt.date, total: int, seconds_total: float, enabled: bool) -> None:
        from tqdm import tqdm

        self.date, self.total, self.seconds_total = date, total, seconds_total
        self.done, self.seconds = 0, 0.0
        self.t0 = self.last = time.perf_counter()
        self.bar = tqdm(
            total=total, desc=f"infer {date}", unit="unit", disable=not (enabled and sys.stderr.isatty())
        )

    def advance(self, units: int, seconds: float) -> None:
        self.done += units
        self.seconds += seconds
        self.bar.update(units)
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S or self.done == self.total:
            self.last = now
            rate = self.seconds / max(now - self.t0, 1e-9)
            left = (self.seconds_total - self.seconds) / rate if rate > 0 else float("inf")
            eta = f"{left:.0f} s" if math.isfinite(left) else "?"
            log.info(
                "infer %s: %d/%d units, %.1f video-s per wall-s, ETA %s",
                self.date,
                self.done,
                self.total,
                rate,
                eta,
            )

    def close(self) -> None:
        self.bar.close()
