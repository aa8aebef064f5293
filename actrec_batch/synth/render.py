"""Frames from a timeline: background + lamp + chairs + shadows + figures + distractors,
then lighting, camera shake and sensor noise.

:func:`render_video` is pure: the same :class:`VideoSpec` always yields the same frames.
Per-video work (background, poses, joint positions, lighting) is precomputed; each frame then
costs one background crop, a few dozen small bounding-box draws and three full-frame operations.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from actrec_batch.synth import poses as P
from actrec_batch.synth.raster import darken_ellipse, draw_capsule, draw_rect
from actrec_batch.synth.scene import Scene, camera_shake, frame_gains, render_background
from actrec_batch.synth.timeline import Distractor, Figure, Timeline

_SUBPIXEL = 4  # camera shake is rendered in quarter pixels
_NOISE_MARGIN = 32
_WAIST = P.N_JOINTS  # extra joint appended at render time
_CHAIR_COLORS = ((120, 80, 45), (90, 90, 95), (160, 120, 70), (60, 60, 70), (150, 40, 40), (40, 70, 130))


@dataclass(frozen=True)
class VideoSpec:
    """Everything that determines a video's frames."""

    timeline: Timeline
    scene: Scene
    width: int = 320
    height: int = 240
    noise: float = 0.02  # sensor-noise standard deviation, fraction of full scale
    noise_seed: int = 0  # seeds the per-frame sensor noise and camera shake

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(f"frame size must be at least 16x16, got {self.width}x{self.height}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")


@dataclass
class _Body:
    """A figure's precomputed pixel geometry and paint list."""

    figure: Figure
    start: int
    joints: np.ndarray  # (n, 16, 2) pixels, shake included
    alpha: np.ndarray
    ground_px: float
    scale_px: float  # figure height in pixels
    parts: list[tuple[int, int, float, np.ndarray]]  # (joint a, joint b, radius px, color)
    chair: list[tuple[float, float, float, float, float]]  # static capsules without shake
    chair_color: np.ndarray


def _paint_list(fig: Figure, scale: float) -> list[tuple[int, int, float, np.ndarray]]:
    look = fig.look

    def col(c: tuple[float, float, float], far: bool = False) -> np.ndarray:
        return np.array(c, dtype=np.float32) * np.float32(0.72 if far else 1.0)

    b = look.build * scale
    sleeve = look.skin if look.short_sleeves else look.shirt
    parts: list[tuple[int, int, float, np.ndarray]] = []
    for far in (True, False):
        if not far:
            parts += [
                (_WAIST, P.SHOULDER, 0.064 * b, col(look.shirt)),
                (P.NECK_J, P.NECK_J, 0.03 * scale, col(look.skin)),
            ]
        knee, ankle, toe = (P.KNEE_F, P.ANKLE_F, P.TOE_F) if far else (P.KNEE_N, P.ANKLE_N, P.TOE_N)
        parts += [
            (P.PELVIS, knee, 0.043 * b, col(look.trousers, far)),
            (knee, ankle, 0.034 * b, col(look.trousers, far)),
            (ankle, toe, 0.022 * b, col(look.shoes, far)),
        ]
        if far:
            parts.append((P.PELVIS, _WAIST, 0.058 * b, col(look.trousers)))
        else:
            parts += [
                (P.HEAD_J, P.HEAD_J, P.HEAD_R * scale, col(look.skin)),
                (P.HAIR_J, P.HAIR_J, 0.85 * P.HEAD_R * scale, col(look.hair)),
            ]
        elbow, hand = (P.ELBOW_F, P.HAND_F) if far else (P.ELBOW_N, P.HAND_N)
        arm = [
            (P.SHOULDER, elbow, 0.03 * b, col(look.shirt, far)),
            (elbow, hand, 0.025 * b, col(sleeve, far)),
            (hand, hand, 0.028 * scale, col(look.skin, far)),
        ]
        parts = arm + parts if far else parts + arm
    return parts


def _chair_capsules(
    fig: Figure, height: float, hp: float, off_x: float
) -> list[tuple[float, float, float, float, float]]:
    """Seat, two legs and a backrest under where the figure's pelvis is when seated (pixels)."""
    s, x0, scale = fig.facing0, off_x + fig.x0 * hp, height * hp
    seat_x, seat_y = P.SEATED[P.PX], P.SEAT_PY - 0.06
    out = []
    for (ax, ay), (bx, by), r in (
        ((seat_x - 0.1, seat_y), (seat_x + 0.13, seat_y), 0.022),
        ((seat_x + 0.11, seat_y), (seat_x + 0.11, 0.0), 0.014),
        ((seat_x - 0.08, seat_y), (seat_x - 0.08, 0.0), 0.014),
        ((seat_x - 0.1, seat_y), (seat_x - 0.13, seat_y + 0.3), 0.016),
    ):
        out.append(
            (
                x0 + s * ax * scale,
                (fig.ground_y - ay * height) * hp,
                x0 + s * bx * scale,
                (fig.ground_y - by * height) * hp,
                r * scale,
            )
        )
    return out


def _bodies(spec: VideoSpec, shake: np.ndarray) -> list[_Body]:
    tl, hp = spec.timeline, float(spec.height)
    off_x = (spec.width - tl.stage.aspect * hp) / 2.0
    by_track: dict[int, list] = {}
    for seg in tl.segments:
        by_track.setdefault(seg.track, []).append(seg)
    bodies = []
    for fig in tl.figures:
        motion = P.figure_motion(
            fig, sorted(by_track[fig.track], key=lambda s: s.start_frame), tl.fps, tl.stage
        )
        height = fig.height(tl.stage)
        pts = P.skeleton_points(motion.poses, motion.facing)
        waist = pts[:, P.PELVIS] + 0.3 * (pts[:, P.SHOULDER] - pts[:, P.PELVIS])
        pts = np.concatenate([pts, waist[:, None]], axis=1)
        frames = slice(fig.start_frame, fig.end_frame)
        px = np.empty_like(pts)
        px[..., 0] = off_x + (motion.anchor_x[:, None] + pts[..., 0] * height) * hp + shake[frames, 0, None]
        px[..., 1] = (fig.ground_y - pts[..., 1] * height) * hp + shake[frames, 1, None]
        scale = height * hp
        chair = _chair_capsules(fig, height, hp, off_x) if fig.has_chair else []
        color = np.array(_CHAIR_COLORS[(fig.track * 7 + int(fig.x0 * 100)) % len(_CHAIR_COLORS)], np.float32)
        bodies.append(
            _Body(
                fig,
                fig.start_frame,
                px,
                motion.alpha,
                fig.ground_y * hp,
                scale,
                _paint_list(fig, scale),
                chair,
                color,
            )
        )
    return bodies


def _draw_body(img: np.ndarray, body: _Body, i: int, shake: tuple[float, float]) -> None:
    k = i - body.start
    alpha = float(body.alpha[k])
    sx, sy = shake
    for ax, ay, bx, by, r in body.chair:
        draw_capsule(img, ax + sx, ay + sy, bx + sx, by + sy, r, body.chair_color, alpha)
    j = body.joints[k]
    xs = j[:, 0]
    lowest = float(j[:, 1].max())
    lift = max(0.0, (body.ground_px + sy - lowest) / body.scale_px)
    x_lo, x_hi = float(xs.min()), float(xs.max())
    darken_ellipse(
        img,
        0.5 * (x_lo + x_hi),
        body.ground_px + sy,
        0.5 * (x_hi - x_lo) + 0.1 * body.scale_px,
        0.045 * body.scale_px,
        0.35 * alpha * max(0.3, 1.0 - 2.0 * lift),
    )
    pts = j.tolist()
    for a, b, r, color in body.parts:
        (x0, y0), (x1, y1) = pts[a], pts[b]
        draw_capsule(img, x0, y0, x1, y1, r, color, alpha)


@dataclass
class _Mover:
    """A ball or cart crossing the floor."""

    dist: Distractor
    ground_px: float
    xs: np.ndarray  # centre x per frame of [start, end), pixels
    lift: np.ndarray  # pixels above the floor
    size: float  # pixels
    color: np.ndarray


def _movers(spec: VideoSpec) -> list[_Mover]:
    tl, hp = spec.timeline, float(spec.height)
    off_x = (spec.width - tl.stage.aspect * hp) / 2.0
    out = []
    for d in tl.distractors:
        if d.kind == "swing":
            continue
        p = d.params
        margin = p["size"] * (2.0 if d.kind == "ball" else 0.6)
        dist = tl.stage.aspect + 2 * margin
        k = np.arange(d.end_frame - d.start_frame)
        x = (
            np.where(p["direction"] > 0, -margin, tl.stage.aspect + margin)
            + p["direction"] * dist * k / p["frames"]
        )
        lift = np.zeros(len(k))
        if d.kind == "ball":
            lift = p["bounce"] * np.abs(np.sin(math.pi * p["bounce_hz"] * k / tl.fps))
        out.append(
            _Mover(
                d,
                p["ground_y"] * hp,
                off_x + x * hp,
                lift * hp,
                p["size"] * hp,
                np.array([p["r"], p["g"], p["b"]], np.float32),
            )
        )
    return out


def _draw_mover(img: np.ndarray, m: _Mover, i: int, shake: tuple[float, float]) -> None:
    k = i - m.dist.start_frame
    x, y = float(m.xs[k]) + shake[0], m.ground_px + shake[1]
    if m.dist.kind == "ball":
        lift = float(m.lift[k])
        darken_ellipse(img, x, y, 1.2 * m.size, 0.35 * m.size, 0.3 * max(0.3, 1 - lift / (4 * m.size)))
        draw_capsule(img, x, y - m.size - lift, x, y - m.size - lift, m.size, m.color)
    else:
        w, h, wheel = m.size, 0.55 * m.size, 0.09 * m.size
        darken_ellipse(img, x, y, 0.6 * w, 0.12 * w, 0.3)
        draw_rect(img, x - w / 2, y - h - 2 * wheel, x + w / 2, y - 2 * wheel, m.color)
        for wx in (x - 0.32 * w, x + 0.32 * w):
            draw_capsule(img, wx, y - wheel, wx, y - wheel, wheel, m.color * np.float32(0.3))


def _lamp_angles(tl: Timeline) -> np.ndarray:
    theta = np.zeros(tl.n_frames)
    for d in tl.distractors:
        if d.kind != "swing":
            continue
        k = np.arange(d.end_frame - d.start_frame)
        t = k / tl.fps
        env = np.minimum(1.0, t / 0.3) * (1.0 - k / max(1, d.params["frames"]))
        theta[d.start_frame : d.end_frame] = (
            d.params["amp"] * np.sin(2 * math.pi * d.params["freq"] * t) * env
        )
    return theta


def _shifted_backgrounds(bg: np.ndarray, phases: int) -> dict[tuple[int, int], np.ndarray]:
    """``bg`` shifted right/down by (fx, fy)/phases pixels (bilinear), for every phase pair."""
    out = {}
    for fy in range(phases):
        rows = bg.copy()
        a = fy / phases
        rows[1:] = (1 - a) * bg[1:] + a * bg[:-1]
        for fx in range(phases):
            b = fx / phases
            img = rows.copy()
            img[:, 1:] = (1 - b) * rows[:, 1:] + b * rows[:, :-1]
            out[(fy, fx)] = img
    return out


def render_video(spec: VideoSpec) -> Iterator[np.ndarray]:
    """Yield the video's frames in order: ``spec.timeline.n_frames`` arrays of shape
    ``(height, width, 3)``, dtype uint8, RGB. Deterministic in ``spec``."""
    tl, scene, w, h = spec.timeline, spec.scene, spec.width, spec.height
    rng = np.random.default_rng(spec.noise_seed)
    phases = _SUBPIXEL if w * h <= 640 * 480 else 1
    shake_raw = camera_shake(scene, rng, tl.n_frames, tl.fps, h)
    pad = int(math.ceil(np.abs(shake_raw).max(initial=0.0))) + 2
    shake = np.round(shake_raw * phases) / phases
    backgrounds = _shifted_backgrounds(render_background(scene, w, h, pad), phases)
    gains = frame_gains(scene, tl.n_frames, tl.fps)
    sigma = spec.noise * 255.0
    bank = (
        rng.standard_normal((h + _NOISE_MARGIN, w + _NOISE_MARGIN, 3), dtype=np.float32) * np.float32(sigma)
        if sigma > 0
        else None
    )
    noise_at = rng.integers(0, _NOISE_MARGIN + 1, size=(tl.n_frames, 2))
    bodies = _bodies(spec, shake)
    movers = _movers(spec)
    depth_order = sorted(
        [(b.figure.ground_y, 0, idx) for idx, b in enumerate(bodies)]
        + [(m.dist.params["ground_y"], 1, idx) for idx, m in enumerate(movers)]
    )
    lamp = _lamp_angles(tl)
    off_x = (w - tl.stage.aspect * h) / 2.0
    lamp_x, lamp_len = off_x + tl.stage.lamp_x * h, scene.lamp_length * h
    lamp_color = np.array(scene.lamp_color, np.float32)
    cord_color = lamp_color * np.float32(0.4)
    for i in range(tl.n_frames):
        sx, sy = float(shake[i, 0]), float(shake[i, 1])
        kx, ky = math.floor(sx), math.floor(sy)
        bg = backgrounds[(int(round((sy - ky) * phases)) % phases, int(round((sx - kx) * phases)) % phases)]
        frame = bg[pad - ky : pad - ky + h, pad - kx : pad - kx + w].copy()
        th = float(lamp[i])
        ex, ey = lamp_x + sx + lamp_len * math.sin(th), sy + lamp_len * math.cos(th)
        draw_capsule(frame, lamp_x + sx, sy - 2.0, ex, ey, max(0.6, 0.003 * h), cord_color)
        cx, cy = 0.05 * h * math.cos(th), -0.05 * h * math.sin(th)
        draw_capsule(frame, ex - cx, ey - cy, ex + cx, ey + cy, 0.022 * h, lamp_color)
        for _, kind, idx in depth_order:
            if kind == 0:
                body = bodies[idx]
                if body.figure.start_frame <= i < body.figure.end_frame:
                    _draw_body(frame, body, i, (sx, sy))
            else:
                m = movers[idx]
                if m.dist.start_frame <= i < m.dist.end_frame:
                    _draw_mover(frame, m, i, (sx, sy))
        frame *= gains[i]
        if bank is not None:
            ox, oy = noise_at[i]
            frame += bank[oy : oy + h, ox : ox + w]
        np.minimum(np.maximum(frame, 0.0, out=frame), 255.0, out=frame)
        yield frame.astype(np.uint8)
