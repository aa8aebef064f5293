"""Saving model bundles: a trained extractor and head (:func:`save_model`), or a new head on a saved
bundle's extractor, its weights file copied byte for byte (:func:`save_with_head`)."""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from actrec_batch.model.card import CARD_FILE, ExtractorSpec, HeadSpec, ModelCard, ModelError
from actrec_batch.model.loading import ARCHITECTURES, LoadedModel, load_model
from actrec_batch.model.reference import HeadConfig, ReferenceHead
from actrec_batch.model.weights import (
    _check_embed_dims,
    _check_head_classes,
    _opened,
    _quiet_torchscript,
    _safetensors_bytes,
    _torchscript_bytes,
)
from actrec_batch.storage import LocalStore, open_store

_WEIGHTS_FILES = {
    "state_dict": ("extractor.safetensors", "head.safetensors"),
    "torchscript": ("extractor.pt", "head.pt"),
}


def sha256_hex(data: bytes) -> str:
    """The sha256 of a weights file's bytes, as a card records it."""
    return hashlib.sha256(data).hexdigest()


def draft_card(
    identity: tuple[str, str, str, str | None],
    labels: Sequence[str],
    extractor: ExtractorSpec,
    head: HeadSpec | None,
    records: Mapping[str, dict | None],
) -> ModelCard:
    """A new bundle's card, before the checks its saver makes: ``identity`` is (name, version, format,
    arch); ``records`` holds its ``postprocess``, ``training`` and ``metrics`` (copied; None: empty)."""
    copied = {key: dict(records.get(key) or {}) for key in ("postprocess", "training", "metrics")}
    return ModelCard(*identity, tuple(labels), extractor, head, **copied)


def save_model(
    dest_dir: Path,
    *,
    name: str,
    version: str,
    labels: list[str] | tuple[str, ...],
    extractor: nn.Module,
    head: nn.Module,
    extractor_id: str = "reference-extractor",
    extractor_version: str = "1",
    postprocess: dict | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
    format: str = "state_dict",
) -> ModelCard:
    """Write a bundle of ``extractor`` and ``head`` (modules of a registered architecture) to ``dest_dir``.

    ``state_dict`` writes safetensors files; ``torchscript`` writes ``extractor.pt``, traced from
    ``encode_frames`` and ``encode_clips`` in eval mode (inference only), and ``head.pt``, scripted.
    The caller's modules are not changed. Each file is written atomically (temporary file, fsync,
    rename) and ``card.json`` last, so a reader never sees a card whose weights are not there yet; a
    reader that races a re-save of the same directory can still see a new weights file under the old card,
    which fails its checksum. Raises ``ModelError`` (``bad_card`` for an invalid name, label map or
    config, ``shape_mismatch`` when the head's class count differs from ``len(labels)``).
    """
    if format not in _WEIGHTS_FILES:
        raise ValueError(f"format must be one of {', '.join(_WEIGHTS_FILES)}, not {format!r}")
    arch = _arch_of(extractor, head)
    extractor_weights, head_weights = _WEIGHTS_FILES[format]
    extractor = copy.deepcopy(extractor).cpu().eval()
    head = copy.deepcopy(head).cpu().eval()
    if format == "state_dict":
        extractor_bytes, head_bytes = _safetensors_bytes(extractor), _safetensors_bytes(head)
    else:
        extractor_bytes, head_bytes = _torchscript_extractor_bytes(extractor), _torchscript_head_bytes(head)
    extractor_spec = ExtractorSpec(
        extractor_id,
        extractor_version,
        extractor.cfg.to_dict(),
        extractor_weights,
        sha256_hex(extractor_bytes),
    )
    head_spec = HeadSpec(head.cfg.to_dict(), head_weights, sha256_hex(head_bytes))
    records = {"postprocess": postprocess, "training": training, "metrics": metrics}
    draft = draft_card((name, version, format, arch), labels, extractor_spec, head_spec, records)
    return _write_bundle(dest_dir, draft, head, extractor_bytes, head_bytes, "save_model")


def _write_bundle(
    dest_dir: Path, draft: ModelCard, head: nn.Module, extractor_bytes: bytes, head_bytes: bytes, what: str
) -> ModelCard:
    """Check ``draft`` and write the bundle: both weights files, then ``card.json`` (each atomically)."""
    # Checked as read back from its JSON text, so the card returned equals the one load_model will see.
    card_text = json.dumps(draft.to_dict(), indent=2) + "\n"
    card = ModelCard.from_dict(json.loads(card_text), source=str(Path(dest_dir) / CARD_FILE))
    _check_embed_dims(card, str(Path(dest_dir) / CARD_FILE))
    _check_head_classes(card, head, torch.device("cpu"), f"{what} to {dest_dir}")
    store = LocalStore(Path(dest_dir))
    store.put_bytes(card.extractor.weights, extractor_bytes)
    store.put_bytes(card.head.weights, head_bytes)
    store.put_bytes(CARD_FILE, card_text.encode("utf-8"))
    return card


def _arch_of(extractor: nn.Module, head: nn.Module) -> str:
    for arch_name, arch in ARCHITECTURES.items():
        if type(extractor) is arch.extractor and type(head) is arch.head:
            return arch_name
    raise TypeError(
        f"save_model needs the modules of a registered architecture ({', '.join(ARCHITECTURES)}), got"
        f" {type(extractor).__name__} and {type(head).__name__}"
    )


def _torchscript_extractor_bytes(extractor: nn.Module) -> bytes:
    """Trace the two methods the pipeline calls.

    ``ReferenceExtractor.forward`` cannot be scripted (it unpacks a shape into ``reshape``), and
    scripting compiles ``forward``. Tracing runs the real methods, so nothing is written twice, and it is
    exact here: they have no data-dependent branches, and the traced graph takes any N, B and T (the
    tests check other sizes than the example's). BatchNorm is traced in eval mode.
    """
    cfg = extractor.cfg
    frames = torch.zeros(2, cfg.frame_height, cfg.frame_width, 3, dtype=torch.uint8)
    codes = torch.zeros(2, cfg.clip_len, cfg.code_dim)
    with _quiet_torchscript(), torch.no_grad():
        traced = torch.jit.trace_module(
            extractor, {"encode_frames": (frames, frames), "encode_clips": (codes,)}
        )
    return _torchscript_bytes(traced)


def _torchscript_head_bytes(head: nn.Module) -> bytes:
    with _quiet_torchscript():
        return _torchscript_bytes(torch.jit.script(head))


def new_head(card: ModelCard, labels: list[str] | tuple[str, ...], *, seed: int = 0) -> nn.Module:
    """A freshly initialised head of ``card``'s architecture and head config, with one output per
    label of ``labels``: what a head-only fit starts from. For a ``video`` bundle, a ``ReferenceHead``
    over the backbone's ``embed_dim`` (its own head's config when that is a state_dict head). Raises
    ``ModelError`` (``bad_card``) for a card that is neither that nor a state_dict bundle of a known
    architecture."""
    if card.is_video_arch:
        torch.manual_seed(seed)
        own = card.head.config if card.head is not None and card.head.format == "state_dict" else {}
        config = {**own, "embed_dim": int(card.extractor.config["embed_dim"]), "num_classes": len(labels)}
        return ReferenceHead(HeadConfig.from_dict(config)).eval()
    arch = ARCHITECTURES.get(card.arch or "")
    if arch is None or card.format != "state_dict":
        raise ModelError(
            f"{card.model_id}: a new head needs a state_dict bundle of a known architecture "
            f"({', '.join(ARCHITECTURES)}), not a {card.format} bundle of arch {card.arch!r}",
            reason="bad_card",
        )
    torch.manual_seed(seed)
    config = {**card.head.config, "num_classes": len(labels)}
    return arch.head(arch.head_config.from_dict(config)).eval()


def save_with_head(
    base: LoadedModel,
    dest_dir: Path,
    head: nn.Module,
    *,
    name: str,
    version: str,
    labels: list[str] | tuple[str, ...],
    postprocess: dict | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
) -> ModelCard:
    """Save a bundle of ``base``'s extractor and ``head`` (a head of ``base``'s architecture, see
    :func:`new_head`) to ``dest_dir``. ``base`` may be a ``video`` bundle, with or without a head (from
    :func:`load_extractor`): that is saved by :func:`~actrec_batch.model.video.save_with_video_head`.

    The extractor's weights file is copied byte for byte and its card entry (id, version, config,
    sha256) kept, so the new bundle shares the feature cache of ``base``: rescoring with it decodes
    nothing already embedded. Raises ``ModelError`` (``checksum_mismatch`` when the base's weights
    file changed since it was loaded, ``shape_mismatch`` when the head does not fit ``labels``).
    """
    if base.card.is_video_arch:
        from actrec_batch.model.video_saving import save_with_video_head

        return save_with_video_head(
            base.source,
            dest_dir,
            name=name,
            version=version,
            labels=labels,
            head=head,
            postprocess=dict(postprocess or {}),
            training=training,
            metrics=metrics,
        )
    if base.card.format != "state_dict" or type(head) is not ARCHITECTURES[base.card.arch or ""].head:
        raise TypeError(f"{base.card.model_id}: save_with_head needs a head of its own architecture")
    source = open_store(base.source)
    with (
        tempfile.TemporaryDirectory(prefix="actrec-model-") as tmp,
        _opened(
            source, base.card.extractor.weights, base.card.extractor.sha256, Path(tmp) / "extractor"
        ) as f,
    ):
        extractor_bytes = f.read()
    head = copy.deepcopy(head).cpu().eval()
    head_bytes = _safetensors_bytes(head)
    head_spec = HeadSpec(head.cfg.to_dict(), base.card.head.weights, sha256_hex(head_bytes))
    records = {"postprocess": postprocess, "training": training, "metrics": metrics}
    identity = (name, version, base.card.format, base.card.arch)
    draft = draft_card(identity, labels, base.card.extractor, head_spec, records)
    return _write_bundle(dest_dir, draft, head, extractor_bytes, head_bytes, "save_with_head")


def save_with_new_head(base_ref: str, dest_dir: Path, *, name: str, version: str, seed: int = 0) -> ModelCard:
    """Save a bundle with ``base_ref``'s extractor (same weights, id and version) and a freshly
    initialised head of the same config: the start of a head-only fine-tune, and the cheapest
    "different model on the same features" for checking that a rescore reuses the feature cache.
    """
    base = load_model(base_ref, device="cpu")
    return save_with_head(
        base,
        dest_dir,
        new_head(base.card, base.card.labels, seed=seed),
        name=name,
        version=version,
        labels=list(base.card.labels),
        postprocess=base.card.postprocess,
    )
