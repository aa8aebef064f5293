"""Labelled synthetic footage: articulated stick-figure people acting in procedurally drawn rooms.

The flow is one way: :func:`plan_timeline` decides who does what and when, the pose generators
turn that into joint angles per frame, and :func:`render_video` draws the frames. The labels in
the sidecars are read off the same timeline, so they match the pixels to the frame.

Scenes
    Each camera has a fixed viewpoint (horizon, perspective scale, lamp), a room background
    (wall and floor gradients, tiles or planks, static clutter rectangles), slow lighting drift
    and flicker, sub-pixel camera shake and Gaussian sensor noise (``noise`` x 255). Episodes of
    25-70 s show 0-3 figures (70 % of populated episodes have one) that fade in and out between
    episodes. Balls bouncing across the floor, sliding carts and a swinging lamp add motion that
    is not a person.

Classes (``LABELS``) and what tells them apart only over time
    ``walk`` / ``run``: both are a cyclic leg/arm swing with travel across the room (pacing back
    and forth). Cadence (~0.9 vs ~1.45 strides/s), stride, knee lift, arm swing, lean, bounce and
    ground speed differ; every one varies by +-25 %, so one frame of either is ambiguous.
    ``wave``: one arm raised with the forearm oscillating at 1.6-2.6 Hz, standing or seated.
    Idle figures sometimes *hold* an arm raised still (unlabelled), so a raised arm is not enough.
    ``jump``: 1-3 crouch -> push -> flight -> landing cycles; the crouch alone looks like the start
    of ``sit_down``. ``fall``: a wobble, an accelerating topple about the feet and an impact, in
    1-2 s; the figure then lies still (unlabelled) until the episode ends, so "lying" is not
    ``fall``. ``sit_down`` / ``stand_up``: the same poses in opposite order (``stand_up`` is
    ``sit_down`` reversed frame for frame); only the direction of motion separates them, and
    sitting still is unlabelled.

No action
    Standing with a slight sway, sitting still, lying after a fall, arm holds, empty rooms. Events
    of one figure are separated by at least ``MIN_GAP_S``; in multi-figure episodes another
    figure sometimes starts while the first is still acting, so events of different tracks can
    overlap. Event times are half-open ``[start_s, end_s)`` on the frame grid (``frame / fps``).

Determinism
    Every random stream comes from ``numpy.random.SeedSequence([seed, camera, file, purpose])``;
    the same arguments give the same sidecars and the same frames.
"""

from actrec_batch.synth.footage import (
    CONTAINER_EXT,
    GENERATOR_VERSION,
    PlannedVideo,
    SynthParams,
    SynthReport,
    camera_scene,
    encode_video,
    labels_sidecar,
    plan_footage,
    synth_footage,
)
from actrec_batch.synth.planner import plan_timeline
from actrec_batch.synth.render import VideoSpec, render_video
from actrec_batch.synth.scene import Scene, make_scene
from actrec_batch.synth.timeline import LABELS, Event, Stage, Timeline

__all__ = [
    "CONTAINER_EXT",
    "GENERATOR_VERSION",
    "LABELS",
    "Event",
    "PlannedVideo",
    "Scene",
    "Stage",
    "SynthParams",
    "SynthReport",
    "Timeline",
    "VideoSpec",
    "camera_scene",
    "encode_video",
    "labels_sidecar",
    "make_scene",
    "plan_footage",
    "plan_timeline",
    "render_video",
    "synth_footage",
]
