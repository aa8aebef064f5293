"""Clip scores of a video: the checks every input of :mod:`actrec_batch.events` passes, and the
joining of a video's work-unit outputs into one clip sequence (:func:`concat_segment_scores`).

Clip ``k`` is centred at ``times_s[k]`` seconds; clips are ``hop_s`` apart, and a spacing above
``GRID_HOLE_HOPS * hop_s`` is a hole in the grid (see the :mod:`actrec_batch.events` docstring).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

GRID_HOLE_HOPS = 1.5  # a clip spacing above this many hops is a hole in the grid
_DUPLICATE_TOLERANCE_HOPS = 0.01  # clip times this close (in hops) are the same clip


def concat_segment_scores(
    parts: Sequence[tuple[Sequence[float] | np.ndarray, np.ndarray]], *, hop_s: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One video's clip times ``[T]`` and scores ``[T, C]`` from the outputs of its work units.

    ``parts`` are ``(times_s, scores)`` pairs in time order. Units may overlap: a clip time that an
    earlier unit already gave (within 1% of a hop) is dropped, keeping the first copy; clip features
    do not depend on how a video is cut, so the copies agree. ``hop_s`` defaults to the median clip
    spacing within the parts.

    Raises ``ValueError`` when a unit starts before the previous one (out of order), when an
    overlapping unit's clips are not on the earlier unit's grid, when the clips leave a gap of more
    than ``1.5 * hop_s`` (a missing unit), or when shapes or values are bad.
    """
    arrays = []
    n_classes: int | None = None
    for i, (t, s) in enumerate(parts):
        times, scores = check_scores(t, s, None, what=f"part {i}")
        if n_classes is not None and times.size and scores.shape[1] != n_classes:
            raise ValueError(f"part {i} has {scores.shape[1]} score columns, earlier parts have {n_classes}")
        if times.size:
            n_classes = scores.shape[1]
            arrays.append((i, times, scores))
    if not arrays:
        return np.empty(0), np.empty((0, n_classes or 0))
    spacings = np.concatenate([np.diff(t) for _, t, _ in arrays])
    if len(arrays) == 1 and not spacings.size:
        return arrays[0][1], arrays[0][2]  # a single clip: nothing to join or check
    hop = clip_hop(spacings, hop_s)
    tol = _DUPLICATE_TOLERANCE_HOPS * hop

    out_times, out_scores = [arrays[0][1]], [arrays[0][2]]
    prev_start = arrays[0][1][0]
    for i, times, scores in arrays[1:]:
        if times[0] < prev_start - tol:
            raise ValueError(
                f"part {i} starts at {times[0]:.3f} s, before the previous part ({prev_start:.3f} s): "
                "parts must be in time order"
            )
        prev_start = times[0]
        n_seen = int(np.searchsorted(times, out_times[-1][-1] + tol, side="right"))
        if n_seen:
            seen, repeated = np.concatenate(out_times), times[:n_seen]
            idx = np.minimum(np.searchsorted(seen, repeated - tol), len(seen) - 1)
            off_grid = np.abs(seen[idx] - repeated) > tol
            if off_grid.any():
                raise ValueError(
                    f"part {i} overlaps earlier parts, but its clip at {repeated[off_grid][0]:.3f} s "
                    "is not on their clip grid"
                )
        out_times.append(times[n_seen:])
        out_scores.append(scores[n_seen:])

    all_times = np.concatenate(out_times)
    spacing = np.diff(all_times)
    holes = np.flatnonzero(spacing > GRID_HOLE_HOPS * hop)
    if holes.size:
        k = holes[0]
        raise ValueError(
            f"clips are missing between {all_times[k]:.3f} s and {all_times[k + 1]:.3f} s "
            f"(gap {spacing[k]:.3f} s > {GRID_HOLE_HOPS} x hop {hop:.3f} s): a work unit is missing"
        )
    return all_times, np.concatenate(out_scores)


def check_labels(labels: Sequence[str]) -> list[str]:
    labels = list(labels)
    if not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"labels must be non-empty strings, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be unique, got {labels!r}")
    return labels


def check_scores(
    times_s: Sequence[float] | np.ndarray, scores: np.ndarray, n_classes: int | None, what: str = "input"
) -> tuple[np.ndarray, np.ndarray]:
    """``times`` as float64 ``[T]`` and ``scores`` as float64 ``[T, C]``, after checking them."""
    times = np.asarray(times_s, dtype=np.float64)
    probs = np.asarray(scores, dtype=np.float64)
    if times.ndim != 1:
        raise ValueError(f"{what}: times_s must be 1-D, got shape {times.shape}")
    if times.size == 0:
        if probs.size:
            raise ValueError(f"{what}: there are scores but no clip times (scores shape {probs.shape})")
        width = n_classes if n_classes is not None else (probs.shape[-1] if probs.ndim == 2 else 0)
        return times, np.empty((0, width))
    if probs.ndim == 1 and n_classes in (1, None):
        probs = probs[:, None]
    expected = (times.size, n_classes if n_classes is not None else probs.shape[-1])
    if probs.shape != expected:
        raise ValueError(f"{what}: scores must have shape {expected} (clips, labels), got {probs.shape}")
    bad_t = np.flatnonzero(~np.isfinite(times))
    if bad_t.size:
        raise ValueError(f"{what}: times_s has NaN or infinite values (first at clip {bad_t[0]})")
    bad = np.argwhere(~np.isfinite(probs))
    if bad.size:
        k, c = bad[0]
        raise ValueError(
            f"{what}: scores have {len(bad)} NaN or infinite values (first at clip {k}, t={times[k]:.3f} s, "
            f"column {c})"
        )
    steps = np.flatnonzero(np.diff(times) <= 0)
    if steps.size:
        k = steps[0]
        raise ValueError(
            f"{what}: times_s must be strictly increasing, but clip {k + 1} ({times[k + 1]:.3f} s) "
            f"follows {times[k]:.3f} s"
        )
    if probs.min() < 0 or probs.max() > 1:
        raise ValueError(
            f"{what}: scores must be probabilities in [0, 1], got values in [{probs.min():.3g}, "
            f"{probs.max():.3g}]; apply a sigmoid to logits first"
        )
    return times, probs


def clip_hop(spacings: np.ndarray, hop_s: float | None) -> float:
    """``hop_s`` after checking it, or by default the median of the clip ``spacings`` (seconds)."""
    if hop_s is not None:
        if not (math.isfinite(hop_s) and hop_s > 0):
            raise ValueError(f"hop_s must be a positive number of seconds, got {hop_s!r}")
        return float(hop_s)
    if not spacings.size:
        raise ValueError("hop_s is required: there is a single clip, so no spacing to measure it from")
    return float(np.median(spacings))
