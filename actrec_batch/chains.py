"""Cameras that write rolling files: each file's start on the camera's clock, and chains of files.

NVRs and DVRs cut each camera's stream into consecutive files (15 s to 10 min). An action that
crosses a cut belongs to two files, so the files of one camera that abut are joined into a
**chain**, and the event post-processing runs once over the chain's clip scores (the split
invariance of :mod:`actrec_batch.events`, one level up: a cut between files is treated like a cut
between work units).

1. **Clock**: a file's start time on the camera's clock (UTC) comes from its name when the
   ``file_time_pattern`` setting is set and matches the name (:class:`FileTimePattern`), otherwise
   from the container's creation time (the manifest's ``creation_time``), otherwise it is unknown.
2. **Chaining** (:func:`chain_videos`): per camera, the files with a known start, in start order;
   a file continues the chain of the one before it when it starts within ``tolerance_s`` seconds of
   where that one ends (``|start_b - (start_a + duration_a)| <= tolerance_s``). A larger gap or
   overlap starts a new chain; a file with an unknown start stands alone.
3. **Chain time**: the files of a chain are laid end to end: file ``k`` starts at ``offset_s[k]``,
   the sum of the durations of the files before it (seconds, from the chain's first frame). The
   clock's small jitter within the tolerance is absorbed; each file keeps its own clock for
   ``start_ts`` and ``end_ts``. The times where one file ends and the next begins are the chain's
   ``seams``: no clip straddles a seam, so the clip grid has a gap there that is not a hole.
4. **Head context across a cut** (:func:`bridge_seams`): a temporal head reads clips a few hops
   around each clip, but no clip straddles two files, so the grid has a gap of about one clip
   length at each seam. The head is run over the chain's clips with that gap filled by embeddings
   interpolated linearly between the last clip before the cut and the first after it, at the hop
   spacing, so its neighbours are where it expects them; the scores of those stand-in clips are
   then dropped, and only real clips' scores reach the event steps (which bridge the seam).
5. **Ends** (:meth:`Chain.locate`): an event ``[a, b)`` in chain time starts in the file holding
   ``a`` and ends in the file holding ``b``; it is recorded as ``video_id``, ``start_s`` and
   ``end_s`` (both in seconds from the start of that first file, so ``end_s`` may exceed its
   duration) plus ``end_video_id`` and ``end_offset_s`` (seconds from the start of the last file).

A chain never crosses a logical date: each date's footage is chained on its own.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_TOLERANCE_S = 1.0
_DIRECTIVES = {
    "Y": r"\d{4}",
    "m": r"\d{2}",
    "d": r"\d{2}",
    "H": r"\d{2}",
    "M": r"\d{2}",
    "S": r"\d{2}",
    "f": r"\d{1,6}",
    "y": r"\d{2}",
    "j": r"\d{3}",
    "z": r"(?:Z|[+-]\d{2}:?\d{2})",
    "%": "%",
}
_NEEDED = ("Y", "m", "d", "H", "M", "S")


@dataclass(frozen=True)
class FileTimePattern:
    """A ``strftime``-style pattern found anywhere in a file name, e.g. ``%Y%m%dT%H%M%SZ`` for
    ``cam-01_20261124T170015Z.mp4`` or ``%Y-%m-%d_%H-%M-%S`` for ``ch03_2026-11-24_17-00-15.avi``.

    Directives: ``%Y %m %d %H %M %S`` (all required, or ``%y``/``%j`` for year and day), optional
    ``%f`` (fractions) and ``%z``; other characters match themselves. Without ``%z`` the time is UTC.
    Raises ``ValueError`` naming the problem for a pattern that cannot name a second.
    """

    pattern: str

    def __post_init__(self) -> None:
        self._regex()  # validate once, at the edge

    def _regex(self) -> re.Pattern[str]:
        parts, seen, i = [], set(), 0
        p = self.pattern
        while i < len(p):
            if p[i] != "%":
                parts.append(re.escape(p[i]))
                i += 1
                continue
            code = p[i + 1] if i + 1 < len(p) else ""
            if code not in _DIRECTIVES:
                raise ValueError(f"%{code} is not supported; use {' '.join('%' + k for k in _DIRECTIVES)}")
            parts.append(_DIRECTIVES[code])
            seen.add(code)
            i += 2
        have = seen | ({"Y"} if "y" in seen else set()) | ({"m", "d"} if "j" in seen else set())
        missing = [f"%{k}" for k in _NEEDED if k not in have]
        if missing:
            raise ValueError(f"it lacks {' '.join(missing)}, so it does not name a second")
        return re.compile("".join(parts))

    def parse(self, name: str) -> dt.datetime | None:
        """The UTC time that ``name`` (a file name, or a key whose last part is one) carries, or
        None when the pattern does not match it."""
        base = name.rsplit("/", 1)[-1]
        m = self._regex().search(base)
        if m is None:
            return None
        try:
            t = dt.datetime.strptime(m.group(0), self.pattern)
        except ValueError:  # matched the shape but not a real date, e.g. month 13
            return None
        return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def parse_file_time_pattern(raw: str | None) -> FileTimePattern | None:
    """The setting's value as a :class:`FileTimePattern` (None for unset). Raises ``ValueError``."""
    return FileTimePattern(raw) if raw else None


@dataclass(frozen=True)
class VideoClock:
    """One file on its camera's clock: ``start`` (UTC) or None when unknown; ``duration_s`` seconds."""

    video_id: str
    camera_id: str
    start: dt.datetime | None
    duration_s: float
    key: str = ""

    @property
    def end(self) -> dt.datetime | None:
        return None if self.start is None else self.start + dt.timedelta(seconds=self.duration_s)


def file_start(row: Mapping[str, Any], pattern: FileTimePattern | None) -> dt.datetime | None:
    """Step 1: the start of a manifest row's file on the camera clock, from its name (``pattern``),
    else from ``creation_time``, else None."""
    if pattern is not None:
        t = pattern.parse(str(row.get("key") or row.get("uri") or ""))
        if t is not None:
            return t
    created = row.get("creation_time")
    if isinstance(created, dt.datetime):
        return created if created.tzinfo else created.replace(tzinfo=dt.UTC)
    return None


def video_clocks(rows: Iterable[Mapping[str, Any]], pattern: FileTimePattern | None) -> list[VideoClock]:
    """:class:`VideoClock` s of manifest rows (``video_id``, ``camera_id``, ``duration_s``, ``key``,
    ``creation_time``)."""
    return [
        VideoClock(r["video_id"], r["camera_id"], file_start(r, pattern), float(r["duration_s"]), r["key"])
        for r in rows
    ]


@dataclass(frozen=True)
class Chain:
    """Files of one camera laid end to end (step 3). ``offsets_s[k]`` is where file ``k`` starts."""

    videos: tuple[VideoClock, ...]
    offsets_s: tuple[float, ...]

    @property
    def camera_id(self) -> str:
        return self.videos[0].camera_id

    @property
    def duration_s(self) -> float:
        return self.offsets_s[-1] + self.videos[-1].duration_s

    @property
    def seams_s(self) -> tuple[float, ...]:
        """Chain times where one file ends and the next begins."""
        return self.offsets_s[1:]

    def offset_of(self, video_id: str) -> float:
        return self.offsets_s[[v.video_id for v in self.videos].index(video_id)]

    def locate(self, start_s: float, end_s: float) -> tuple[int, int]:
        """Step 4: the indices of the files holding chain time ``start_s`` (the last file starting at
        or before it) and ``end_s`` (the last file starting before it). Times are clamped to the chain."""
        first = max(0, bisect.bisect_right(self.offsets_s, start_s) - 1)
        last = max(first, bisect.bisect_left(self.offsets_s, end_s) - 1)
        return first, last


def chain_videos(videos: Sequence[VideoClock], tolerance_s: float = DEFAULT_TOLERANCE_S) -> list[Chain]:
    """Step 2: every video in exactly one chain. Chains come sorted by (camera, first start, key);
    videos with an unknown start are one-file chains after their camera's others, sorted by key.

    Raises ``ValueError`` for a negative or non-finite tolerance.
    """
    if not (math.isfinite(tolerance_s) and tolerance_s >= 0):
        raise ValueError(f"the chain tolerance must be a number of seconds >= 0, got {tolerance_s!r}")
    by_camera: dict[str, list[VideoClock]] = {}
    for v in videos:
        by_camera.setdefault(v.camera_id, []).append(v)
    chains: list[Chain] = []
    for camera in sorted(by_camera):
        timed = sorted((v for v in by_camera[camera] if v.start is not None), key=lambda v: (v.start, v.key))
        runs: list[list[VideoClock]] = []
        for v in timed:
            prev = runs[-1][-1] if runs else None
            if prev is not None and abs((v.start - prev.end).total_seconds()) <= tolerance_s:
                runs[-1].append(v)
            else:
                runs.append([v])
        runs += [[v] for v in sorted((v for v in by_camera[camera] if v.start is None), key=lambda v: v.key)]
        for run in runs:
            offsets = [0.0]
            for v in run[:-1]:
                offsets.append(offsets[-1] + v.duration_s)
            chains.append(Chain(tuple(run), tuple(offsets)))
    return chains


def bridge_seams(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], hop_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 4: the clips of a chain's files, laid end to end, with each gap between files filled.

    ``parts`` are ``(times_s [N_k], embeddings [N_k, D])`` per file in chain order, times in chain
    seconds (empty files left out). Between the last clip of one part and the first of the next,
    ``round(gap / hop_s) - 1`` clips are added at even spacing, their embeddings linearly
    interpolated between those two clips. Returns ``(times [N], embeddings [N, D], real [N])`` with
    ``real`` False for the added clips. Raises ``ValueError`` for no parts or parts out of order.
    """
    if not parts:
        raise ValueError("bridge_seams needs at least one part")
    times, embs, real = [parts[0][0]], [parts[0][1]], [np.ones(len(parts[0][0]), bool)]
    for t, e in parts[1:]:
        t0, t1 = times[-1][-1], t[0]
        if t1 <= t0:
            raise ValueError(f"a part starts at {t1:.3f} s, not after the previous one ends ({t0:.3f} s)")
        n = int(round((t1 - t0) / hop_s)) - 1
        if n > 0:
            w = np.arange(1, n + 1) / (n + 1)
            times.append(t0 + w * (t1 - t0))
            embs.append(((1 - w)[:, None] * embs[-1][-1] + w[:, None] * e[0]).astype(e.dtype))
            real.append(np.zeros(n, bool))
        times.append(t)
        embs.append(e)
        real.append(np.ones(len(t), bool))
    return np.concatenate(times), np.concatenate(embs), np.concatenate(real)


def chain_index(chains: Iterable[Chain]) -> dict[str, tuple[Chain, float]]:
    """``video key -> (its chain, its offset in the chain)``, for mapping per-file times to chain time."""
    return {v.key: (c, off) for c in chains for v, off in zip(c.videos, c.offsets_s, strict=True)}


def chain_name(chain: Chain) -> str:
    """A readable, stable name of a chain: its first file's key, plus how many files follow."""
    first = chain.videos[0].key or chain.videos[0].video_id
    return first if len(chain.videos) == 1 else f"{first}+{len(chain.videos) - 1}"
