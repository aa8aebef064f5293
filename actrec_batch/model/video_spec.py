"""What a user's video network sees: the clip sampling and pixel preprocessing of the generic ``video`` arch.

A card with ``"arch": "video"`` describes a standard spatio-temporal network (R(2+1)D, X3D, SlowFast's
fast path, a video transformer...) exported as TorchScript or ONNX: a backbone ``[B, 3, T, H, W] ->
[B, D]`` over clips and a head over one video's sequence of clip embeddings ``[1, N, D] -> [1, N, C]``.
Its ``extractor.config`` is a :class:`VideoSampling`, every field of which changes the embeddings:

* **time:** frames are sampled on the video's time grid ``g_k = k / sample_fps`` (see
  :mod:`actrec_batch.model.sampling`); clip ``j`` is grid frames ``[j * clip_hop, j * clip_hop + clip_len)``.
  A zoo's "``clip_len`` x ``frame_interval``" at its training rate F is ``sample_fps = F / frame_interval``.
* **space:** ``resize = "stretch"`` scales each frame to ``frame_width`` x ``frame_height`` (aspect not
  kept); ``"short_side_crop"`` scales it, aspect kept, to a short side of ``short_side`` pixels and cuts
  the centred ``frame_width`` x ``frame_height`` window out of it (the usual test-time transform).
* **values:** pixels are read as floats in ``[0, pixel_range]`` (255 for MMAction2-style zoos, 1 for
  torchvision-style ones), put in ``channel_order`` (``RGB`` or ``BGR``), then ``(x - mean) / std`` per
  channel, with ``mean`` and ``std`` listed in that channel order and on that scale.

This module imports neither torch nor numpy, so a card can be checked anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

VIDEO_ARCH = "video"
RESIZE_POLICIES = ("stretch", "short_side_crop")
CHANNEL_ORDERS = ("RGB", "BGR")
PIXEL_RANGES = (1, 255)
BACKBONE_FORMATS = ("torchscript", "onnx")
HEAD_FORMATS = ("state_dict", "torchscript")


@dataclass(frozen=True)
class VideoSampling:
    """Sampling and preprocessing of a ``video``-arch backbone, as its card's ``extractor.config``.

    ``embed_dim`` is ``D``, the width of one clip embedding the backbone returns.
    """

    sample_fps: float
    clip_len: int
    clip_hop: int
    frame_width: int
    frame_height: int
    embed_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "short_side_crop"
    short_side: int | None = None  # short_side_crop only; >= max(frame_width, frame_height)
    pixel_range: int = 255
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ValueError(problems[0])

    def _problems(self) -> list[str]:
        out = []
        if not (
            isinstance(self.sample_fps, int | float)
            and math.isfinite(self.sample_fps)
            and self.sample_fps > 0
        ):
            out.append(f"sample_fps must be a positive number of frames per second, not {self.sample_fps!r}")
        for key in ("clip_len", "clip_hop", "frame_width", "frame_height", "embed_dim"):
            value = getattr(self, key)
            if not _positive_int(value):
                out.append(f"{key} must be a positive integer, not {value!r}")
        for key in ("mean", "std"):
            value = getattr(self, key)
            if len(value) != 3 or not all(isinstance(v, int | float) and math.isfinite(v) for v in value):
                out.append(f"{key} must be a list of 3 numbers (one per channel), not {list(value)!r}")
        if not out and min(self.std) <= 0:
            out.append(f"std must be positive, not {list(self.std)!r}")
        if self.resize not in RESIZE_POLICIES:
            out.append(f"resize is {self.resize!r}; expected one of {', '.join(RESIZE_POLICIES)}")
        elif self.resize == "short_side_crop":
            if not _positive_int(self.short_side):
                out.append("short_side must be a positive integer when resize is short_side_crop")
            elif not out and self.short_side < max(self.frame_width, self.frame_height):
                out.append(
                    f"short_side {self.short_side} is smaller than the {self.frame_width}x{self.frame_height}"
                    " crop; it must be at least max(frame_width, frame_height)"
                )
        elif self.short_side is not None:
            out.append("short_side is only used with resize short_side_crop; remove it")
        if self.pixel_range not in PIXEL_RANGES or isinstance(self.pixel_range, bool):
            out.append(f"pixel_range is {self.pixel_range!r}; expected 255 (pixels 0..255) or 1 (0..1)")
        if self.channel_order not in CHANNEL_ORDERS:
            out.append(f"channel_order is {self.channel_order!r}; expected RGB or BGR")
        return out

    @property
    def hop_s(self) -> float:
        return self.clip_hop / self.sample_fps

    def decode_size(self) -> tuple[int | None, int | None]:
        """``(width, height)`` to decode grid frames at, for :func:`~actrec_batch.model.sampling.decode_grid_frames`:
        the input size for ``stretch``; for ``short_side_crop``, ``(None, short_side)``, which there
        means "aspect kept, short side ``short_side``" (the crop happens in :mod:`.video`)."""
        if self.resize == "stretch":
            return self.frame_width, self.frame_height
        return None, self.short_side

    def decode_sampling(self) -> dict[str, Any]:
        """The sampling a decode task needs (``sample_fps``, ``clip_len``, ``clip_hop``, ``frame_width``,
        ``frame_height``), with the frame size of :meth:`decode_size`."""
        width, height = self.decode_size()
        return {
            "sample_fps": self.sample_fps,
            "clip_len": self.clip_len,
            "clip_hop": self.clip_hop,
            "frame_width": width,
            "frame_height": height,
        }

    def tag(self) -> str:
        """A short, key-safe name of everything that changes the pixels the backbone sees, for the
        feature cache: ``112x112-crop128-7.5fps-c16h8-<8 hex digits of the whole config>``."""
        resize = f"crop{self.short_side}" if self.resize == "short_side_crop" else "stretch"
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        return (
            f"{self.frame_width}x{self.frame_height}-{resize}-{self.sample_fps:g}fps"
            f"-c{self.clip_len}h{self.clip_hop}-{digest}"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        if out["short_side"] is None:
            del out["short_side"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoSampling:
        """Parse a card's ``extractor.config``. Raises ValueError naming the first bad or unknown field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [key for key in required if key not in data]
        if missing:
            raise ValueError(f"required field {missing[0]!r} is missing")
        values = dict(data)
        for key in ("mean", "std"):
            if not isinstance(values[key], list | tuple):
                raise ValueError(f"{key} must be a list of 3 numbers, not {values[key]!r}")
            values[key] = tuple(values[key])
        return cls(**values)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
