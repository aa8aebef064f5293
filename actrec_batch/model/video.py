"""The generic ``video`` arch: a user's spatio-temporal network, run as its card describes.

A ``video`` bundle holds ``card.json`` (``"arch": "video"``, see :mod:`actrec_batch.model.video_spec` for
``extractor.config``), a backbone and, unless it is a backbone bundle waiting for a head, a head:

* **backbone** ``[B, 3, T, H, W] float32 -> [B, D]``: ``backbone.pt`` (TorchScript, card ``"format":
  "torchscript"``) or ``backbone.onnx`` (run by ONNX Runtime, ``"format": "onnx"``, the
  ``actrec-batch[onnx]`` extra). ``T`` is ``clip_len``, ``H`` x ``W`` the input size, ``D`` the card's
  ``embed_dim``. Its first input and first output are used; the batch axis may be fixed to 1.
* **head** ``[1, N, D] -> [1, N, C]`` logits over one video's ``N`` clips, ``C = len(labels)``
  (probabilities are their sigmoid): ``head.safetensors`` (a
  :class:`~actrec_batch.model.reference.ReferenceHead`, ``head.format`` ``state_dict``, its
  ``HeadConfig`` as ``head.config``) or ``head.pt`` (TorchScript, ``head.format`` ``torchscript``,
  ``head.config`` ``{"embed_dim": D}``).

How a unit is embedded (:meth:`VideoBackbone.embed_units`): its grid frames (decoded at
:meth:`VideoSampling.decode_size`) are centre-cropped to ``H`` x ``W``, scaled, reordered and
normalised, cut into the clips of the grid (clip ``j`` = grid frames ``j * hop .. j * hop + T - 1``), and
run ``CLIP_BATCH`` clips at a time from the unit's first clip, never mixed with another unit's clips: a
unit's embeddings are then the same bytes whatever else the scheduler put in the call (floating-point
kernels give a row slightly different results in batches of other sizes). A clip's embedding depends on
its own frames only, and those are anchored to the video's time grid, so embeddings agree (to float
rounding) however a video is cut into work units (the same split invariance as the reference model's).

Loading checks each file's sha256 against the card before deserialising it, then runs the backbone on
one zero clip and the head on one zero embedding: a wrong input shape, an output that is not ``[1,
D]``, or a class count other than the label map's is a one-line :class:`ModelError` naming the file.
TorchScript and ONNX files can run code from the file: load them only from people you trust.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from actrec_batch.model.card import ModelCard, ModelError
from actrec_batch.model.refs import read_card, resolve_model_ref, select_device
from actrec_batch.model.video_spec import VIDEO_ARCH, VideoSampling
from actrec_batch.model.weights import (
    _corrupt,
    _first_line,
    _opened,
    _quiet_torchscript,
)
from actrec_batch.storage import open_store

log = logging.getLogger(__name__)

# Clips per backbone call: bounds activation memory (16 clips of 3 x 16 x 112 x 112 floats are 38 MB in).
CLIP_BATCH = 16
BACKBONE_FILES = {"torchscript": "backbone.pt", "onnx": "backbone.onnx"}
HEAD_FILES = {"state_dict": "head.safetensors", "torchscript": "head.pt"}
ONNX_EXTRA = "pip install 'actrec-batch[onnx]' (onnxruntime; onnxruntime-gpu for CUDA)"


@dataclass(frozen=True)
class VideoBackbone:
    """A loaded backbone: preprocessing plus the network, TorchScript on ``device`` or an ONNX Runtime
    session (on CUDA when asked for and the installed ONNX Runtime has it, otherwise on the CPU)."""

    sampling: VideoSampling
    run: Callable[[torch.Tensor], torch.Tensor]  # [B, 3, T, H, W] float32 CPU -> [B, D] float32 CPU
    device: torch.device
    max_batch: int
    source: str  # the backbone file's URI, named in errors

    @property
    def embed_dim(self) -> int:
        return self.sampling.embed_dim

    def prepare(self, frames: np.ndarray) -> torch.Tensor:
        """Grid frames ``[L, h, w, 3]`` uint8 RGB (decoded at ``decode_size()``) -> ``[L, 3, H, W]``
        float32, cropped, scaled, reordered and normalised as the card says."""
        s = self.sampling
        h, w = frames.shape[1:3]
        if h < s.frame_height or w < s.frame_width:
            raise ValueError(
                f"frames of {w}x{h} are smaller than the backbone's {s.frame_width}x{s.frame_height} input"
            )
        top, left = (h - s.frame_height) // 2, (w - s.frame_width) // 2
        x = torch.tensor(
            frames[:, top : top + s.frame_height, left : left + s.frame_width], dtype=torch.float32
        )
        if s.pixel_range == 1:
            x /= 255.0
        if s.channel_order == "BGR":
            x = x.flip(-1)
        x = (x - torch.tensor(s.mean)) / torch.tensor(s.std)
        return x.permute(0, 3, 1, 2)

    def clips(self, frames: np.ndarray, first: int, count: int) -> torch.Tensor:
        """Clips ``first .. first + count - 1`` of ``frames`` (grid frames from clip 0's first frame):
        ``[count, 3, T, H, W]``. Each frame is prepared once however many clips share it."""
        s = self.sampling
        lo = first * s.clip_hop
        x = self.prepare(frames[lo : lo + (count - 1) * s.clip_hop + s.clip_len])
        index = torch.arange(count)[:, None] * s.clip_hop + torch.arange(s.clip_len)[None, :]
        return x[index].permute(0, 2, 1, 3, 4).contiguous()

    def embed_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` -> ``[B, D]`` float32 on the CPU, ``max_batch`` clips per network call."""
        out = [self.run(clips[lo : lo + self.max_batch]) for lo in range(0, clips.shape[0], self.max_batch)]
        emb = torch.cat(out) if out else torch.zeros((0, self.embed_dim))
        if emb.shape != (clips.shape[0], self.embed_dim):
            raise ModelError(
                f"backbone {self.source} returned {list(emb.shape)} for {clips.shape[0]} clips; the card's"
                f" embed_dim is {self.embed_dim}",
                reason="shape_mismatch",
            )
        return emb

    def embed_units(self, units: Sequence[Any]) -> list[np.ndarray]:
        """``[num_clips, D]`` float32 embeddings of each unit (``features.UnitFrames``: its grid frames
        ``grid.grid_span(clips)``, whether the first is only the context of the reference model's motion
        code, and its clip count), ``CLIP_BATCH`` clips of one unit per backbone call (see the module
        docstring: a unit's embeddings do not depend on the other units in the call)."""
        s = self.sampling
        out = []
        for unit in units:
            frames = unit.frames[1:] if unit.first_is_context else unit.frames
            need = (unit.num_clips - 1) * s.clip_hop + s.clip_len if unit.num_clips else 0
            if frames.shape[0] < need:
                raise ValueError(f"{unit.num_clips} clips need {need} grid frames, got {frames.shape[0]}")
            parts = [
                self.embed_clips(self.clips(frames, lo, min(CLIP_BATCH, unit.num_clips - lo)))
                for lo in range(0, unit.num_clips, CLIP_BATCH)
            ]
            emb = torch.cat(parts) if parts else torch.zeros((0, self.embed_dim))
            out.append(emb.numpy().astype(np.float32, copy=False))
        return out


# ------------------------------------------------------------------------------------------ loading


def load_backbone_file(file: BinaryIO, card: ModelCard, uri: str, device: torch.device) -> VideoBackbone:
    """Deserialise a backbone file already checked against the card's sha256, and check it on one zero
    clip. Raises ``ModelError`` (``weights_corrupt``, ``shape_mismatch``, ``missing_dependency``)."""
    sampling = card.video_sampling()
    backbone, out = _open_backbone(file, card.format, sampling, uri, device)
    if tuple(out.shape) != (1, sampling.embed_dim):
        raise ModelError(
            f"weights file {uri}: the backbone outputs {list(out.shape)} for one clip, but the card's"
            f" extractor.config.embed_dim is {sampling.embed_dim} (expected [1, {sampling.embed_dim}])",
            reason="shape_mismatch",
        )
    return backbone


def _open_backbone(
    file: BinaryIO, fmt: str, sampling: VideoSampling, uri: str, device: torch.device
) -> tuple[VideoBackbone, torch.Tensor]:
    """The backbone, and what it outputs for one zero clip of the size ``sampling`` describes."""
    if fmt == "onnx":
        run, device, max_batch = _onnx_runner(file, sampling, uri, device)
    else:
        run, max_batch = _torchscript_runner(file, uri, device), CLIP_BATCH
    probe = torch.zeros((1, 3, sampling.clip_len, sampling.frame_height, sampling.frame_width))
    try:
        out = run(probe)
    except Exception as exc:  # TorchScript and ONNX Runtime raise their own types for a bad input
        raise ModelError(
            f"weights file {uri}: the backbone rejects one clip {list(probe.shape)} as the card describes it"
            f" ({_first_line(exc)})",
            reason="shape_mismatch",
        ) from exc
    return VideoBackbone(sampling, run, device, max_batch, uri), out


def measure_embed_dim(backbone: Path | bytes, sampling: dict, backbone_format: str | None = None) -> int:
    """``D``, the width a backbone file outputs for one zero clip sampled as ``sampling`` (a card's
    ``extractor.config``, whose ``embed_dim`` is not needed) says. Raises ``ModelError`` naming the file
    when it does not output ``[1, D]``, ValueError for a bad sampling."""
    data = Path(backbone).read_bytes() if isinstance(backbone, str | Path) else bytes(backbone)
    uri = str(backbone) if isinstance(backbone, str | Path) else "the backbone"
    fmt = backbone_format or backbone_format_of(data)
    sampling_1 = VideoSampling.from_dict({**sampling, "embed_dim": 1})
    _, out = _open_backbone(io.BytesIO(data), fmt, sampling_1, uri, torch.device("cpu"))
    if out.ndim != 2 or out.shape[0] != 1:
        raise ModelError(
            f"weights file {uri}: the backbone outputs {list(out.shape)} for one clip; a backbone outputs [1, D]",
            reason="shape_mismatch",
        )
    return int(out.shape[1])


def _torchscript_runner(file: BinaryIO, uri: str, device: torch.device) -> Callable:
    try:
        with _quiet_torchscript():
            module = torch.jit.load(file, map_location=device)
    except Exception as exc:  # a damaged archive can fail in many ways inside the C++ loader
        raise _corrupt(uri, exc) from exc
    module.eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = module(x.to(device, non_blocking=True))
        if not isinstance(out, torch.Tensor):
            raise ModelError(
                f"backbone {uri} returned {type(out).__name__}, not a tensor", reason="shape_mismatch"
            )
        return out.float().cpu()

    return run


def _onnx_runner(
    file: BinaryIO, sampling: VideoSampling, uri: str, device: torch.device
) -> tuple[Callable, torch.device, int]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(
            f"weights file {uri} is an ONNX backbone but onnxruntime is not installed: {ONNX_EXTRA}",
            reason="missing_dependency",
        ) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the share the caller gave torch
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on shared CPUs
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        else:
            log.warning("%s: this onnxruntime has no CUDA provider; the backbone runs on the CPU", uri)
            device = torch.device("cpu")
    try:
        session = ort.InferenceSession(file.read(), options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - a damaged protobuf fails in many ways
        if "external data" in str(exc).lower():
            raise ModelError(
                f"weights file {uri} keeps its weights in separate external-data files, which a bundle"
                " does not carry: export it as one file (torch.onnx.export(..., external_data=False))",
                reason="weights_corrupt",
            ) from exc
        raise _corrupt(uri, exc) from exc
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    expected = [None, 3, sampling.clip_len, sampling.frame_height, sampling.frame_width]
    if len(inp.shape) != 5:
        raise ModelError(
            f"weights file {uri}: input {inp.name!r} has shape {inp.shape}; a backbone takes [B, 3, T, H, W]",
            reason="shape_mismatch",
        )
    for axis, (have, want) in enumerate(zip(inp.shape, expected, strict=True)):
        if want is not None and isinstance(have, int) and have != want:
            raise ModelError(
                f"weights file {uri}: input {inp.name!r} has shape {inp.shape} but the card describes"
                f" [B, 3, {sampling.clip_len}, {sampling.frame_height}, {sampling.frame_width}] (axis {axis})",
                reason="shape_mismatch",
            )
    batch = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else CLIP_BATCH

    def run(x: torch.Tensor) -> torch.Tensor:
        (emb, *_) = session.run([out.name], {inp.name: x.numpy()})
        return torch.from_numpy(np.asarray(emb, dtype=np.float32))

    return run, device, batch


# ------------------------------------------------------------------------------------------- saving


def backbone_format_of(data: bytes) -> str:
    """``torchscript`` for a zip archive (what ``torch.jit.save`` writes), otherwise ``onnx``."""
    return "torchscript" if data[:4] == b"PK\x03\x04" else "onnx"


# ------------------------------------------------------------------------------- backbone bundles


@dataclass(frozen=True)
class LoadedBackbone:
    """The backbone of a ``video`` bundle, without its head (if it has one)."""

    card: ModelCard
    backbone: VideoBackbone
    backbone_bytes: bytes  # the checked file, to save it into a new bundle
    device: torch.device
    source: str

    @property
    def sampling(self) -> VideoSampling:
        return self.backbone.sampling


def load_backbone(
    ref: str, *, store_uri: str | None = None, device: str | torch.device | None = None
) -> LoadedBackbone:
    """Load the backbone of the ``video`` bundle ``ref`` (``name@version`` or a location, see
    :func:`~actrec_batch.model.refs.resolve_model_ref`) onto ``device`` (see ``select_device``).
    The head, if any, is not loaded. Raises ``ModelError`` as ``load_model`` does, and ``bad_card`` when
    the bundle is not of the ``video`` arch."""
    target = select_device(device)
    store = open_store(resolve_model_ref(ref, store_uri=store_uri))
    card = read_card(store)
    if not card.is_video_arch:
        raise ModelError(
            f"model {store.root_uri} is of arch {card.arch!r}; a backbone bundle has arch {VIDEO_ARCH!r}",
            reason="bad_card",
        )
    uri = store.uri(card.extractor.weights)
    with (
        tempfile.TemporaryDirectory(prefix="actrec-model-") as tmp,
        _opened(store, card.extractor.weights, card.extractor.sha256, Path(tmp) / "backbone") as file,
    ):
        data = file.read()
        backbone = load_backbone_file(io.BytesIO(data), card, uri, target)
    return LoadedBackbone(card, backbone, data, backbone.device, store.root_uri)
