"""What a synth run renders, declared once: :class:`SynthParams`.

``actrec synth`` and ``actrec demo`` build their flags from these fields (bounds and help in each
field's metadata); :func:`~actrec_batch.synth.synth_footage`, the demo, the benchmarks and the tests
pass a ``SynthParams`` (or its fields as keywords).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from actrec_batch.errors import ConfigError

CONTAINER_EXT = {
    "h264": ".mp4",
    "hevc": ".mp4",
    "mpeg4": ".mp4",
    "vp9": ".webm",
    "ffv1": ".mkv",
    "mjpeg": ".avi",
}
_EVEN_SIZE_CODECS = frozenset({"h264", "hevc", "vp9", "mpeg4", "mjpeg"})


def _param(default: Any, lo: float, hi: float, what: str, help: str = "") -> Any:  # noqa: A002
    """A numeric parameter: its default, the range a flag accepts and its help."""
    return field(default=default, metadata={"range": (lo, hi), "what": what, "help": help})


@dataclass(frozen=True)
class SynthParams:
    """The footage of one synth run (all but its date and store). Raises :class:`ConfigError` for a
    value no run can render (the flags' ranges are narrower)."""

    cameras: int = _param(2, 1, 64, "camera count", "cameras, cam-01 ... cam-NN")
    minutes: float = _param(5.0, 0.05, 24 * 60, "number of minutes", "minutes of footage per camera")
    seed: int = _param(0, 0, 2**32 - 1, "seed", "seed of every random stream (same seed, same footage)")
    width: int = _param(320, 64, 3840, "width", "frame width in pixels")
    height: int = _param(240, 48, 2160, "height", "frame height in pixels")
    fps: float = _param(15.0, 1, 120, "frame rate", "frames per second")
    codec: str = field(default="h264", metadata={"choices": tuple(CONTAINER_EXT), "help": "video codec"})
    noise: float = _param(
        0.02, 0.0, 1.0, "noise level", "sensor-noise standard deviation, as a fraction of full scale"
    )
    file_minutes: float = _param(5.0, 0.05, 24 * 60, "number of minutes", "longest video file, in minutes")
    action_mix: str = field(
        default="",
        metadata={
            "text": True,
            "help": "how often each action is chosen, as factors on the usual mix: LABEL=FACTOR,... "
            "e.g. wave=5,fall=0 (empty: the usual mix)",
        },
    )

    def __post_init__(self) -> None:
        c, m, fm = self.cameras, self.minutes, self.file_minutes
        _check(isinstance(c, int) and c >= 1, "cameras", f"must be an integer >= 1, got {c!r}")
        _check(
            isinstance(self.seed, int) and self.seed >= 0,
            "seed",
            f"must be an integer >= 0, got {self.seed!r}",
        )
        _check(m > 0 and math.isfinite(m), "minutes", f"must be a positive number, got {m!r}")
        _check(fm > 0 and math.isfinite(fm), "file_minutes", f"must be positive, got {fm!r}")
        _check(
            self.fps > 0 and math.isfinite(self.fps), "fps", f"must be a positive number, got {self.fps!r}"
        )
        _check(self.noise >= 0 and math.isfinite(self.noise), "noise", f"must be >= 0, got {self.noise!r}")
        codec, w, h = self.codec, self.width, self.height
        _check(codec in CONTAINER_EXT, "codec", f"use one of {sorted(CONTAINER_EXT)}, got {codec!r}")
        _check(w >= 16 and h >= 16, "width/height", f"must be at least 16x16, got {w}x{h}")
        _check(
            codec not in _EVEN_SIZE_CODECS or (w % 2 == 0 and h % 2 == 0),
            "width/height",
            f"codec {codec} needs an even frame size, got {w}x{h}",
        )
        self.mix()  # raises ConfigError for a bad action_mix

    def mix(self) -> dict[str, float]:
        """``action_mix`` as {label: factor} (labels the planner knows, factors >= 0)."""
        from actrec_batch.synth.planner import ACTION_LABELS

        out: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in self.action_mix.split(","))):
            label, _, factor = part.partition("=")
            label = label.strip()
            _check(
                label in ACTION_LABELS,
                "action_mix",
                f"{label!r} is not an action; use LABEL=FACTOR with a label of {', '.join(ACTION_LABELS)}",
            )
            try:
                value = float(factor)
            except ValueError:
                value = -1.0
            _check(
                value >= 0 and math.isfinite(value),
                "action_mix",
                f"{part!r}: the factor must be a number >= 0",
            )
            out[label] = value
        return out

    @classmethod
    def of(cls, params: SynthParams | None = None, **changes: Any) -> SynthParams:
        """``params`` (default: the defaults) with ``changes``, e.g. ``SynthParams.of(cameras=1)``."""
        base = params or cls()
        return cls(**{**{f.name: getattr(base, f.name) for f in fields(cls)}, **changes})

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check(cond: bool, setting: str, fix: str) -> None:
    if not cond:
        raise ConfigError(f"{setting}: {fix}")


DEMO_FOOTAGE = SynthParams(cameras=2, minutes=2.0, seed=20261124)  # `actrec demo`: small, so it is quick
