"""The nightly drift report: one night's figures against a trailing window of previous nights.

Both sides come from the warehouse (:func:`~actrec_batch.warehouse.queries.night_figures`): the
night is published before its quality stage runs, so tonight and the window are counted the same
way, from the current model version's events, the date's videos and its quarantine. The window is
the ``drift_window_nights`` footage dates before the night's; dates with nothing published are not
in it. With no night in the window every comparison says ``no_baseline``, never ``alert``.

What is judged (each a row of :data:`~actrec_batch.tables.QUALITY_METRICS`; ``alert_status`` is
``ok``, ``warn``, ``alert``, ``no_baseline`` or ``info``):

1. ``label_psi``: the labels' shares of tonight's events against the window's (all its nights'
   events pooled), by the population stability index ``sum((p - q) ln(p / q))`` over labels,
   shares smoothed by half an event so that a label missing on one side stays finite. A PSI of
   ``drift_psi_warn`` or more is a warning; of ``drift_psi_alert`` or more an alert, *if* the
   chi-square test of the two count rows also rejects "same mix" at ``drift_p_value`` (a PSI on
   eight events is mostly noise: the test is what says a shift is more than chance).
   ``label_share`` rows (``info``) carry each label's share and the window's.
2. ``confidence_psi``: the same on the events' confidences in :data:`CONFIDENCE_BINS` equal bins.
3. ``event_rate`` per camera: tonight's events per footage hour against the camera's rate over the
   window; an alert when the exact test that both are one Poisson rate (:func:`rate_p`,
   two-sided) gives a p-value under ``drift_p_value``. A camera new tonight has ``no_baseline``.
4. ``black_fraction`` and ``static_fraction`` per camera, from the frame health the decode measured
   (:mod:`actrec_batch.video.health`): an alert at ``drift_dead_fraction`` or more. These need no
   window. Units whose features came from the cache or a checkpoint decoded nothing, so a camera
   without decoded frames has no row, and the report says frame health was not measured.
5. ``quarantine_rate``: quarantined / (processed + quarantined) videos, an alert when it exceeds
   the window's by more than ``drift_quarantine_increase``.
6. Where ground truth exists: ``precision``, ``recall`` and ``class_recall`` per label (``info``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONFIDENCE_BINS = 10
OK, WARN, ALERT, NO_BASELINE, INFO = "ok", "warn", "alert", "no_baseline", "info"
_SMOOTH = 0.5  # events added to every cell of a share, so that log(p / q) stays finite


@dataclass(frozen=True)
class DriftLimits:
    """The thresholds of one report (the ``drift_*`` settings)."""

    window_nights: int = 7
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    p_value: float = 0.01
    quarantine_increase: float = 0.1
    dead_fraction: float = 0.5

    @classmethod
    def of(cls, settings) -> DriftLimits:
        return cls(
            window_nights=settings.drift_window_nights,
            psi_warn=settings.drift_psi_warn,
            psi_alert=settings.drift_psi_alert,
            p_value=settings.drift_p_value,
            quarantine_increase=settings.drift_quarantine_increase,
            dead_fraction=settings.drift_dead_fraction,
        )


def psi(tonight: Mapping[str, float], window: Mapping[str, float]) -> float:
    """Population stability index of two count tables over the union of their keys (shares
    smoothed by :data:`_SMOOTH` events per key). 0 for identical mixes; unitless, >= 0."""
    keys = sorted(set(tonight) | set(window))
    if not keys:
        return 0.0
    p = _shares(tonight, keys)
    q = _shares(window, keys)
    return float(sum((a - b) * math.log(a / b) for a, b in zip(p, q, strict=True)))


def _shares(counts: Mapping[str, float], keys: list[str]) -> list[float]:
    total = sum(counts.get(k, 0) for k in keys) + _SMOOTH * len(keys)
    return [(counts.get(k, 0) + _SMOOTH) / total for k in keys]


def chi_square_p(tonight: Mapping[str, float], window: Mapping[str, float]) -> float:
    """p-value of the chi-square test that both count tables come from one mix (1.0 when there is
    too little to test: fewer than two keys with counts, or an empty side)."""
    from scipy.stats import chi2_contingency

    keys = [k for k in sorted(set(tonight) | set(window)) if tonight.get(k, 0) + window.get(k, 0) > 0]
    rows = [[tonight.get(k, 0) for k in keys], [window.get(k, 0) for k in keys]]
    if len(keys) < 2 or not all(sum(r) for r in rows):
        return 1.0
    return float(chi2_contingency(rows).pvalue)


def rate_p(count: int, hours: float, window_count: int, window_hours: float) -> float:
    """Two-sided p-value that ``count`` events in ``hours`` and ``window_count`` in ``window_hours``
    come from one Poisson rate: given the total, tonight's share of the events is binomial with
    tonight's share of the hours (the exact conditional test), so a window with few or no events
    does not make every event tonight look impossible."""
    from scipy.stats import binomtest

    total = count + window_count
    if total == 0 or hours <= 0 or window_hours <= 0:
        return 1.0
    return float(binomtest(count, total, hours / (hours + window_hours)).pvalue)


def pooled(nights: Mapping[Any, Mapping[str, Any]]) -> dict[str, Any]:
    """The window's nights as one: counts and hours added up."""
    out: dict[str, Any] = {
        "labels": {},
        "confidence": [0] * CONFIDENCE_BINS,
        "camera_events": {},
        "camera_hours": {},
        "videos": 0,
        "quarantined": 0,
    }
    for n in nights.values():
        for key in ("labels", "camera_events", "camera_hours"):
            for k, v in n[key].items():
                out[key][k] = out[key].get(k, 0) + v
        out["confidence"] = [a + b for a, b in zip(out["confidence"], n["confidence"], strict=True)]
        out["videos"] += n["videos"]
        out["quarantined"] += n["quarantined"]
    return out


def bin_names() -> list[str]:
    """``0.0-0.1`` ... ``0.9-1.0``: the confidence bins' subjects."""
    return [f"{i / CONFIDENCE_BINS:.1f}-{(i + 1) / CONFIDENCE_BINS:.1f}" for i in range(CONFIDENCE_BINS)]


def _row(metric: str, subject: str, value, status: str, baseline=None, threshold=None) -> dict[str, Any]:
    r = lambda x: None if x is None else round(float(x), 6)  # noqa: E731
    return {
        "metric": metric,
        "subject": subject,
        "value": r(value),
        "baseline": r(baseline),
        "threshold": r(threshold),
        "alert_status": status,
    }


def _shift(metric: str, tonight: dict, window: dict, has_window: bool, limits: DriftLimits) -> list[dict]:
    """The ``<metric>_psi`` row (and its chi-square p as an ``info`` row) of one count table."""
    if not has_window or not sum(window.values()):
        return [_row(f"{metric}_psi", "all", None, NO_BASELINE, threshold=limits.psi_alert)]
    value, p = psi(tonight, window), chi_square_p(tonight, window)
    status = OK
    if value >= limits.psi_alert and p < limits.p_value:
        status = ALERT
    elif value >= limits.psi_warn:
        status = WARN
    return [
        _row(f"{metric}_psi", "all", value, status, threshold=limits.psi_alert),
        _row(f"{metric}_chi2_p", "all", p, INFO, threshold=limits.p_value),
    ]


def drift_rows(
    tonight: Mapping[str, Any],
    nights: Mapping[Any, Mapping[str, Any]],
    frame_health: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None,
    limits: DriftLimits,
) -> list[dict[str, Any]]:
    """Every row of the report (the module doc's steps, in order): ``tonight`` and each of
    ``nights`` are :func:`~actrec_batch.warehouse.queries.night_figures` values, ``frame_health``
    maps a camera to its :class:`~actrec_batch.video.health.FrameHealth`."""
    has_window = bool(nights)
    window = pooled(nights)
    rows = _shift("label", tonight["labels"], window["labels"], has_window, limits)
    n_t, n_w = sum(tonight["labels"].values()), sum(window["labels"].values())
    for label in sorted(set(tonight["labels"]) | set(window["labels"])):
        share = tonight["labels"].get(label, 0) / n_t if n_t else None
        base = window["labels"].get(label, 0) / n_w if n_w else None
        rows.append(_row("label_share", label, share, INFO, baseline=base))
    names = bin_names()
    rows += _shift(
        "confidence",
        dict(zip(names, tonight["confidence"], strict=True)),
        dict(zip(names, window["confidence"], strict=True)),
        has_window,
        limits,
    )
    for camera in sorted(tonight["camera_hours"]):
        hours, count = tonight["camera_hours"][camera], tonight["camera_events"].get(camera, 0)
        rate = count / hours if hours else None
        w_hours = window["camera_hours"].get(camera, 0.0)
        if not w_hours:
            rows.append(_row("event_rate", camera, rate, NO_BASELINE, threshold=limits.p_value))
            continue
        w_count = window["camera_events"].get(camera, 0)
        w_rate = w_count / w_hours
        p = rate_p(count, hours, w_count, w_hours)
        rows.append(
            _row("event_rate", camera, rate, ALERT if p < limits.p_value else OK, w_rate, limits.p_value)
        )
    for camera in sorted(frame_health):
        health = frame_health[camera]
        for metric, value in (
            ("black_fraction", health.black_fraction),
            ("static_fraction", health.static_fraction),
        ):
            if value is not None:
                status = ALERT if value >= limits.dead_fraction else OK
                rows.append(_row(metric, camera, value, status, threshold=limits.dead_fraction))
    rows.append(_quarantine_row(tonight, window, has_window, limits))
    if evaluation:
        rows.append(_row("precision", "all", evaluation.get("precision"), INFO))
        rows.append(_row("recall", "all", evaluation.get("recall"), INFO))
        for label, c in sorted((evaluation.get("per_class") or {}).items()):
            if c.get("support"):
                rows.append(_row("class_recall", label, c.get("recall"), INFO))
    return rows


def _rate(figures: Mapping[str, Any]) -> float | None:
    seen = figures["videos"] + figures["quarantined"]
    return figures["quarantined"] / seen if seen else None


def _quarantine_row(tonight, window, has_window: bool, limits: DriftLimits) -> dict[str, Any]:
    value, base = _rate(tonight), _rate(window)
    if not has_window or base is None:
        return _row("quarantine_rate", "all", value, NO_BASELINE)
    limit = base + limits.quarantine_increase
    return _row("quarantine_rate", "all", value, ALERT if (value or 0) > limit else OK, base, limit)


def alert_text(row: Mapping[str, Any]) -> str:
    """One line naming an alert row: what, on what, tonight's value and what it was judged by."""
    text = f"{row['metric']} {row['subject']}: {_fmt(row['value'])}"
    if row.get("baseline") is not None:
        text += f" (window {_fmt(row['baseline'])})"
    if row.get("threshold") is not None:
        text += f", threshold {_fmt(row['threshold'])}"
    return text


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"
