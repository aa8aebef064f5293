"""Poses: timeline segments -> per-frame joint angles -> 2D joint positions.

A pose is 12 numbers (see the ``PX`` .. ``HEAD`` indices): the pelvis position relative to the
figure's anchor on the ground (body-height units, ``x`` forward along the facing, ``y`` up), the
torso's forward lean, and limb angles in radians. Upper limbs are measured from the torso's
"down" axis (0 hangs along the body, positive swings forward); elbows bend the forearm forward,
knees bend the shin backward. :func:`skeleton_points` turns poses into joint positions.

Every generator is a pure function of its segment: same parameters, same frames. Actions start
(and end) exactly at their base posture so consecutive segments join without jumps;
``stand_up`` is the frame-for-frame time reversal of ``sit_down``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from actrec_batch.synth.timeline import Figure, Segment, Stage, fold_path, gait_envelope, walk_bounds

# Body proportions, in body heights (a standing figure is ~0.97 tall).
ANKLE, THIGH, SHIN, TORSO, NECK, HEAD_R = 0.03, 0.245, 0.235, 0.30, 0.035, 0.062
UPPER_ARM, FOREARM, FOOT = 0.165, 0.155, 0.07
STAND_PY = ANKLE + 0.995 * (THIGH + SHIN)  # knees very slightly bent
SEAT_PY = ANKLE + SHIN + 0.01  # thighs level, shins upright
LYING_PY = 0.055  # pelvis height of a body lying on the floor

PX, PY, TORSO_LEAN, SH_N, EL_N, SH_F, EL_F, HIP_N, KN_N, HIP_F, KN_F, HEAD = range(12)
N_PARAMS = 12
FOOT_X_NEAR, FOOT_X_FAR = 0.03, -0.03  # standing feet, relative to the anchor

# Joint indices of skeleton_points()
(PELVIS, NECK_J, HEAD_J, HAIR_J, SHOULDER, ELBOW_N, HAND_N, ELBOW_F, HAND_F,
 KNEE_N, ANKLE_N, TOE_N, KNEE_F, ANKLE_F, TOE_F) = range(15)  # fmt: skip
N_JOINTS = 15


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _progress(n: int) -> np.ndarray:
    """``n`` evenly spaced values from 0 to 1 inclusive: a segment's first and last frame show
    exactly the postures it joins (so consecutive segments meet without a jump)."""
    return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)


def leg_ik(px: np.ndarray, py: np.ndarray, foot_x: float, torso: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hip (relative to the torso) and knee angles that put the ankle at ``(foot_x, ANKLE)``.

    The knee bends forward; out-of-reach targets straighten the leg towards them.
    """
    vx, vy = foot_x - px, ANKLE - py
    d = np.clip(np.hypot(vx, vy), 1e-6, THIGH + SHIN - 1e-6)
    line = np.arctan2(vx, -vy)
    alpha = np.arccos(np.clip((THIGH**2 + d**2 - SHIN**2) / (2 * THIGH * d), -1.0, 1.0))
    gamma = np.arccos(np.clip((THIGH**2 + SHIN**2 - d**2) / (2 * THIGH * SHIN), -1.0, 1.0))
    return line + alpha + torso, math.pi - gamma


def _with_legs_on_feet(pose: np.ndarray) -> np.ndarray:
    pose[:, HIP_N], pose[:, KN_N] = leg_ik(pose[:, PX], pose[:, PY], FOOT_X_NEAR, pose[:, TORSO_LEAN])
    pose[:, HIP_F], pose[:, KN_F] = leg_ik(pose[:, PX], pose[:, PY], FOOT_X_FAR, pose[:, TORSO_LEAN])
    return pose


def _standing() -> np.ndarray:
    pose = np.zeros((1, N_PARAMS))
    pose[0, [PY, TORSO_LEAN, SH_N, EL_N, SH_F, EL_F]] = [STAND_PY, 0.03, 0.08, 0.2, -0.06, 0.25]
    return _with_legs_on_feet(pose)[0]


STAND = _standing()


# ---------------------------------------------------------------- sit_down / stand_up


def _sit_curve(u: np.ndarray, lean: float) -> np.ndarray:
    """Standing (u=0) to seated (u=1): hips back, then down, torso leaning forward in between."""
    u = np.asarray(u, dtype=np.float64)
    back, down = _smooth(u * 1.4), _smooth((u - 0.2) / 0.8)
    pose = np.tile(STAND, (len(u), 1))
    pose[:, PX] = -THIGH * back
    # hips back first, then down -- but never further from the feet than the legs reach
    reach = THIGH + SHIN - 1e-4
    dx = np.abs(pose[:, PX] - FOOT_X_NEAR)
    highest = ANKLE + np.sqrt(np.maximum(reach**2 - dx**2, 0.0))
    pose[:, PY] = np.minimum(STAND_PY - (STAND_PY - SEAT_PY) * down, highest)
    pose[:, TORSO_LEAN] = STAND[TORSO_LEAN] + lean * np.sin(math.pi * u) ** 2 + 0.04 * down
    reach = np.sin(math.pi * u)
    pose[:, SH_N] = STAND[SH_N] + 0.7 * reach + 0.25 * down
    pose[:, SH_F] = STAND[SH_F] + 0.6 * reach + 0.35 * down
    pose[:, EL_N] = STAND[EL_N] + 0.5 * down
    pose[:, EL_F] = STAND[EL_F] + 0.45 * down
    return _with_legs_on_feet(pose)


SEATED = _sit_curve(np.array([1.0]), 0.0)[0]


def sit_down_poses(n: int, lean: float) -> np.ndarray:
    """``n`` frames of sitting down, shape ``(n, 12)``; ``lean`` is the peak forward lean (rad)."""
    return _sit_curve(_progress(n), lean)


def stand_up_poses(n: int, lean: float) -> np.ndarray:
    """Exactly :func:`sit_down_poses` played backwards: the same poses in reverse order."""
    return sit_down_poses(n, lean)[::-1].copy()


# ---------------------------------------------------------------- fall


def fall_curve(u: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """Upright (u=0) to lying (u=1): a wobble, an accelerating topple about the feet, an impact.

    ``p['direction']`` is +1 (forward, face down) or -1 (backward, face up).
    """
    u = np.asarray(u, dtype=np.float64)
    d, a = p["direction"], p["stumble"]
    v = np.clip((u - a) / (0.8 - a), 0.0, 1.0)  # topple progress
    wobble = -d * 0.12 * np.sin(math.pi * np.clip(u / a, 0.0, 1.0))
    impact = np.clip((u - 0.8) / 0.2, 0.0, 1.0)
    theta = wobble + d * (math.pi / 2) * v * v - d * 0.05 * np.sin(math.pi * impact)
    buckle = np.sin(math.pi * v)
    straighten = _smooth(u / 0.8)
    pose = np.tile(STAND, (len(u), 1))
    fwd = d > 0
    # final legs: face down -> knees bent a little (feet lift); face up -> knees drawn up a little
    pose[:, HIP_N] = STAND[HIP_N] * (1 - straighten) + 0.35 * buckle + (0.05 if fwd else 0.25) * straighten
    pose[:, HIP_F] = STAND[HIP_F] * (1 - straighten) + 0.25 * buckle + (-0.05 if fwd else 0.1) * straighten
    pose[:, KN_N] = STAND[KN_N] * (1 - straighten) + 0.7 * buckle + (0.2 if fwd else 0.45) * straighten
    pose[:, KN_F] = STAND[KN_F] * (1 - straighten) + 0.5 * buckle + (0.35 if fwd else 0.15) * straighten
    # rotate about the feet; bent knees shorten the leg, which lowers the pelvis
    leg = np.sqrt(THIGH**2 + SHIN**2 + 2 * THIGH * SHIN * np.cos(pose[:, KN_N]))
    pose[:, PX] = leg * np.sin(theta)
    pose[:, PY] = (ANKLE + leg) * np.cos(theta) + LYING_PY * np.abs(np.sin(theta))
    pose[:, TORSO_LEAN] = theta + 0.25 * d * buckle
    # arms end along the body or above the head, never through the floor
    above = p["arms"] >= 0.5
    final_n = (math.pi if above else 0.0) + (0.15 if fwd == above else -0.15)
    final_f = final_n + (0.1 if fwd == above else -0.1)
    flail = np.sin(2.5 * math.pi * v) * buckle
    pose[:, SH_N] = STAND[SH_N] * (1 - straighten) + final_n * straighten + 0.8 * flail
    pose[:, SH_F] = STAND[SH_F] * (1 - straighten) + final_f * straighten - 0.6 * flail
    pose[:, EL_N] = STAND[EL_N] * (1 - straighten) + 0.5 * buckle + 0.15 * straighten
    pose[:, EL_F] = STAND[EL_F] * (1 - straighten) + 0.4 * buckle + 0.2 * straighten
    pose[:, HEAD] = -0.3 * d * straighten
    return pose


def fall_poses(n: int, p: dict[str, float]) -> np.ndarray:
    return fall_curve(_progress(n), p)


def lying_pose(p: dict[str, float]) -> np.ndarray:
    """The still pose a fall ends in (its ``u = 1``)."""
    return fall_curve(np.array([1.0]), p)[0]


# ---------------------------------------------------------------- jump


_JUMP_KEYS = np.array([0.0, 0.24, 0.38, 0.70, 0.80, 1.0])  # crouched, take-off, landing, absorbed
_TAKEOFF, _LANDING = 0.38, 0.70


def jump_poses(n: int, p: dict[str, float]) -> np.ndarray:
    """``p['jumps']`` crouch -> push -> flight (feet off the floor) -> landing -> recover cycles."""
    c = np.mod(_progress(n) * p["jumps"], 1.0)
    depth = np.interp(c, _JUMP_KEYS, [0.0, p["depth"], 0.0, 0.0, 0.8 * p["depth"], 0.0])
    v = np.clip((c - _TAKEOFF) / (_LANDING - _TAKEOFF), 0.0, 1.0)
    airborne = (c > _TAKEOFF) & (c < _LANDING)
    lift = np.where(airborne, 4.0 * p["height"] * v * (1.0 - v), 0.0)
    pose = np.tile(STAND, (n, 1))
    pose[:, PX] = -0.5 * depth
    pose[:, PY] = STAND_PY - depth + lift
    pose[:, TORSO_LEAN] = STAND[TORSO_LEAN] + 2.5 * depth
    _with_legs_on_feet(pose)
    tuck = np.where(airborne, np.sin(math.pi * v), 0.0)
    pose[airborne, HIP_N] = STAND[HIP_N] + 0.5 * tuck[airborne]
    pose[airborne, HIP_F] = STAND[HIP_F] + 0.4 * tuck[airborne]
    pose[airborne, KN_N] = STAND[KN_N] + 0.9 * tuck[airborne]
    pose[airborne, KN_F] = STAND[KN_F] + 0.8 * tuck[airborne]
    pose[:, SH_N] = np.interp(c, _JUMP_KEYS, [STAND[SH_N], -0.8, 2.3, 2.0, 0.4, STAND[SH_N]])
    pose[:, SH_F] = np.interp(c, _JUMP_KEYS, [STAND[SH_F], -0.9, 2.1, 1.9, 0.3, STAND[SH_F]])
    pose[:, EL_N] = np.interp(c, _JUMP_KEYS, [STAND[EL_N], 0.3, 0.2, 0.3, 0.5, STAND[EL_N]])
    pose[:, EL_F] = np.interp(c, _JUMP_KEYS, [STAND[EL_F], 0.3, 0.2, 0.3, 0.5, STAND[EL_F]])
    return pose


# ---------------------------------------------------------------- walk / run


def gait_poses(n: int, fps: float, p: dict[str, float]) -> np.ndarray:
    """Walking or running in place (the anchor's travel comes from :func:`fold_path`).

    Cadence, stride (hip swing), knee lift, arm swing, elbow bend, lean and bounce all come
    from ``p``; the gait fades in and out with :func:`gait_envelope`.
    """
    e = gait_envelope(n, fps)
    phi = 2.0 * math.pi * p["cadence"] * np.arange(n) / fps
    swing = np.sin(phi) * e
    pose = np.tile(STAND, (n, 1))
    pose[:, PY] = STAND_PY - e * p["bob"] * (1.5 + 0.5 * np.cos(2 * phi))
    pose[:, TORSO_LEAN] = STAND[TORSO_LEAN] + p["lean"] * e
    pose[:, HIP_N] = STAND[HIP_N] + p["hip_amp"] * swing + 0.5 * p["lean"] * e
    pose[:, HIP_F] = STAND[HIP_F] - p["hip_amp"] * swing + 0.5 * p["lean"] * e
    lift_n = np.maximum(np.cos(phi + math.pi / 4), 0.0) ** 2
    lift_f = np.maximum(np.cos(phi + math.pi + math.pi / 4), 0.0) ** 2
    pose[:, KN_N] = STAND[KN_N] + e * (p["knee_amp"] * lift_n + 0.1)
    pose[:, KN_F] = STAND[KN_F] + e * (p["knee_amp"] * lift_f + 0.1)
    pose[:, SH_N] = STAND[SH_N] - p["arm_amp"] * swing
    pose[:, SH_F] = STAND[SH_F] + p["arm_amp"] * swing
    pose[:, EL_N] = STAND[EL_N] + (p["elbow"] - STAND[EL_N]) * e
    pose[:, EL_F] = STAND[EL_F] + (p["elbow"] - STAND[EL_F]) * e
    return pose


# ---------------------------------------------------------------- wave / hold


def arm_raise_poses(n: int, fps: float, p: dict[str, float], *, oscillate: bool) -> np.ndarray:
    """Raise one arm, keep it up, lower it. ``oscillate`` swings the forearm back and forth
    (``wave``); without it the raised arm stays still (the unlabelled ``hold``)."""
    base = SEATED if p.get("seated") else STAND
    sh, el = (SH_N, EL_N) if p["arm"] < 0.5 else (SH_F, EL_F)
    ramp = max(1.0, min(0.35 * fps, n / 3.0))
    i = np.arange(n)
    w = _smooth(np.minimum(i / ramp, (n - 1 - i) / ramp))
    pose = np.tile(base, (n, 1))
    pose[:, sh] = base[sh] + (p["shoulder"] - base[sh]) * w
    pose[:, el] = base[el] + (p["elbow"] - base[el]) * w
    if oscillate:
        pose[:, el] += p["amp"] * np.sin(2.0 * math.pi * p["freq"] * i / fps) * w
        pose[:, sh] += 0.12 * p["amp"] * np.sin(2.0 * math.pi * p["freq"] * i / fps + 0.6) * w
    return pose


# ---------------------------------------------------------------- dispatch


def segment_poses(seg: Segment, fig: Figure, fps: float) -> np.ndarray:
    """Poses ``(seg.n_frames, 12)`` of one segment, before idle sway is added."""
    n, p = seg.n_frames, seg.params
    if seg.kind in ("walk", "run"):
        return gait_poses(n, fps, p)
    if seg.kind in ("wave", "hold"):
        return arm_raise_poses(n, fps, p, oscillate=seg.kind == "wave")
    if seg.kind == "jump":
        return jump_poses(n, p)
    if seg.kind == "fall":
        return fall_poses(n, p)
    if seg.kind == "sit_down":
        return sit_down_poses(n, fig.sit_lean)
    if seg.kind == "stand_up":
        return stand_up_poses(n, fig.sit_lean)
    if seg.kind == "lying":
        return np.tile(lying_pose(p), (n, 1))
    return np.tile(SEATED if seg.kind == "seated" else STAND, (n, 1))


_SWAYING = frozenset({"idle", "hold", "seated"})


@dataclass(frozen=True)
class FigureMotion:
    """Per-frame state of one figure over ``[start_frame, start_frame + len(anchor_x))``."""

    figure: Figure
    start_frame: int
    anchor_x: np.ndarray  # frame-height units
    facing: np.ndarray  # +1 / -1
    alpha: np.ndarray  # opacity 0..1 (fades at episode boundaries)
    poses: np.ndarray  # (n, 12)


def figure_motion(fig: Figure, segments: list[Segment], fps: float, stage: Stage) -> FigureMotion:
    """Assemble a figure's whole life from its (contiguous, sorted) segments, plus idle sway."""
    n = fig.end_frame - fig.start_frame
    poses = np.empty((n, N_PARAMS))
    anchor = np.empty(n)
    facing = np.empty(n, dtype=np.int8)
    sway_w = np.zeros(n)
    x, f = fig.x0, fig.facing0
    height = fig.height(stage)
    for seg in segments:
        sl = slice(seg.start_frame - fig.start_frame, seg.end_frame - fig.start_frame)
        poses[sl] = segment_poses(seg, fig, fps)
        if seg.kind in ("walk", "run"):
            distance = np.cumsum(gait_envelope(seg.n_frames, fps)) * (seg.params["velocity"] / fps)
            xs, fs = fold_path(
                seg.params["x0"], int(seg.params["facing0"]), distance, *walk_bounds(stage, height)
            )
            anchor[sl], facing[sl] = xs, fs
            x, f = float(xs[-1]), int(fs[-1])
        else:
            anchor[sl], facing[sl] = x, f
        if seg.kind in _SWAYING:
            sway_w[sl] = 1.0
    # smooth the sway weight so it never switches on or off within a frame
    k = max(1, int(round(0.5 * fps)))
    sway_w = np.convolve(np.pad(sway_w, (k, k), mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), "valid")[:n]
    t = (fig.start_frame + np.arange(n)) / fps
    ph = fig.sway_phase
    poses[:, TORSO_LEAN] += sway_w * 0.035 * np.sin(2 * math.pi * 0.23 * t + ph)
    poses[:, PX] += sway_w * 0.008 * np.sin(2 * math.pi * 0.17 * t + 2 * ph)
    poses[:, SH_N] += sway_w * 0.04 * np.sin(2 * math.pi * 0.31 * t + 3 * ph)
    poses[:, SH_F] += sway_w * 0.04 * np.sin(2 * math.pi * 0.27 * t + 4 * ph)
    poses[:, HEAD] += sway_w * 0.06 * np.sin(2 * math.pi * 0.13 * t + 5 * ph)
    alpha = np.ones(n)
    i = np.arange(n)
    if fig.fade_in:
        alpha = np.minimum(alpha, (i + 1) / (fig.fade_in + 1))
    if fig.fade_out:
        alpha = np.minimum(alpha, (n - i) / (fig.fade_out + 1))
    return FigureMotion(fig, fig.start_frame, anchor, facing, alpha, poses)


def skeleton_points(poses: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """Joint positions ``(n, 15, 2)`` in body heights relative to the anchor (x right, y up)."""
    s = np.asarray(facing, dtype=np.float64)
    n = len(poses)
    out = np.empty((n, N_JOINTS, 2))

    def put(j: int, base: int | np.ndarray, length: float, angle: np.ndarray) -> None:
        origin = out[:, base] if isinstance(base, int) else base
        out[:, j, 0] = origin[:, 0] + length * s * np.sin(angle)
        out[:, j, 1] = origin[:, 1] - length * np.cos(angle)

    tau = poses[:, TORSO_LEAN]
    out[:, PELVIS, 0] = s * poses[:, PX]
    out[:, PELVIS, 1] = poses[:, PY]
    up = math.pi - tau  # the torso's "up" as an angle from down
    put(NECK_J, PELVIS, TORSO, up)
    put(SHOULDER, PELVIS, 0.93 * TORSO, up)
    put(HEAD_J, NECK_J, NECK + HEAD_R, up - poses[:, HEAD])
    head_up = up - poses[:, HEAD]
    put(HAIR_J, HEAD_J, 0.3 * HEAD_R, head_up)
    out[:, HAIR_J, 0] -= 0.25 * HEAD_R * s * np.cos(tau + poses[:, HEAD])
    out[:, HAIR_J, 1] += 0.25 * HEAD_R * np.sin(tau + poses[:, HEAD])
    for sh, el, elbow_j, hand_j in ((SH_N, EL_N, ELBOW_N, HAND_N), (SH_F, EL_F, ELBOW_F, HAND_F)):
        upper = -tau + poses[:, sh]
        put(elbow_j, SHOULDER, UPPER_ARM, upper)
        put(hand_j, elbow_j, FOREARM, upper + poses[:, el])
    for hip, kn, knee_j, ankle_j, toe_j in (
        (HIP_N, KN_N, KNEE_N, ANKLE_N, TOE_N),
        (HIP_F, KN_F, KNEE_F, ANKLE_F, TOE_F),
    ):
        thigh = -tau + poses[:, hip]
        put(knee_j, PELVIS, THIGH, thigh)
        shin = thigh - poses[:, kn]
        put(ankle_j, knee_j, SHIN, shin)
        put(toe_j, ankle_j, FOOT, shin + math.pi / 2)
    return out
