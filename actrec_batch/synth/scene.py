"""A camera's fixed look: room background, perspective, lighting drift, shake and sensor noise.

A :class:`Scene` is drawn once per camera from its own random stream, so every file of a camera
shares the viewpoint; only the per-file noise/jitter streams differ. The background is rendered
once per video (vectorised, float32 0..255) and reused for every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from actrec_batch.synth.timeline import Stage

Color = tuple[float, float, float]


@dataclass(frozen=True)
class Clutter:
    """A static rectangle (door, picture, shelf, box) in frame fractions: ``[x0, x1) x [y0, y1)``."""

    x0: float
    y0: float
    x1: float
    y1: float
    color: Color
    border: float  # darker outline width, frame-height fraction (0: none)


@dataclass(frozen=True)
class Scene:
    """One camera's appearance. Geometry is in frame fractions so any resolution renders it."""

    horizon_y: float
    near_height: float
    wall_top: Color
    wall_bottom: Color
    floor_far: Color
    floor_near: Color
    floor_pattern: str  # "tiles" | "planks" | "plain"
    floor_scale: float
    floor_contrast: float
    wall_stripes: float  # stripe contrast (0: plain wall)
    wall_stripe_period: float
    texture_amp: float
    texture_seed: int
    vignette: float
    clutter: tuple[Clutter, ...]
    lamp_x_frac: float  # of the frame width
    lamp_length: float  # frame-height fraction
    lamp_color: Color
    gain: float
    drift_amp: float
    drift_period_s: float
    drift_phase: float
    flicker_amp: float
    flicker_hz: float
    tint_amp: float
    jitter: float  # camera shake amplitude, frame-height fraction
    start_hour: int  # UTC hour the camera's first file starts

    def stage(self, aspect: float) -> Stage:
        return Stage(
            aspect=aspect,
            horizon_y=self.horizon_y,
            near_height=self.near_height,
            lamp_x=self.lamp_x_frac * aspect,
        )


def _color(rng: np.random.Generator, lo: float, hi: float, spread: float = 25.0) -> Color:
    base = rng.uniform(lo, hi)
    return tuple(float(np.clip(base + rng.uniform(-spread, spread), 0, 255)) for _ in range(3))


def make_scene(rng: np.random.Generator, *, latest_start_hour: int = 21) -> Scene:
    """Draw a camera's look. ``latest_start_hour`` bounds the UTC hour its footage starts at."""
    horizon = float(rng.uniform(0.32, 0.52))
    wall_top = _color(rng, 90, 200)
    clutter = []
    for _ in range(int(rng.integers(3, 9))):
        on_floor = rng.random() < 0.4
        w = float(rng.uniform(0.06, 0.25))
        if on_floor:
            bottom = float(rng.uniform(horizon + 0.05, horizon + 0.25))
            h = float((bottom - horizon) * rng.uniform(0.4, 1.2))
            x0 = float(rng.uniform(-0.05, 1.0))
            clutter.append(Clutter(x0, bottom - h, x0 + w * 0.7, bottom, _color(rng, 40, 170, 40), 0.004))
        else:
            bottom_max = horizon + (0.02 if rng.random() < 0.3 else -0.02)  # some stand on the floor line
            h = float(rng.uniform(0.05, max(0.06, 0.9 * bottom_max - 0.02)))
            y1 = float(rng.uniform(min(h + 0.02, bottom_max), bottom_max))
            x0 = float(rng.uniform(-0.05, 1.0))
            border = float(rng.choice([0.0, 0.006, 0.012]))
            clutter.append(Clutter(x0, y1 - h, x0 + w, y1, _color(rng, 30, 230, 50), border))
    return Scene(
        horizon_y=horizon,
        near_height=float(rng.uniform(0.5, 0.62)),
        wall_top=wall_top,
        wall_bottom=tuple(float(c * rng.uniform(0.75, 1.0)) for c in wall_top),
        floor_far=_color(rng, 50, 170),
        floor_near=_color(rng, 60, 190),
        floor_pattern=str(rng.choice(["tiles", "planks", "plain"])),
        floor_scale=float(rng.uniform(2.0, 6.0)),
        floor_contrast=float(rng.uniform(0.04, 0.14)),
        wall_stripes=float(rng.choice([0.0, rng.uniform(0.02, 0.07)])),
        wall_stripe_period=float(rng.uniform(0.02, 0.12)),
        texture_amp=float(rng.uniform(4.0, 14.0)),
        texture_seed=int(rng.integers(2**31)),
        vignette=float(rng.uniform(0.0, 0.3)),
        clutter=tuple(clutter),
        lamp_x_frac=float(rng.uniform(0.1, 0.9)),
        lamp_length=float(rng.uniform(0.1, max(0.12, horizon - 0.1))),
        lamp_color=_color(rng, 60, 230, 60),
        gain=float(rng.uniform(0.8, 1.1)),
        drift_amp=float(rng.uniform(0.03, 0.12)),
        drift_period_s=float(rng.uniform(20.0, 120.0)),
        drift_phase=float(rng.uniform(0, 2 * math.pi)),
        flicker_amp=float(rng.choice([0.0, rng.uniform(0.005, 0.03)])),
        flicker_hz=float(rng.uniform(0.3, 4.0)),
        tint_amp=float(rng.uniform(0.0, 0.04)),
        jitter=float(rng.uniform(0.0005, 0.004)),
        start_hour=int(rng.integers(0, max(0, latest_start_hour) + 1)),
    )


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a small 2D grid to ``(height, width)``."""
    gh, gw = grid.shape
    ys = np.linspace(0, gh - 1, height)
    xs = np.linspace(0, gw - 1, width)
    rows = np.stack([np.interp(xs, np.arange(gw), grid[r]) for r in range(gh)])
    return np.stack([np.interp(ys, np.arange(gh), rows[:, c]) for c in range(width)], axis=1)


def render_background(scene: Scene, width: int, height: int, pad: int = 0) -> np.ndarray:
    """The static room, ``(height + 2 pad, width + 2 pad, 3)`` float32 in 0..255.

    ``pad`` extra pixels on every side let camera shake reveal real content at the edges.
    """
    hh, ww = height + 2 * pad, width + 2 * pad
    y = ((np.arange(hh) - pad + 0.5) / height)[:, None]  # frame-height units
    x = ((np.arange(ww) - pad + 0.5) / height)[None, :]
    aspect = width / height
    hz = scene.horizon_y
    img = np.empty((hh, ww, 3), dtype=np.float64)
    wall_t = np.clip(y / hz, 0, 1)
    floor_t = np.clip((y - hz) / (1 - hz), 0, 1)
    on_floor = y >= hz
    for c in range(3):
        wall = scene.wall_top[c] + (scene.wall_bottom[c] - scene.wall_top[c]) * wall_t
        floor = scene.floor_far[c] + (scene.floor_near[c] - scene.floor_far[c]) * floor_t
        img[:, :, c] = np.where(on_floor, floor, wall)
    shade = np.ones((hh, ww))
    if scene.wall_stripes:
        stripes = np.sin(2 * math.pi * x / scene.wall_stripe_period) > 0
        shade += np.where(on_floor, 0.0, np.where(stripes, scene.wall_stripes, -scene.wall_stripes))
    if scene.floor_pattern != "plain":
        depth = 1.0 / np.maximum(y - hz, 1e-3)  # ground-plane distance
        u = (x - aspect / 2) * depth * scene.floor_scale * 0.25
        v = depth * scene.floor_scale * 0.1
        if scene.floor_pattern == "tiles":
            cell = (np.floor(u) + np.floor(v)) % 2
        else:
            plank = np.floor(u * 2.0)
            cell = (np.sin(plank * 12.9898) * 43758.5453) % 1.0  # per-plank shade
        fade = np.clip((y - hz) / 0.12, 0, 1)  # no aliasing near the horizon
        shade += np.where(on_floor, (cell - 0.5) * 2 * scene.floor_contrast * fade, 0.0)
    trng = np.random.default_rng(scene.texture_seed)
    blotches = _upsample(trng.normal(0, 1, size=(7, 9)), hh, ww)
    img += (scene.texture_amp * blotches + trng.normal(0, 1.5, size=(hh, ww)))[:, :, None]
    img *= shade[:, :, None]
    board = (y >= hz - 0.012) & (y < hz + 0.004)
    img[np.broadcast_to(board, (hh, ww))] *= 0.7
    for cl in scene.clutter:
        _fill_rect(img, cl, height, pad, darker=0.55)
    cx, cy = aspect / 2, 0.45
    r2 = ((x - cx) ** 2 + (y - cy) ** 2) / (cx * cx + cy * cy)
    img *= (1.0 - scene.vignette * r2)[:, :, None]
    return np.clip(img, 0, 255).astype(np.float32)


def _fill_rect(img: np.ndarray, cl: Clutter, height: int, pad: int, darker: float) -> None:
    """Fill a clutter rectangle (x in frame-width fractions, y in frame-height fractions)."""
    hh, ww = img.shape[:2]
    width = ww - 2 * pad

    def span(a: float, b: float, scale: int, limit: int) -> tuple[int, int]:
        lo = int(np.clip(round(a * scale) + pad, 0, limit))
        return lo, int(np.clip(round(b * scale) + pad, lo, limit))

    (x0, x1), (y0, y1) = span(cl.x0, cl.x1, width, ww), span(cl.y0, cl.y1, height, hh)
    color = np.array(cl.color)
    if cl.border:
        img[y0:y1, x0:x1] = color * darker
        b = max(1, round(cl.border * height))
        x0, x1, y0, y1 = x0 + b, max(x0 + b, x1 - b), y0 + b, max(y0 + b, y1 - b)
    img[y0:y1, x0:x1] = color


def frame_gains(scene: Scene, n: int, fps: float, t0_s: float = 0.0) -> np.ndarray:
    """Per-frame, per-channel illumination gain ``(n, 3)``: slow drift, flicker, colour tint."""
    t = t0_s + np.arange(n) / fps
    drift = 1.0 + scene.drift_amp * np.sin(2 * math.pi * t / scene.drift_period_s + scene.drift_phase)
    flicker = scene.flicker_amp * np.sin(2 * math.pi * scene.flicker_hz * t)
    tint = scene.tint_amp * np.sin(2 * math.pi * t / (1.7 * scene.drift_period_s))
    g = (scene.gain * drift + flicker)[:, None] * np.ones(3)
    g[:, 0] *= 1.0 + tint
    g[:, 2] *= 1.0 - tint
    return g.astype(np.float32)


def camera_shake(scene: Scene, rng: np.random.Generator, n: int, fps: float, height: int) -> np.ndarray:
    """Per-frame content offsets ``(n, 2)`` in pixels (x, y): a slow wander plus small tremor."""
    amp = scene.jitter * height
    t = np.arange(n) / fps
    out = np.empty((n, 2))
    for k in range(2):
        f1, f2 = rng.uniform(0.05, 0.3), rng.uniform(1.0, 4.0)
        p1, p2 = rng.uniform(0, 2 * math.pi, size=2)
        tremor = rng.normal(0, 0.25, size=n)
        out[:, k] = amp * (
            0.7 * np.sin(2 * math.pi * f1 * t + p1) + 0.3 * np.sin(2 * math.pi * f2 * t + p2) + tremor
        )
    return out
