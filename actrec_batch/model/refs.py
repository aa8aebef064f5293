"""Finding model bundles: the device to run on, where ``name@version`` lives (shipped with the
package or under ``<store>/models/``), which bundles exist, and a bundle's checked card."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from actrec_batch.errors import ConfigError, StorageError
from actrec_batch.model.card import CARD_FILE, ModelCard, ModelError
from actrec_batch.storage import LocalStore, ObjectStore, open_store

SHIPPED_DIR = Path(__file__).parent / "weights"  # package data: <name>-v<version>/card.json + weights
STORE_MODELS_PREFIX = "models"  # users' models live at <store>/models/<name>/<version>/

MODEL_REF = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)@(?P<version>[A-Za-z0-9][A-Za-z0-9._-]*)")
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


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
    match = MODEL_REF.fullmatch(ref.strip())
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
