"""Packing a user's network as a ``video`` bundle (``actrec model pack``), and a new head saved on a
``video`` bundle's backbone (``actrec train-head``); :mod:`actrec_batch.model.video` describes the files."""

from __future__ import annotations

import copy
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from actrec_batch.model.card import CARD_FILE, ExtractorSpec, HeadSpec, ModelCard, ModelError
from actrec_batch.model.loading import load_model
from actrec_batch.model.reference import ReferenceHead
from actrec_batch.model.saving import draft_card, sha256_hex
from actrec_batch.model.video import (
    BACKBONE_FILES,
    HEAD_FILES,
    backbone_format_of,
    load_backbone,
    measure_embed_dim,
)
from actrec_batch.model.video_spec import BACKBONE_FORMATS, VIDEO_ARCH, VideoSampling
from actrec_batch.model.weights import (
    _quiet_torchscript,
    _safetensors_bytes,
    _torchscript_bytes,
)
from actrec_batch.storage import LocalStore

log = logging.getLogger(__name__)

# Clips per backbone call: bounds activation memory (16 clips of 3 x 16 x 112 x 112 floats are 38 MB in).


def save_video_model(
    dest_dir: Path,
    *,
    name: str,
    version: str,
    backbone: Path | bytes,
    sampling: VideoSampling | dict,
    labels: Sequence[str] = (),
    head: nn.Module | Path | bytes | None = None,
    extractor_id: str | None = None,
    extractor_version: str = "1",
    backbone_format: str | None = None,
    postprocess: dict | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
) -> ModelCard:
    """Write a ``video`` bundle to ``dest_dir``: the card with every file's sha256, the backbone file as
    it is, and the head. The bundle is loaded back (every check of :func:`load_model`) before a byte
    lands in ``dest_dir``, so a bundle that would not load is never written.

    ``backbone``: a TorchScript or ONNX file (``backbone_format`` is guessed from its bytes when None).
    ``sampling``: a card's ``extractor.config``; without ``embed_dim`` it is measured
    (:func:`measure_embed_dim`).
    ``head``: None (a backbone bundle, ``labels`` empty), a ``ReferenceHead`` (saved as safetensors), any
    other module (scripted to TorchScript) or a TorchScript file. ``extractor_id`` defaults to ``name``;
    keep the id and version of a backbone when only the head changes, so the feature cache is shared.
    Raises ``ModelError`` (``bad_card``, ``shape_mismatch``, ...) naming the file.
    """
    backbone_bytes = Path(backbone).read_bytes() if isinstance(backbone, str | Path) else bytes(backbone)
    fmt = backbone_format or backbone_format_of(backbone_bytes)
    if fmt not in BACKBONE_FORMATS:
        raise ValueError(f"backbone_format must be one of {', '.join(BACKBONE_FORMATS)}, not {fmt!r}")
    if not isinstance(sampling, VideoSampling):
        try:
            if "embed_dim" not in sampling:
                sampling = {**sampling, "embed_dim": measure_embed_dim(backbone, sampling, fmt)}
            sampling = VideoSampling.from_dict(sampling)
        except ValueError as exc:
            raise ModelError(f"bad sampling for {dest_dir}: {exc}", reason="bad_card") from None
    files = {BACKBONE_FILES[fmt]: backbone_bytes}
    head_spec = None
    if head is not None:
        head_format, head_bytes, head_config = _head_file(head, sampling.embed_dim)
        files[HEAD_FILES[head_format]] = head_bytes
        head_spec = HeadSpec(head_config, HEAD_FILES[head_format], sha256_hex(head_bytes), head_format)
    extractor_spec = ExtractorSpec(
        extractor_id or name,
        extractor_version,
        sampling.to_dict(),
        BACKBONE_FILES[fmt],
        sha256_hex(backbone_bytes),
    )
    records = {"postprocess": postprocess, "training": training, "metrics": metrics}
    card = draft_card((name, version, fmt, VIDEO_ARCH), labels, extractor_spec, head_spec, records)
    card_text = _card_text(card, Path(dest_dir) / CARD_FILE)
    given = {BACKBONE_FILES[fmt]: backbone, **({head_spec.weights: head} if head_spec else {})}
    _trial_load(files, card_text, {key: str(v) for key, v in given.items() if isinstance(v, str | Path)})
    store = LocalStore(Path(dest_dir))
    for key, data in files.items():
        store.put_bytes(key, data)
    store.put_bytes(
        CARD_FILE, card_text.encode("utf-8")
    )  # last: a reader never sees a card without its files
    return ModelCard.from_dict(json.loads(card_text), source=str(Path(dest_dir) / CARD_FILE))


def _trial_load(files: dict[str, bytes], card_text: str, sources: dict[str, str]) -> None:
    """Load the bundle from a scratch directory with every check of loading; errors name the user's
    own file (``sources``: bundle file name -> the path it came from) instead of the scratch copy."""
    with tempfile.TemporaryDirectory(prefix="actrec-pack-") as tmp:
        trial = LocalStore(Path(tmp))
        for key, data in files.items():
            trial.put_bytes(key, data)
        trial.put_bytes(CARD_FILE, card_text.encode("utf-8"))
        try:
            if json.loads(card_text).get("head") is None:
                load_backbone(str(tmp), device="cpu")
            else:
                load_model(str(tmp), device="cpu")
        except ModelError as exc:
            message = str(exc)
            for key, path in sources.items():
                message = message.replace(trial.uri(key), path)
            raise ModelError(message.replace(trial.root_uri, "the bundle"), reason=exc.reason) from exc


def _card_text(card: ModelCard, where: Path) -> str:
    text = json.dumps(card.to_dict(), indent=2) + "\n"
    ModelCard.from_dict(json.loads(text), source=str(where))  # the checks load_model will make
    return text


def _head_file(head: nn.Module | Path | bytes, embed_dim: int) -> tuple[str, bytes, dict]:
    """(head format, file bytes, head.config) of a head given as a module or a TorchScript file."""
    if isinstance(head, str | Path | bytes):
        data = Path(head).read_bytes() if isinstance(head, str | Path) else bytes(head)
        return "torchscript", data, {"embed_dim": embed_dim}
    if type(head) is ReferenceHead:
        return "state_dict", _safetensors_bytes(copy.deepcopy(head).cpu().eval()), head.cfg.to_dict()
    if not isinstance(head, torch.jit.ScriptModule):
        with _quiet_torchscript():
            head = torch.jit.script(copy.deepcopy(head).cpu().eval())  # the caller's module is left as it is
    return "torchscript", _torchscript_bytes(head), {"embed_dim": embed_dim}


def save_with_video_head(
    base_ref: str,
    dest_dir: Path,
    *,
    name: str,
    version: str,
    labels: Sequence[str],
    head: nn.Module | Path | bytes,
    store_uri: str | None = None,
    postprocess: dict | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
) -> ModelCard:
    """A new bundle of ``base_ref``'s backbone (the same file, extractor id, version and config, so the
    same feature-cache entries) with ``head`` and ``labels``: what a head trained on cached embeddings
    is saved as. ``base_ref`` is any ``video`` bundle, with or without a head."""
    base = load_backbone(base_ref, store_uri=store_uri, device="cpu")
    return save_video_model(
        dest_dir,
        name=name,
        version=version,
        backbone=base.backbone_bytes,
        backbone_format=base.card.format,
        sampling=base.sampling,
        labels=labels,
        head=head,
        extractor_id=base.card.extractor.id,
        extractor_version=base.card.extractor.version,
        postprocess=postprocess if postprocess is not None else base.card.postprocess,
        training=training,
        metrics=metrics,
    )
