"""Saving and loading model bundles, shipped with the package or kept in the object store.

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

import copy
import hashlib
import io
import json
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import safetensors.torch
import torch
from torch import nn

from actrec_batch.errors import ConfigError, StorageError
from actrec_batch.model.card import CARD_FILE, ExtractorSpec, HeadSpec, ModelCard, ModelError
from actrec_batch.model.reference import ExtractorConfig, HeadConfig, ReferenceExtractor, ReferenceHead
from actrec_batch.storage import LocalStore, ObjectStore, open_store

SHIPPED_DIR = Path(__file__).parent / "weights"  # package data: <name>-v<version>/card.json + weights
STORE_MODELS_PREFIX = "models"  # users' models live at <store>/models/<name>/<version>/

_MODEL_REF = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)@(?P<version>[A-Za-z0-9][A-Za-z0-9._-]*)")
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")
_SHA_SHOWN = 12  # hex digits of a sha256 shown in messages
_DETAIL_CHARS = 120  # of a deserialiser's own error, quoted in ours
_WEIGHTS_FILES = {
    "state_dict": ("extractor.safetensors", "head.safetensors"),
    "torchscript": ("extractor.pt", "head.pt"),
}


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


def select_device(preference: str | torch.device | None = None) -> torch.device:
    """The torch device to run on.

    ``None`` or ``"auto"``: ``cuda`` if CUDA is available, else ``cpu``. ``"cpu"``, ``"cuda"`` and
    ``"cuda:N"`` are taken as asked, but a CUDA device that this machine does not have raises
    ``ConfigError`` now instead of failing later inside torch. Anything else raises ``ConfigError``.
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    text = "auto" if preference is None else str(preference).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not _DEVICE.fullmatch(text):
        raise ConfigError(f"device {preference!r} is not supported: use auto, cpu, cuda or cuda:N")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {preference!r} was asked for but CUDA is not available here: use auto or cpu"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device {preference!r} does not exist: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
    return device


# ---------------------------------------------------------------------------------- finding bundles


def resolve_model_ref(ref: str, *, store_uri: str | None = None) -> str:
    """Where the bundle of ``ref`` lives.

    ``name@version`` is looked up first among the shipped models (``SHIPPED_DIR/<name>-v<version>/``),
    then under ``<store_uri>/models/<name>/<version>/``, and the bundle's URI is returned. Anything else
    is a location (a local path, ``file://`` or ``s3://`` URI) and is returned as it is; write
    ``./name@1`` for a directory whose name looks like a reference. An unknown ``name@version`` raises
    ``ModelError(reason="model_not_found")`` listing the shipped models.
    """
    match = _MODEL_REF.fullmatch(ref.strip())
    if match is None:
        return ref
    name, version = match["name"], match["version"]
    shipped = SHIPPED_DIR / f"{name}-v{version}"
    if (shipped / CARD_FILE).is_file():
        return LocalStore(shipped).root_uri
    searched = [f"the shipped models ({', '.join(_shipped_models()) or 'none are shipped'})"]
    if store_uri is not None:
        store = open_store(store_uri)
        prefix = f"{STORE_MODELS_PREFIX}/{name}/{version}/"
        if store.exists(prefix + CARD_FILE):
            return store.uri(prefix).rstrip("/")
        searched.append(store.uri(prefix))
    else:
        searched.append("no model store (none was given as store_uri)")
    raise ModelError(f"unknown model {ref!r}: searched {' and '.join(searched)}", reason="model_not_found")


def available_models(store_uri: str | None = None) -> list[str]:
    """Sorted ``name@version`` of the shipped models and, given ``store_uri``, of those in the store."""
    found = set(_shipped_models())
    if store_uri is not None:
        store = open_store(store_uri)
        card_key = re.compile(rf"{STORE_MODELS_PREFIX}/([^/]+)/([^/]+)/{re.escape(CARD_FILE)}")
        for info in store.list(f"{STORE_MODELS_PREFIX}/"):
            match = card_key.fullmatch(info.key)
            if match:
                found.add(f"{match[1]}@{match[2]}")
    return sorted(found)


def _shipped_models() -> list[str]:
    if not SHIPPED_DIR.is_dir():  # no model has been shipped with this install yet
        return []
    models = []
    for bundle in sorted(SHIPPED_DIR.iterdir()):
        name, sep, version = bundle.name.rpartition("-v")
        if sep and name and (bundle / CARD_FILE).is_file():
            models.append(f"{name}@{version}")
    return models


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
    match = _MODEL_REF.fullmatch(ref.strip())
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


def read_card(store: ObjectStore) -> ModelCard:
    """The checked card of the bundle rooted at ``store``. Raises ``model_not_found`` or ``bad_card``."""
    uri = store.uri(CARD_FILE)
    try:
        raw = store.get_bytes(CARD_FILE)
    except StorageError as exc:
        if exc.reason != "not_found":
            raise
        raise ModelError(
            f"no model bundle at {store.root_uri}: {uri} does not exist", reason="model_not_found"
        ) from exc
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"bad model card {uri}: not valid JSON ({exc})", reason="bad_card") from exc
    return ModelCard.from_dict(data, source=uri)


@contextmanager
def _verified_weights(store: ObjectStore, card: ModelCard) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """Open both weights files, each checked against the card's sha256 and rewound to its start.

    The checked handle is the one deserialised, so a file replaced after the check cannot slip through.
    Remote files are downloaded to a temporary directory first.
    """
    with (
        tempfile.TemporaryDirectory(prefix="actrec-model-") as tmp,
        _opened(
            store, card.extractor.weights, card.extractor.sha256, Path(tmp) / "extractor"
        ) as extractor_file,
        _opened(store, card.head.weights, card.head.sha256, Path(tmp) / "head") as head_file,
    ):
        yield extractor_file, head_file


@contextmanager
def _opened(store: ObjectStore, key: str, expected_sha256: str, scratch: Path) -> Iterator[BinaryIO]:
    uri = store.uri(key)
    path = store.local_path(key)
    try:
        if path is None:
            path = store.download(key, scratch)
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after the caller deserialised it
    except (StorageError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        if isinstance(exc, StorageError) and exc.reason != "not_found":
            raise
        raise ModelError(
            f"weights file {uri} named in {CARD_FILE} is missing", reason="weights_missing"
        ) from exc
    with handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
        if actual != expected_sha256:
            raise ModelError(
                f"weights file {uri} has sha256 {actual[:_SHA_SHOWN]}… but {CARD_FILE} expects"
                f" {expected_sha256[:_SHA_SHOWN]}…: the file is damaged or does not belong to this card",
                reason="checksum_mismatch",
            )
        handle.seek(0)
        yield handle


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


def _load_safetensors(module: nn.Module, file: BinaryIO, uri: str) -> None:
    try:
        state = safetensors.torch.load(file.read())
    except Exception as exc:  # a damaged file can fail in many ways inside the Rust parser
        raise _corrupt(uri, exc) from exc
    _check_state_dict(module, state, uri)
    module.load_state_dict(state)


def _build(
    module_cls: type[nn.Module], config_cls: type, config: dict, card_uri: str, part: str
) -> nn.Module:
    try:
        return module_cls(config_cls.from_dict(config))
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"bad model card {card_uri}: field '{part}.config' does not fit {config_cls.__name__} ({exc})",
            reason="bad_card",
        ) from exc


def _check_state_dict(module: nn.Module, state: dict[str, torch.Tensor], uri: str) -> None:
    """Raise ``shape_mismatch`` naming the first tensor (in the module's order) that does not fit."""
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise ModelError(
                f"weights file {uri} lacks tensor {key!r} of the architecture", reason="shape_mismatch"
            )
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelError(
                f"weights file {uri}: tensor {key!r} has shape {list(state[key].shape)} but the architecture"
                f" needs {list(tensor.shape)}",
                reason="shape_mismatch",
            )
    for key in state:
        if key not in expected:
            raise ModelError(
                f"weights file {uri} has tensor {key!r} that the architecture does not have",
                reason="shape_mismatch",
            )


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


def _check_head_classes(card: ModelCard, head: nn.Module, device: torch.device, where: str) -> None:
    """Run the head on one zero clip and compare its class count with the label map.

    Measuring works for every format and architecture, TorchScript heads included, whose config is not
    readable. ``where`` starts the message (``weights file <uri>``).
    """
    embed_dim = card.head.config.get("embed_dim", card.extractor.config.get("embed_dim"))
    if not isinstance(embed_dim, int) or isinstance(embed_dim, bool):
        raise ModelError(
            f"{where}: the card's head.config or extractor.config needs an integer embed_dim to check the head",
            reason="bad_card",
        )
    try:
        with torch.inference_mode():
            scores = head(torch.zeros(1, 1, embed_dim, device=device))
    except Exception as exc:  # TorchScript raises its own error types for a wrong input shape
        raise ModelError(
            f"{where}: the head rejects input [1, 1, {embed_dim}] ({_first_line(exc)})",
            reason="shape_mismatch",
        ) from exc
    if scores.shape[-1] != len(card.labels):
        raise ModelError(
            f"{where}: head outputs {scores.shape[-1]} classes but the label map has {len(card.labels)}",
            reason="shape_mismatch",
        )


def _check_embed_dims(card: ModelCard, card_uri: str) -> None:
    produced = card.extractor.config.get("embed_dim")
    expected = card.head.config.get("embed_dim")
    if produced is not None and expected is not None and produced != expected:
        raise ModelError(
            f"model card {card_uri}: the head expects embed_dim {expected} but the extractor produces {produced}",
            reason="shape_mismatch",
        )


def _corrupt(uri: str, exc: Exception) -> ModelError:
    return ModelError(
        f"weights file {uri} matches its sha256 in {CARD_FILE} but cannot be deserialised"
        f" ({_first_line(exc)}): the card was made from a broken file",
        reason="weights_corrupt",
    )


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else "no message"
    if len(text) > _DETAIL_CHARS:  # torch's loaders append paragraphs of advice
        text = text[: _DETAIL_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {text}"


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    # torch 2.13 deprecates torch.jit in favour of torch.export; the bundle format still uses it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit")
        yield


# ------------------------------------------------------------------------------------------- saving


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
    draft = ModelCard(
        name=name,
        version=version,
        format=format,
        arch=arch,
        labels=tuple(labels),
        extractor=ExtractorSpec(
            id=extractor_id,
            version=extractor_version,
            config=extractor.cfg.to_dict(),
            weights=extractor_weights,
            sha256=hashlib.sha256(extractor_bytes).hexdigest(),
        ),
        head=HeadSpec(
            config=head.cfg.to_dict(),
            weights=head_weights,
            sha256=hashlib.sha256(head_bytes).hexdigest(),
        ),
        postprocess=dict(postprocess or {}),
        training=dict(training or {}),
        metrics=dict(metrics or {}),
    )
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


def _safetensors_bytes(module: nn.Module) -> bytes:
    state = {key: tensor.detach().contiguous() for key, tensor in module.state_dict().items()}
    return safetensors.torch.save(state, metadata={"format": "pt"})


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


def _torchscript_bytes(module: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    with _quiet_torchscript():
        torch.jit.save(module, buffer)
    return buffer.getvalue()


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
        from actrec_batch.model.video import save_with_video_head

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
    draft = ModelCard(
        name=name,
        version=version,
        format=base.card.format,
        arch=base.card.arch,
        labels=tuple(labels),
        extractor=base.card.extractor,
        head=HeadSpec(
            config=head.cfg.to_dict(),
            weights=base.card.head.weights,
            sha256=hashlib.sha256(head_bytes).hexdigest(),
        ),
        postprocess=dict(postprocess or {}),
        training=dict(training or {}),
        metrics=dict(metrics or {}),
    )
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
