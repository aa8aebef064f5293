"""Labelled synthetic footage in the object store: ``footage/date=D/camera=C/<file>`` plus a
``<file>.labels.json`` ground-truth sidecar beside each video (docs/reference.md#object-store-layout).

Random streams are derived with :class:`numpy.random.SeedSequence` from ``(seed, camera, file,
purpose)``, so a camera's look depends only on ``(seed, camera)`` and its labels only on ``(seed,
camera)`` plus the arguments that shape it (minutes, fps, frame aspect).

A camera records one continuous timeline of ``minutes``, written as consecutive files of at most
``file_minutes``, as an NVR cuts its stream: the files of one camera hold consecutive frames of the
same rendering, each named after the UTC time of its first frame, and an action that crosses a cut
is labelled in both files, clipped to each (``actrec eval`` joins such parts again; see
:mod:`actrec_batch.chains`). With ``file_minutes >= minutes`` a camera is one file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from actrec_batch import layout
from actrec_batch.errors import ConfigError
from actrec_batch.synth.params import CONTAINER_EXT, SynthParams
from actrec_batch.synth.planner import plan_timeline
from actrec_batch.synth.render import VideoSpec, render_video
from actrec_batch.synth.scene import Scene, make_scene
from actrec_batch.synth.timeline import LABELS

GENERATOR_VERSION = "actrec-synth-1"
_SCENE, _TIMELINE, _NOISE = 0, 1, 2  # SeedSequence purpose tags


@dataclass(frozen=True)
class SynthReport:
    """What :func:`synth_footage` wrote. ``footage_s`` is video seconds; ``wall_s`` elapsed seconds."""

    videos: tuple[str, ...]
    footage_s: float
    wall_s: float
    events: int
    label_counts: dict[str, int] = field(default_factory=dict)
    render_s: float = 0.0  # of wall_s: drawing frames
    encode_s: float = 0.0  # of wall_s: encoding and muxing

    def to_json(self) -> dict:
        return {
            "videos": list(self.videos),
            "footage_s": round(self.footage_s, 3),
            "wall_s": round(self.wall_s, 3),
            "events": self.events,
            "label_counts": dict(self.label_counts),
            "render_s": round(self.render_s, 3),
            "encode_s": round(self.encode_s, 3),
        }


@dataclass(frozen=True)
class PlannedVideo:
    """One video to write: where it goes, when it was "recorded", and how to render it.

    ``spec`` is the camera's whole recording; the file holds its frames ``frames`` (a slice of
    ``range(spec.timeline.n_frames)``)."""

    camera_id: str
    file_index: int
    key: str  # store key of the video; the sidecar is layout.sidecar_key(key)
    creation_time: dt.datetime  # UTC, the time of the file's first frame
    spec: VideoSpec
    frames: range

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.spec.timeline.fps

    def events(self) -> list[dict]:
        """The camera's events clipped to this file, in seconds from the file's first frame
        (half-open, on the frame grid; an action across a cut appears in both files)."""
        tl = self.spec.timeline
        lo, hi = self.frames.start, self.frames.stop
        # clip at cuts only: the camera's own first and last frame leave events as planned
        low, high = (lo if lo > 0 else -math.inf), (hi if hi < tl.n_frames else math.inf)
        out = []
        for ev in tl.events:
            first, stop = max(round(ev.start_s * tl.fps), low), min(round(ev.end_s * tl.fps), high)
            if stop > first:
                times = {"start_s": round((first - lo) / tl.fps, 6), "end_s": round((stop - lo) / tl.fps, 6)}
                out.append({**ev.to_json(), **times})
        return out


def camera_id(index: int) -> str:
    """``cam-01`` for camera index 1."""
    return f"cam-{index:02d}"


def _rng(seed: int, camera: int, file: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, camera, file, purpose]))


def camera_scene(seed: int, camera: int, minutes: float = 5.0) -> Scene:
    """The fixed look of camera ``camera`` (1-based) under ``seed``.

    Its footage starts at a whole UTC hour chosen so that ``minutes`` still end on the same day.
    """
    latest = 23 - math.ceil(minutes / 60.0)
    return make_scene(_rng(seed, camera, 0, _SCENE), latest_start_hour=latest)


def plan_footage(date: dt.date, params: SynthParams | None = None, **changes: Any) -> list[PlannedVideo]:
    """Every video of a synth run, in order, without rendering anything.

    ``params`` (with ``changes``, its fields as keywords) says what to render. Each camera's
    ``minutes`` are one timeline, split into consecutive files of at most ``file_minutes`` (cut on
    frame boundaries).

    Raises:
        ConfigError: a bad argument (the message names it and the fix).
    """
    if not isinstance(date, dt.date):
        raise ConfigError(f"date: pass a datetime.date, got {date!r}")
    p = SynthParams.of(params, **changes)
    minutes, fps, width, height = p.minutes, p.fps, p.width, p.height
    total_s, file_s = minutes * 60.0, p.file_minutes * 60.0
    planned = []
    for cam in range(1, p.cameras + 1):
        scene = camera_scene(p.seed, cam, minutes)
        stage = scene.stage(width / height)
        day_start = dt.datetime.combine(date, dt.time(scene.start_hour), tzinfo=dt.UTC)
        timeline = plan_timeline(_rng(p.seed, cam, 0, _TIMELINE), total_s, fps, stage=stage, mix=p.mix())
        noise_seed = int(np.random.SeedSequence([p.seed, cam, 0, _NOISE]).generate_state(1)[0])
        spec = VideoSpec(timeline, scene, width, height, p.noise, noise_seed)
        n = timeline.n_frames
        cuts = sorted({min(n, round(k * file_s * fps)) for k in range(math.ceil(total_s / file_s - 1e-9))})
        for k, (lo, hi) in enumerate(zip(cuts, [*cuts[1:], n], strict=True)):
            created = day_start + dt.timedelta(seconds=round(lo / fps, 6))
            cid = camera_id(cam)
            name = f"{cid}_{created:%Y%m%dT%H%M%SZ}{CONTAINER_EXT[p.codec]}"
            key = layout.camera_prefix(date, cid) + name
            planned.append(PlannedVideo(cid, k, key, created, spec, range(lo, hi)))
    return planned


def labels_sidecar(video: PlannedVideo, *, seed: int, codec: str) -> dict:
    """The ground-truth sidecar of ``video`` (docs/reference.md#object-store-layout shape, plus provenance keys)."""
    return {
        "video": video.name,
        "fps": video.spec.timeline.fps,
        "duration_s": round(video.duration_s, 6),
        "events": video.events(),
        "camera": video.camera_id,
        "file_index": video.file_index,
        "creation_time": video.creation_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": seed,
        "width": video.spec.width,
        "height": video.spec.height,
        "codec": codec,
        "noise": video.spec.noise,
        "generator_version": GENERATOR_VERSION,
    }


def encode_video(
    spec: VideoSpec,
    path: Path,
    *,
    codec: str = "h264",
    crf: int = 23,
    creation_time: dt.datetime | None = None,
    progress: bool = False,
    desc: str = "",
) -> tuple[float, float]:
    """Render ``spec`` and encode it to the local file ``path``.

    Returns ``(render_s, encode_s)``, the seconds spent drawing and encoding.
    """
    file = (path, range(spec.timeline.n_frames), creation_time)
    ((_, render_s, encode_s),) = encode_files(
        spec, [file], codec=codec, crf=crf, progress=progress, desc=desc
    )
    return render_s, encode_s


def encode_files(
    spec: VideoSpec,
    files: Sequence[tuple[Path, range, dt.datetime | None]],
    *,
    codec: str = "h264",
    crf: int = 23,
    progress: bool = False,
    desc: str = "",
) -> Iterator[tuple[Path, float, float]]:
    """Render ``spec`` once and encode consecutive slices of its frames into local files.

    ``files`` are ``(path, frames, creation_time)`` in order, ``frames`` consecutive ranges of
    ``range(spec.timeline.n_frames)``. Yields ``(path, render_s, encode_s)`` as each file is closed
    (the seconds spent drawing and encoding it), so the caller can upload it and delete it.
    """
    from actrec_batch.video import VideoWriter

    frames = render_video(spec)
    n = sum(len(r) for _, r, _ in files)
    with tqdm(
        total=n, desc=desc or _files_name(files), unit="frame", disable=not progress, mininterval=0.5
    ) as bar:
        for path, frame_range, creation_time in files:
            render_s = encode_s = 0.0
            with VideoWriter(
                path,
                fps=spec.timeline.fps,
                width=spec.width,
                height=spec.height,
                codec=codec,
                crf=crf,
                creation_time=creation_time,
            ) as writer:
                for _ in frame_range:
                    t0 = time.perf_counter()
                    frame = next(frames)
                    t1 = time.perf_counter()
                    writer.write(frame)
                    t2 = time.perf_counter()
                    render_s += t1 - t0
                    encode_s += t2 - t1
                    bar.update()
                t0 = time.perf_counter()  # leaving the block flushes the encoder: count that as encoding
            yield path, render_s, encode_s + (time.perf_counter() - t0)


def _files_name(files: Sequence[tuple[Path, range, dt.datetime | None]]) -> str:
    return files[0][0].name if len(files) == 1 else f"{files[0][0].name} +{len(files) - 1} files"


def synth_footage(
    store, *, date: dt.date, params: SynthParams | None = None, progress: bool = True, **changes: Any
) -> SynthReport:
    """Render and upload labelled synthetic footage for ``date`` into ``store``.

    ``params`` (with ``changes``, its fields as keywords: ``cameras=1, minutes=0.5, ...``) says
    what to render. Writes ``footage/date=D/camera=cam-NN/cam-NN_<UTC start>.<ext>`` and its
    ``.labels.json`` sidecar for every file; rerunning with the same arguments overwrites the same
    keys with the same labels (and frames). Each video's container ``creation_time`` is its UTC
    start.

    Raises:
        ConfigError: a bad argument.
        StorageError: the store refused a write.
    """
    t_start = time.perf_counter()
    params = SynthParams.of(params, **changes)
    planned = plan_footage(date, params)
    seed, codec = params.seed, params.codec
    counts: Counter[str] = Counter({label: 0 for label in LABELS})
    footage_s = render_s = encode_s = 0.0
    n_events = 0
    by_camera: dict[str, list[PlannedVideo]] = {}
    for video in planned:
        by_camera.setdefault(video.camera_id, []).append(video)
    with tempfile.TemporaryDirectory(prefix="actrec-synth-") as tmp:
        for videos in by_camera.values():
            files = [(Path(tmp) / v.name, v.frames, v.creation_time) for v in videos]
            encoded = encode_files(videos[0].spec, files, codec=codec, progress=progress)
            for video, (local, r, e) in zip(videos, encoded, strict=True):
                render_s, encode_s = render_s + r, encode_s + e
                store.put_file(video.key, local)
                local.unlink()
                sidecar = labels_sidecar(video, seed=seed, codec=codec)
                body = (json.dumps(sidecar, indent=1) + "\n").encode()
                store.put_bytes(layout.sidecar_key(video.key), body)
                footage_s += video.duration_s
                n_events += len(sidecar["events"])
                counts.update(ev["label"] for ev in sidecar["events"])
    return SynthReport(
        videos=tuple(v.key for v in planned),
        footage_s=footage_s,
        wall_s=time.perf_counter() - t_start,
        events=n_events,
        label_counts=dict(counts),
        render_s=render_s,
        encode_s=encode_s,
    )
