"""Anti-aliased drawing primitives on float32 RGB images (values 0..255), in place.

Each primitive touches only its bounding box, so drawing a figure costs a few dozen small
numpy operations. Coordinates are in pixels with pixel ``(row i, col j)`` centred at
``(x, y) = (j + 0.5, i + 0.5)``; shapes get a one-pixel soft edge.
"""

from __future__ import annotations

import numpy as np

_CENTRES = np.arange(8192, dtype=np.float32) + np.float32(0.5)


def _box(
    img: np.ndarray, x0: float, y0: float, x1: float, y1: float, pad: float
) -> tuple[int, int, int, int]:
    h, w = img.shape[:2]
    xa = max(int(x0 - pad), 0)
    xb = min(int(x1 + pad) + 1, w)
    ya = max(int(y0 - pad), 0)
    yb = min(int(y1 + pad) + 1, h)
    return xa, xb, ya, yb


def draw_capsule(
    img: np.ndarray,
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    radius: float,
    color: np.ndarray,
    alpha: float = 1.0,
) -> None:
    """Paint the set of points within ``radius`` of segment (x0,y0)-(x1,y1) with ``color`` (3,)."""
    xa, xb, ya, yb = _box(img, min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), radius + 1.0)
    if xa >= xb or ya >= yb:
        return
    px = _CENTRES[xa:xb] - np.float32(x0)
    py = (_CENTRES[ya:yb] - np.float32(y0))[:, None]
    dx, dy = x1 - x0, y1 - y0
    l2 = dx * dx + dy * dy
    if l2 > 1e-6:
        t = px * np.float32(dx / l2) + py * np.float32(dy / l2)
        np.minimum(np.maximum(t, 0.0, out=t), 1.0, out=t)  # ufuncs: np.clip's wrapper costs more here
        ex = px - t * np.float32(dx)
        ey = py - t * np.float32(dy)
        d2 = ex * ex + ey * ey
    else:
        d2 = px * px + py * py
    cov = np.float32(radius + 0.5) - np.sqrt(d2)
    np.minimum(np.maximum(cov, 0.0, out=cov), 1.0, out=cov)
    if alpha < 1.0:
        cov *= np.float32(alpha)
    region = img[ya:yb, xa:xb]
    region += cov[:, :, None] * (color - region)


def draw_rect(
    img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: np.ndarray, alpha: float = 1.0
) -> None:
    """Paint the axis-aligned rectangle ``[x0, x1) x [y0, y1)`` with soft one-pixel edges."""
    xa, xb, ya, yb = _box(img, x0, y0, x1, y1, 1.0)
    if xa >= xb or ya >= yb:
        return
    px = _CENTRES[xa:xb]
    py = _CENTRES[ya:yb]
    cx = np.clip(np.minimum(px - np.float32(x0), np.float32(x1) - px) + 0.5, 0.0, 1.0)
    cy = np.clip(np.minimum(py - np.float32(y0), np.float32(y1) - py) + 0.5, 0.0, 1.0)
    cov = cy[:, None] * (cx * np.float32(alpha))
    region = img[ya:yb, xa:xb]
    region += cov[:, :, None] * (color - region)


def darken_ellipse(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, strength: float) -> None:
    """Multiply a soft-edged ellipse by ``1 - strength`` at its centre (a cast shadow)."""
    rx, ry = max(rx, 0.5), max(ry, 0.5)
    xa, xb, ya, yb = _box(img, cx - rx, cy - ry, cx + rx, cy + ry, 1.0)
    if xa >= xb or ya >= yb:
        return
    u = (_CENTRES[xa:xb] - np.float32(cx)) * np.float32(1.0 / rx)
    v = (_CENTRES[ya:yb] - np.float32(cy)) * np.float32(1.0 / ry)
    r = np.sqrt(v[:, None] ** 2 + u * u)
    shade = np.clip(1.0 - r, 0.0, 0.5) * np.float32(2.0 * strength)
    region = img[ya:yb, xa:xb]
    region *= (1.0 - shade)[:, :, None]
