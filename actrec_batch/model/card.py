"""The model card: what a model is, read from the ``card.json`` of its bundle.

A model bundle is a directory or an object-store prefix holding ``card.json`` and the weight files it
names. The card pins everything that changes the model's output: the architecture and its config, the
sampling parameters, the label map (index ``i`` of the head's output is ``labels[i]``), and the sha256
of every weights file. Identities derived from it:

* ``model_id`` (``name@version``): what users ask for and what results are tagged with.
* ``extractor_id`` (``id@version``): which extractor made a feature, the key of the feature cache.
* ``weights_sha256``: the exact weights, for when a version was re-trained under the same name.

This module does no I/O and does not import torch, so DAG files and reports can read cards cheaply.
Loading lives in :mod:`actrec_batch.model.loading`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actrec_batch.errors import ActrecError, StorageError
from actrec_batch.model.video_spec import BACKBONE_FORMATS, HEAD_FORMATS, VIDEO_ARCH, VideoSampling
from actrec_batch.storage import normalize_key

CARD_FILE = "card.json"
SAMPLING_KEYS = ("sample_fps", "clip_len", "clip_hop", "frame_width", "frame_height")
FORMATS = ("state_dict", "torchscript", "onnx")

# Names and versions become directory names and the two halves of "name@version".
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelError(ActrecError):
    """A model that cannot be found or loaded. The one-line message names the file or URI.

    Reason codes: ``model_not_found``, ``weights_missing``, ``weights_corrupt``, ``checksum_mismatch``,
    ``bad_card``, ``shape_mismatch``.
    """

    reason = "model_error"


@dataclass(frozen=True)
class ExtractorSpec:
    """The extractor of a model. ``config`` is the architecture's config (``ExtractorConfig.to_dict()``);
    for TorchScript it still carries the sampling parameters (frame size, ``sample_fps``, ``clip_len``,
    ``clip_hop``, ``frame_dim``, ``embed_dim``). ``weights`` is a file name relative to the bundle."""

    id: str
    version: str
    config: dict[str, Any]
    weights: str
    sha256: str


@dataclass(frozen=True)
class HeadSpec:
    """The head of a model: its config (``HeadConfig.to_dict()``), weights file and the file's sha256.

    ``format`` is set for ``video``-arch cards only (``state_dict``: a ``ReferenceHead`` in safetensors;
    ``torchscript``); the other cards' heads have the card's format."""

    config: dict[str, Any]
    weights: str
    sha256: str
    format: str | None = None


@dataclass(frozen=True)
class ModelCard:
    """The parsed ``card.json``. Build one with :meth:`from_dict`, which checks every field.

    ``arch`` names an entry of the architecture registry (``loading.ARCHITECTURES``); it is required for
    the ``state_dict`` format and, for ``torchscript``, only records what was exported. ``"video"`` is the
    generic arch of users' networks (:mod:`actrec_batch.model.video_spec`): ``format`` is then its
    backbone's (``torchscript`` or ``onnx``), ``extractor.config`` a ``VideoSampling``, and ``head`` may
    be absent (a backbone bundle, with an empty label map, to train a head on). ``postprocess``,
    ``training`` and ``metrics`` are free-form JSON objects. The dicts are not copied on access: treat
    them as read-only.
    """

    name: str
    version: str
    format: str
    arch: str | None
    labels: tuple[str, ...]
    extractor: ExtractorSpec
    head: HeadSpec | None
    postprocess: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        """``name@version``, e.g. ``reference@1``."""
        return f"{self.name}@{self.version}"

    @property
    def extractor_id(self) -> str:
        """``id@version`` of the extractor, e.g. ``reference-extractor@1``: the feature-cache key."""
        return f"{self.extractor.id}@{self.extractor.version}"

    @property
    def weights_sha256(self) -> str:
        """Hex sha256 of the ASCII string ``"<extractor sha256>:<head sha256>"`` (nothing after the colon
        for a bundle without a head).

        It changes whenever either weights file does, so it tells two trainings of one ``model_id`` apart.
        """
        head = self.head.sha256 if self.head is not None else ""
        return hashlib.sha256(f"{self.extractor.sha256}:{head}".encode("ascii")).hexdigest()

    @property
    def is_video_arch(self) -> bool:
        """A user's network of the generic ``video`` arch (:mod:`actrec_batch.model.video_spec`)."""
        return self.arch == VIDEO_ARCH

    def decode_sampling(self) -> dict[str, Any]:
        """What a decode task needs to cut a video into this model's clips: ``sample_fps``, ``clip_len``,
        ``clip_hop``, and ``frame_width`` x ``frame_height``, the size grid frames are decoded at (see
        :func:`actrec_batch.model.sampling.decode_grid_frames`; None keeps the aspect ratio)."""
        if self.is_video_arch:
            return self.video_sampling().decode_sampling()
        return {key: self.extractor.config[key] for key in SAMPLING_KEYS}

    def video_sampling(self) -> VideoSampling:
        """The ``extractor.config`` of a ``video``-arch card (checked by :meth:`from_dict`)."""
        return VideoSampling.from_dict(self.extractor.config)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``card.json``; :meth:`from_dict` reads it back to an equal card."""
        card: dict[str, Any] = {"name": self.name, "version": self.version, "format": self.format}
        if self.arch is not None:
            card["arch"] = self.arch
        card["labels"] = list(self.labels)
        card["extractor"] = {
            "id": self.extractor.id,
            "version": self.extractor.version,
            "config": dict(self.extractor.config),
            "weights": self.extractor.weights,
            "sha256": self.extractor.sha256,
        }
        if self.head is not None:
            card["head"] = {
                "config": dict(self.head.config),
                "weights": self.head.weights,
                "sha256": self.head.sha256,
            }
            if self.head.format is not None:
                card["head"]["format"] = self.head.format
        card["postprocess"] = dict(self.postprocess)
        card["training"] = dict(self.training)
        card["metrics"] = dict(self.metrics)
        return card

    @classmethod
    def from_dict(cls, data: Any, *, source: str = CARD_FILE) -> ModelCard:
        """Check and parse a card's JSON object. ``source`` (the card's URI) is named in errors.

        Strict: a missing required field, an unknown field or a value of the wrong type raises
        ``ModelError(reason="bad_card")`` naming the field (``extractor.sha256``) and ``source``.
        """
        top = _Fields(data, "", source)
        name = top.name("name")
        version = top.name("version")
        fmt = top.text("format")
        if fmt not in FORMATS:
            raise top.bad("format", f"is {fmt!r}; expected one of {', '.join(FORMATS)}")
        arch = top.text("arch") if fmt != "torchscript" or "arch" in top.data else None
        video = arch == VIDEO_ARCH
        if video and fmt not in BACKBONE_FORMATS:
            raise top.bad(
                "format", f"is {fmt!r}; a video-arch backbone is one of {', '.join(BACKBONE_FORMATS)}"
            )
        if fmt == "onnx" and not video:
            raise top.bad("format", f"is onnx, which needs arch {VIDEO_ARCH!r}, not {arch!r}")
        has_head = "head" in top.data or not video
        labels = top.labels("labels", allow_empty=not has_head)
        ext = _Fields(top.required("extractor"), "extractor.", source)
        extractor = ExtractorSpec(
            id=ext.name("id"),
            version=ext.name("version"),
            config=ext.mapping("config"),
            weights=ext.weights("weights"),
            sha256=ext.sha256("sha256"),
        )
        ext.reject_unknown(("id", "version", "config", "weights", "sha256"))
        if video:
            try:
                VideoSampling.from_dict(extractor.config)
            except ValueError as exc:
                raise ext.bad("config", f"does not describe a video backbone: {exc}") from None
        head = None
        if has_head:
            hd = _Fields(top.required("head"), "head.", source)
            head_format = None
            if video:
                head_format = hd.data.get("format", "state_dict")
                if head_format not in HEAD_FORMATS:
                    raise hd.bad("format", f"is {head_format!r}; expected one of {', '.join(HEAD_FORMATS)}")
            head = HeadSpec(
                config=hd.mapping("config"),
                weights=hd.weights("weights"),
                sha256=hd.sha256("sha256"),
                format=head_format,
            )
            hd.reject_unknown(
                ("config", "weights", "sha256", "format") if video else ("config", "weights", "sha256")
            )
            if extractor.weights == head.weights:
                raise hd.bad("weights", f"is {head.weights!r}, the same file as extractor.weights")
        card = cls(
            name=name,
            version=version,
            format=fmt,
            arch=arch,
            labels=labels,
            extractor=extractor,
            head=head,
            postprocess=top.mapping("postprocess", optional=True),
            training=top.mapping("training", optional=True),
            metrics=top.mapping("metrics", optional=True),
        )
        top.reject_unknown(
            ("name", "version", "format", "arch", "labels", "extractor", "head")
            + ("postprocess", "training", "metrics")
        )
        return card


class _Fields:
    """Typed access to one JSON object of a card; every failure is a one-line ``bad_card``."""

    def __init__(self, data: Any, path: str, source: str) -> None:
        self.path = path
        self.source = source
        if not isinstance(data, Mapping):
            where = f"field {path.rstrip('.')!r}" if path else "the card"
            raise ModelError(
                f"bad model card {source}: {where} must be a JSON object, not {_json_type(data)}",
                reason="bad_card",
            )
        self.data = data

    def bad(self, key: str, problem: str) -> ModelError:
        return ModelError(
            f"bad model card {self.source}: field '{self.path}{key}' {problem}", reason="bad_card"
        )

    def required(self, key: str) -> Any:
        if key not in self.data:
            raise ModelError(
                f"bad model card {self.source}: required field '{self.path}{key}' is missing",
                reason="bad_card",
            )
        return self.data[key]

    def text(self, key: str) -> str:
        value = self.required(key)
        if not isinstance(value, str) or not value:
            raise self.bad(key, f"must be a non-empty string, not {_json_type(value)} {value!r}")
        return value

    def name(self, key: str) -> str:
        value = self.text(key)
        if not _NAME.fullmatch(value):
            raise self.bad(
                key, f"is {value!r}; use letters, digits, '.', '_' and '-', starting with a letter or digit"
            )
        return value

    def sha256(self, key: str) -> str:
        value = self.text(key)
        if not _SHA256.fullmatch(value):
            raise self.bad(key, "must be 64 lowercase hex digits (a sha256)")
        return value

    def weights(self, key: str) -> str:
        value = self.text(key)
        try:
            normalize_key(value)
        except StorageError as exc:
            raise self.bad(key, f"is not a file name inside the bundle: {exc}") from exc
        if value == CARD_FILE:
            raise self.bad(key, f"cannot be {CARD_FILE}")
        return value

    def mapping(self, key: str, *, optional: bool = False) -> dict[str, Any]:
        if optional and key not in self.data:
            return {}
        value = self.required(key)
        if not isinstance(value, Mapping):
            raise self.bad(key, f"must be a JSON object, not {_json_type(value)}")
        return dict(value)

    def labels(self, key: str, *, allow_empty: bool = False) -> tuple[str, ...]:
        value = self.required(key)
        if not isinstance(value, list) or not (value or allow_empty):
            raise self.bad(key, "must be a non-empty list of class names (index i names output i)")
        for i, label in enumerate(value):
            if not isinstance(label, str) or not label:
                raise self.bad(key, f"item {i} must be a non-empty string, not {label!r}")
        seen: set[str] = set()
        for label in value:
            if label in seen:
                raise self.bad(key, f"names {label!r} twice")
            seen.add(label)
        return tuple(value)

    def reject_unknown(self, known: tuple[str, ...]) -> None:
        unknown = sorted(set(self.data) - set(known))
        if unknown:
            raise ModelError(
                f"bad model card {self.source}: unknown field '{self.path}{unknown[0]}'"
                f" (known: {', '.join(known)})",
                reason="bad_card",
            )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
