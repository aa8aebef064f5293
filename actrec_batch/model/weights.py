"""Weights files of a bundle: opened only after their sha256 matches the card, deserialised with
each failure named (:class:`ModelError`), checked against the architecture and the label map, and
serialised for saving."""

from __future__ import annotations

import hashlib
import io
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import safetensors.torch
import torch
from torch import nn

from actrec_batch.errors import StorageError
from actrec_batch.model.card import CARD_FILE, ModelCard, ModelError
from actrec_batch.storage import ObjectStore

_SHA_SHOWN = 12  # hex digits of a sha256 shown in messages
_DETAIL_CHARS = 120  # of a deserialiser's own error, quoted in ours


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


def _safetensors_bytes(module: nn.Module) -> bytes:
    state = {key: tensor.detach().contiguous() for key, tensor in module.state_dict().items()}
    return safetensors.torch.save(state, metadata={"format": "pt"})


def _torchscript_bytes(module: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    with _quiet_torchscript():
        torch.jit.save(module, buffer)
    return buffer.getvalue()
