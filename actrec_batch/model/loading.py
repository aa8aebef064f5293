"""Loading model bundles, shipped with the package or kept in the object store.

A bundle is a directory or an ``s3://`` prefix with a ``card.json`` (:mod:`actrec_batch.model.card`) and
two weights files, in one of two formats:

* ``state_dict``: ``extractor.safetensors`` and ``head.safetensors``, loaded into the architecture that
  the card's ``arch`` names in :data:`ARCHITECTURES`. Safetensors hold tensors only, never code.
* ``torchscript``: ``extractor.pt`` (exported methods ``encode_frames`` and ``encode_clips``) and
  ``head.pt`` (``forward``). These run without the Python classes, and they run code from the file, so
  load them only from people you trust.

A card of the generic ``video`` arch (a user's TorchScript or ONNX network) is loaded by
:mod:`actrec_batch.model.video`, with the same checks.

Loading checks each file's sha256 against the card before deserialising a byte, and then the tensor
names and shapes against the architecture and the head's output size against the label map. Every
failure is a :class:`ModelError` with a one-line message that names the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

import torch
from torch import nn

from actrec_batch.model.card import CARD_FILE, ModelCard, ModelError
from actrec_batch.model.reference import ExtractorConfig, HeadConfig, ReferenceExtractor, ReferenceHead
from actrec_batch.model.refs import MODEL_REF, read_card, resolve_model_ref, select_device
from actrec_batch.model.weights import (
    _build,
    _check_embed_dims,
    _check_head_classes,
    _corrupt,
    _load_safetensors,
    _quiet_torchscript,
    _verified_weights,
)
from actrec_batch.storage import ObjectStore, open_store


class Architecture(NamedTuple):
    """The classes that build one architecture from the configs in a card."""

    extractor: type[nn.Module]
    extractor_config: type
    head: type[nn.Module]
    head_config: type


ARCHITECTURES: dict[str, Architecture] = {
    "reference": Architecture(ReferenceExtractor, ExtractorConfig, ReferenceHead, HeadConfig),
}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference: both modules are in eval mode on ``device``.

    ``source`` is the bundle's URI (``file:///...`` or ``s3://...``). The label of head output ``i`` is
    ``card.labels[i]``. For a ``video``-arch card, ``extractor`` is a
    :class:`~actrec_batch.model.video.VideoBackbone` (preprocessing and the network, on its own device).
    """

    card: ModelCard
    extractor: nn.Module
    head: nn.Module | None  # None only from :func:`load_extractor` of a backbone bundle
    device: torch.device
    source: str


# ------------------------------------------------------------------------------------------ devices


# ------------------------------------------------------------------------------------------ loading


def load_model(
    ref: str, *, store_uri: str | None = None, device: str | torch.device | None = None
) -> LoadedModel:
    """Load the model ``ref`` (see :func:`resolve_model_ref`) onto ``device`` (see :func:`select_device`).

    Raises ``ModelError`` with the reason ``model_not_found`` (no ``card.json``), ``bad_card``,
    ``weights_missing``, ``checksum_mismatch`` (checked before deserialising), ``weights_corrupt`` (the
    sha256 matches but the file does not deserialise) or ``shape_mismatch`` (tensors that do not fit the
    architecture, or a head whose class count differs from the label map), ``no_head`` (a ``video``
    backbone bundle: see :func:`actrec_batch.model.video.load_backbone`) or ``missing_dependency`` (an
    ONNX backbone without onnxruntime). S3 weights are downloaded to a temporary directory, which is
    removed before returning.
    """
    target = select_device(device)
    location = resolve_model_ref(ref, store_uri=store_uri)
    store = open_store(location)
    card = read_card(store)
    match = MODEL_REF.fullmatch(ref.strip())
    if match and card.model_id != match[0]:
        raise ModelError(
            f"bad model card {store.uri(CARD_FILE)}: it describes {card.model_id}, not {match[0]}",
            reason="bad_card",
        )
    if card.head is None:
        raise ModelError(
            f"model {store.root_uri} is a backbone bundle without a head: train one on its cached"
            f" embeddings with `actrec train-head --model {ref}`",
            reason="no_head",
        )
    if target.type == "cuda":
        # TF32 convolutions (PyTorch's cuDNN default) move probabilities by ~2e-3 against CPU
        # (measured on an H200, bench/gpu.py); features must not depend on the device that made
        # them, since the feature cache is shared by CPU and GPU runs. Full fp32 costs ~1% there.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    with _verified_weights(store, card) as (extractor_file, head_file):
        if card.is_video_arch:
            extractor, head = _load_video(store, card, extractor_file, head_file, target)
        elif card.format == "state_dict":
            extractor, head = _load_state_dicts(store, card, extractor_file, head_file)
        else:
            extractor, head = _load_torchscript(store, card, extractor_file, head_file, target)
    if not card.is_video_arch:  # a video backbone is already on its device
        extractor = extractor.to(target).eval()
    head = head.to(target).eval()
    _check_head_classes(card, head, target, f"weights file {store.uri(card.head.weights)}")
    return LoadedModel(card=card, extractor=extractor, head=head, device=target, source=store.root_uri)


def load_extractor(
    ref: str, *, store_uri: str | None = None, device: str | torch.device | None = None
) -> LoadedModel:
    """What embedding needs of the model ``ref``: :func:`load_model`, except that a ``video`` backbone
    bundle without a head loads too, with ``head`` None (the pipeline embeds with it for ``actrec
    train-head``). Raises ``ModelError`` as :func:`load_model` does."""
    from actrec_batch.model.video import load_backbone

    card = read_card(open_store(resolve_model_ref(ref, store_uri=store_uri)))
    if card.head is not None or not card.is_video_arch:
        return load_model(ref, store_uri=store_uri, device=device)
    base = load_backbone(ref, store_uri=store_uri, device=device)
    return LoadedModel(
        card=base.card, extractor=base.backbone, head=None, device=base.device, source=base.source
    )


def _load_state_dicts(
    store: ObjectStore, card: ModelCard, extractor_file: BinaryIO, head_file: BinaryIO
) -> tuple[nn.Module, nn.Module]:
    card_uri = store.uri(CARD_FILE)
    arch = ARCHITECTURES.get(card.arch or "")
    if arch is None:
        raise ModelError(
            f"bad model card {card_uri}: unknown arch {card.arch!r} (known: {', '.join(ARCHITECTURES)})",
            reason="bad_card",
        )
    extractor = _build(arch.extractor, arch.extractor_config, card.extractor.config, card_uri, "extractor")
    head = _build(arch.head, arch.head_config, card.head.config, card_uri, "head")
    _check_embed_dims(card, card_uri)
    _load_safetensors(extractor, extractor_file, store.uri(card.extractor.weights))
    _load_safetensors(head, head_file, store.uri(card.head.weights))
    return extractor, head


def _load_video(
    store: ObjectStore, card: ModelCard, backbone_file: BinaryIO, head_file: BinaryIO, device: torch.device
) -> tuple[nn.Module, nn.Module]:
    """A ``video``-arch backbone (:mod:`actrec_batch.model.video`) and its head (safetensors or TorchScript)."""
    from actrec_batch.model.video import load_backbone_file

    card_uri = store.uri(CARD_FILE)
    _check_embed_dims(card, card_uri)
    backbone = load_backbone_file(backbone_file, card, store.uri(card.extractor.weights), device)
    head_uri = store.uri(card.head.weights)
    if card.head.format == "state_dict":
        head = _build(ReferenceHead, HeadConfig, card.head.config, card_uri, "head")
        _load_safetensors(head, head_file, head_uri)
    else:
        try:
            with _quiet_torchscript():
                head = torch.jit.load(head_file, map_location=device)
        except Exception as exc:  # a damaged archive can fail in many ways inside the C++ loader
            raise _corrupt(head_uri, exc) from exc
    return backbone, head


def _load_torchscript(
    store: ObjectStore, card: ModelCard, extractor_file: BinaryIO, head_file: BinaryIO, device: torch.device
) -> tuple[nn.Module, nn.Module]:
    _check_embed_dims(card, store.uri(CARD_FILE))
    modules = []
    for file, weights in ((extractor_file, card.extractor.weights), (head_file, card.head.weights)):
        try:
            with _quiet_torchscript():
                modules.append(torch.jit.load(file, map_location=device))
        except Exception as exc:  # a damaged archive can fail in many ways inside the C++ loader
            raise _corrupt(store.uri(weights), exc) from exc
    extractor, head = modules
    for method in ("encode_frames", "encode_clips"):
        if not hasattr(extractor, method):
            raise ModelError(
                f"weights file {store.uri(card.extractor.weights)} is a TorchScript module without the"
                f" exported method {method}()",
                reason="shape_mismatch",
            )
    return extractor, head
