"""Planning a :class:`~actrec_batch.synth.timeline.Timeline`: episodes, figures, actions, gaps.

A video is a run of episodes (25-70 s). Each shows 0-3 figures (one in ~70 % of populated
episodes) who act one at a time with no-action gaps between actions; in multi-figure episodes
another figure sometimes starts before the current action ends. A figure's posture (standing,
seated, lying) decides what it can do next: only a seated figure can ``stand_up``, only a
standing figure at its chair can ``sit_down``, and a figure that fell lies still until the
episode ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from actrec_batch.synth.timeline import (
    DISTRACTOR_KINDS,
    FADE_S,
    LYING_SPAN,
    MIN_GAP_S,
    Distractor,
    Figure,
    Look,
    Segment,
    Stage,
    Timeline,
    fold_path,
    gait_envelope,
    walk_bounds,
)


def _frames(seconds: float, fps: float) -> int:
    return max(2, int(round(seconds * fps)))


def _random_look(rng: np.random.Generator) -> Look:
    skins = ((233, 196, 160), (198, 148, 110), (150, 100, 70), (95, 62, 45), (245, 215, 190))
    hairs = ((30, 25, 20), (90, 60, 35), (160, 120, 70), (200, 190, 170), (60, 40, 30))

    def vivid() -> tuple[float, float, float]:
        c = rng.uniform(30, 235, size=3)
        c[rng.integers(3)] = rng.uniform(150, 245)
        return tuple(float(v) for v in c)

    trousers = tuple(float(v) for v in rng.uniform(20, 120, size=3) * rng.uniform(0.6, 1.4))
    shoe = float(rng.uniform(15, 70))
    skin = np.array(skins[rng.integers(len(skins))], dtype=np.float64) * rng.uniform(0.9, 1.05)
    return Look(
        skin=tuple(float(v) for v in np.clip(skin, 0, 255)),
        hair=tuple(float(v) for v in hairs[rng.integers(len(hairs))]),
        shirt=vivid(),
        trousers=trousers,
        shoes=(shoe, shoe * 0.9, shoe * 0.85),
        short_sleeves=bool(rng.random() < 0.4),
        build=float(rng.uniform(0.85, 1.2)),
    )


@dataclass
class _FigureState:
    """Mutable planning state of one figure (positions in frame-height units)."""

    figure: Figure
    height: float
    posture: str  # "stand" | "seated" | "lying"
    x: float
    facing: int
    at_chair: bool
    busy_until: int
    actions: list[Segment] = field(default_factory=list)


_STAND_WEIGHTS = {"walk": 1.0, "run": 1.0, "wave": 0.8, "jump": 1.0, "fall": 0.65, "sit_down": 3.2}
_SEATED_WEIGHTS = {"stand_up": 1.0, "wave": 0.25}
ACTION_LABELS = tuple(dict.fromkeys([*_STAND_WEIGHTS, *_SEATED_WEIGHTS]))


def _choose_action(rng: np.random.Generator, st: _FigureState, mix: Mapping[str, float]) -> str | None:
    """The figure's next action, drawn from its posture's weights times ``mix`` (default 1 per
    label); None when it can do nothing (lying, or every weight it has is 0)."""
    if st.posture == "lying":
        return None
    table = dict(_SEATED_WEIGHTS) if st.posture == "seated" else dict(_STAND_WEIGHTS)
    if st.posture == "stand" and not st.at_chair:
        table.pop("sit_down")
    names = list(table)
    w = np.array([table[n] * mix.get(n, 1.0) for n in names])
    if w.sum() <= 0:
        return None
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _plan_action(
    rng: np.random.Generator, st: _FigureState, label: str, start: int, fps: float, stage: Stage
) -> Segment:
    """One action's segment (duration and shape parameters); updates ``st`` to its end state."""
    speed = float(rng.uniform(0.8, 1.25))
    p: dict[str, float] = {"speed": speed}
    if label in ("walk", "run"):
        run = label == "run"
        n = _frames(rng.uniform(2.0, 6.0) if run else rng.uniform(2.5, 8.0), fps)
        body_hz = (1.1 if run else 0.5) * speed  # ground speed, body heights per second
        p.update(
            cadence=(1.45 if run else 0.9) * speed,
            hip_amp=float(rng.uniform(0.55, 0.75) if run else rng.uniform(0.25, 0.38)),
            knee_amp=float(rng.uniform(1.4, 1.9) if run else rng.uniform(0.6, 0.9)),
            arm_amp=float(rng.uniform(0.7, 1.0) if run else rng.uniform(0.25, 0.45)),
            elbow=float(rng.uniform(1.3, 1.8) if run else rng.uniform(0.15, 0.5)),
            lean=float(rng.uniform(0.15, 0.3) if run else rng.uniform(0.0, 0.06)),
            bob=float(rng.uniform(0.03, 0.05) if run else rng.uniform(0.008, 0.015)),
            x0=st.x,
            facing0=float(st.facing),
            velocity=body_hz * st.height,
        )
        distance = np.cumsum(gait_envelope(n, fps)) * (p["velocity"] / fps)
        lo, hi = walk_bounds(stage, st.height)
        xs, facings = fold_path(st.x, st.facing, distance, lo, hi)
        st.x, st.facing, st.at_chair = float(xs[-1]), int(facings[-1]), False
    elif label == "wave":
        n = _frames(rng.uniform(2.0, 6.0), fps)
        p.update(
            _arm_raise_params(rng),
            freq=float(rng.uniform(1.6, 2.6) * speed),
            amp=float(rng.uniform(0.4, 0.65)),
            seated=float(st.posture == "seated"),
        )
    elif label == "jump":
        jumps = int(rng.integers(1, 4))
        n = _frames(jumps * rng.uniform(1.15, 1.5) / speed, fps)
        p.update(
            jumps=float(jumps), height=float(rng.uniform(0.12, 0.3)), depth=float(rng.uniform(0.1, 0.16))
        )
    elif label == "fall":
        n = _frames(rng.uniform(1.0, 2.0), fps)
        ahead = stage.aspect - st.x if st.facing > 0 else st.x
        behind = st.x if st.facing > 0 else stage.aspect - st.x
        need = LYING_SPAN * st.height + 0.02
        forward = rng.random() < 0.55 or st.at_chair  # the chair stands behind a figure at it
        if forward and ahead < need <= behind:
            forward = False
        elif not forward and behind < need <= ahead:
            forward = True
        p.update(
            direction=1.0 if forward else -1.0,
            arms=float(rng.uniform(0.0, 1.0)),
            stumble=float(rng.uniform(0.15, 0.3)),
        )
        st.posture = "lying"
    elif label in ("sit_down", "stand_up"):
        n = _frames(rng.uniform(1.4, 2.6) / speed, fps)
        st.posture = "seated" if label == "sit_down" else "stand"
    else:  # pragma: no cover - the label table is closed
        raise ValueError(label)
    return Segment(st.figure.track, label, start, start + n, p)


def _arm_raise_params(rng: np.random.Generator) -> dict[str, float]:
    return {
        "arm": float(rng.integers(2)),  # 0 near arm, 1 far arm
        "shoulder": float(rng.uniform(2.45, 3.0)),
        "elbow": float(rng.uniform(0.25, 0.8)),
    }


def plan_timeline(
    rng: np.random.Generator,
    duration_s: float,
    fps: float,
    *,
    stage: Stage | None = None,
    mix: Mapping[str, float] | None = None,
) -> Timeline:
    """Plan a video of ``duration_s`` seconds at ``fps``: episodes of 0-3 figures acting in turn.

    ``mix``: a factor per action label on how often it is chosen (default 1 for every label;
    ``{"wave": 5}`` makes waving five times likelier, ``{"fall": 0}`` rules falls out). With no
    mix the draws, and so the footage, are those of every earlier release.

    Deterministic in ``rng``. Labelled events are separated by at least ``MIN_GAP_S`` of no
    action, except that in multi-figure episodes a second figure sometimes starts during another
    figure's action (overlapping events of different tracks).

    Raises:
        ValueError: ``duration_s`` or ``fps`` not positive.
    """
    if not (duration_s > 0 and fps > 0):
        raise ValueError(f"duration_s and fps must be positive, got {duration_s!r}, {fps!r}")
    stage = stage or Stage()
    n_total = max(1, int(round(duration_s * fps)))
    figures: list[Figure] = []
    segments: list[Segment] = []
    t = 0
    while t < n_total:
        length = _frames(rng.uniform(25.0, 70.0), fps)
        if n_total - (t + length) < 15 * fps:
            length = n_total - t
        figs, segs, end = _plan_episode(
            rng, t, t + length, n_total, fps, stage, next_track=len(figures), mix=mix or {}
        )
        figures.extend(figs)
        segments.extend(segs)
        t = end
    distractors = _plan_distractors(rng, n_total, fps, stage)
    return Timeline(fps, n_total, stage, tuple(figures), tuple(segments), tuple(distractors))


_POSTURE_AFTER = {"sit_down": "seated", "stand_up": "stand", "fall": "lying"}
_IDLE_OF_POSTURE = {"stand": "idle", "seated": "seated", "lying": "lying"}


def _place_figures(
    rng: np.random.Generator,
    k: int,
    start: int,
    end: int,
    n_total: int,
    fps: float,
    stage: Stage,
    track0: int,
) -> list[_FigureState]:
    fade = _frames(FADE_S, fps)
    states: list[_FigureState] = []
    for j in range(k):
        ground_y = float(rng.uniform(*stage.ground_range))
        size = float(rng.uniform(0.9, 1.08))
        height = stage.figure_height(ground_y) * size
        lo, hi = walk_bounds(stage, height)
        x = float(rng.uniform(lo, hi))
        for _ in range(20):  # keep figures apart so they rarely overlap at the start
            if all(abs(x - o.x) > 0.3 * stage.aspect / k for o in states):
                break
            x = float(rng.uniform(lo, hi))
        has_chair = bool(rng.random() < 0.55)
        fig = Figure(
            track=track0 + j,
            start_frame=start,
            end_frame=end,
            fade_in=0 if start == 0 else fade,
            fade_out=0 if end == n_total else fade,
            ground_y=ground_y,
            size=size,
            x0=x,
            facing0=1 if rng.random() < 0.5 else -1,
            has_chair=has_chair,
            seated0=has_chair and bool(rng.random() < 0.4),
            sit_lean=float(rng.uniform(0.25, 0.5)),
            sway_phase=float(rng.uniform(0, 2 * math.pi)),
            look=_random_look(rng),
        )
        posture = "seated" if fig.seated0 else "stand"
        states.append(_FigureState(fig, height, posture, x, fig.facing0, has_chair, start))
    return states


def _plan_episode(
    rng: np.random.Generator,
    start: int,
    end: int,
    n_total: int,
    fps: float,
    stage: Stage,
    next_track: int,
    mix: Mapping[str, float],
) -> tuple[list[Figure], list[Segment], int]:
    """Figures, their segments, and the episode's (possibly earlier) end frame."""
    k = int(rng.choice(4, p=[0.07, 0.68, 0.18, 0.07]))
    if k == 0 and n_total - start > 30 * fps:
        end = min(end, start + _frames(rng.uniform(8.0, 25.0), fps))
    states = _place_figures(rng, k, start, end, n_total, fps, stage, next_track)
    fade = _frames(FADE_S, fps)
    limit = end - (fade if end < n_total else 0) - _frames(0.5, fps)
    t = start + (fade if start > 0 else 0) + _frames(rng.uniform(0.8, 3.0), fps)
    last_end = t
    exclude: int | None = None
    while states:
        candidates = [i for i, s in enumerate(states) if s.posture != "lying" and i != exclude]
        if not candidates:
            break
        weights = np.array([0.6 if i == 0 else 0.4 / max(1, k - 1) for i in candidates])
        i = candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]
        st = states[i]
        label = _choose_action(rng, st, mix)
        if label is None:
            break
        trial = _FigureState(**{**st.__dict__, "actions": st.actions})
        seg = _plan_action(rng, trial, label, max(t, st.busy_until + _frames(MIN_GAP_S, fps)), fps, stage)
        if seg.end_frame > limit:
            break
        states[i] = trial
        trial.actions.append(seg)
        trial.busy_until = seg.end_frame
        last_end = max(last_end, seg.end_frame)
        if k > 1 and rng.random() < 0.15:  # another figure starts while this one is still acting
            t, exclude = seg.start_frame + int(rng.uniform(0.3, 0.8) * seg.n_frames), i
        else:
            t, exclude = last_end + _frames(rng.uniform(MIN_GAP_S, 4.0), fps), None
    if states and all(s.posture == "lying" for s in states):
        early = last_end + _frames(rng.uniform(3.0, 10.0), fps) + fade
        if early < end and n_total - early >= 15 * fps:
            end = early
    figures, segments = [], []
    for st in states:
        fig = st.figure
        if fig.end_frame != end:
            fig = Figure(**{**fig.__dict__, "end_frame": end})
        figures.append(fig)
        segments.extend(_fill_idle(rng, fig, st.actions, fps))
    return figures, segments, end


def _fill_idle(rng: np.random.Generator, fig: Figure, actions: list[Segment], fps: float) -> list[Segment]:
    """The figure's full, contiguous segment list: its actions plus no-action spans between them."""
    out: list[Segment] = []
    posture = "seated" if fig.seated0 else "stand"
    t = fig.start_frame
    carry: dict[str, float] = {}
    for a in [*actions, None]:
        stop = fig.end_frame if a is None else a.start_frame
        out.extend(_idle_span(rng, fig.track, posture, t, stop, fps, carry))
        if a is None:
            break
        out.append(a)
        posture = _POSTURE_AFTER.get(a.kind, posture)
        if a.kind == "fall":
            carry = dict(a.params)  # lying holds the fall's final pose
        t = a.end_frame
    return out


def _idle_span(
    rng: np.random.Generator, track: int, posture: str, start: int, stop: int, fps: float, carry: dict
) -> list[Segment]:
    if stop <= start:
        return []
    kind = _IDLE_OF_POSTURE[posture]
    span = (stop - start) / fps
    if posture == "lying" or span < 3.5 or rng.random() >= 0.35:
        return [Segment(track, kind, start, stop, dict(carry) if posture == "lying" else {})]
    # a "hold": raise an arm, keep it still, lower it (unlabelled look-alike of wave)
    h0 = start + _frames(rng.uniform(0.8, max(0.8, span - 2.7)), fps)
    room = (stop - h0) / fps - 0.8
    h1 = min(stop - 1, h0 + _frames(rng.uniform(1.5, max(1.6, min(4.5, room))), fps))
    params = {**_arm_raise_params(rng), "seated": float(posture == "seated")}
    return [
        Segment(track, kind, start, h0),
        Segment(track, "hold", h0, h1, params),
        Segment(track, kind, h1, stop),
    ]


def _plan_distractors(rng: np.random.Generator, n_total: int, fps: float, stage: Stage) -> list[Distractor]:
    out: list[Distractor] = []
    t = _frames(rng.uniform(3.0, 40.0), fps)
    while t < n_total:
        kind = DISTRACTOR_KINDS[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
        if kind == "swing":
            n = _frames(rng.uniform(3.0, 9.0), fps)
            p = {"freq": float(rng.uniform(0.5, 1.5)), "amp": float(rng.uniform(0.2, 0.5))}
        else:
            ground_y = float(rng.uniform(*stage.ground_range))
            h = stage.figure_height(ground_y)
            velocity = float(rng.uniform(0.4, 1.4) * h)
            n = _frames(min(12.0, (stage.aspect + h) / velocity), fps)
            p = {
                "ground_y": ground_y,
                "direction": 1.0 if rng.random() < 0.5 else -1.0,
                "size": float(rng.uniform(0.05, 0.09) * h if kind == "ball" else rng.uniform(0.3, 0.5) * h),
                "bounce_hz": float(rng.uniform(0.8, 2.0)),
                "bounce": float(rng.uniform(0.1, 0.4) * h),
                "r": float(rng.uniform(40, 240)),
                "g": float(rng.uniform(40, 240)),
                "b": float(rng.uniform(40, 240)),
            }
        p["frames"] = float(n)  # planned length; the video's end may cut it short
        out.append(Distractor(kind, t, min(n_total, t + n), p))
        t = t + n + _frames(rng.uniform(10.0, 60.0), fps)
    return out
