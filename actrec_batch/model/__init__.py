"""Models: identity and card (:mod:`.card`), the reference architecture (:mod:`.reference`), finding,
loading and saving bundles (:mod:`.refs`, :mod:`.weights`, :mod:`.loading`, :mod:`.saving`), and users'
own video networks (:mod:`.video_spec`, :mod:`.video`, :mod:`.video_saving`).

The card names import without torch. The loading names import torch on first use, so that reading
``actrec_batch.model.sampling`` or a card (in a DAG file, say) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actrec_batch.model.card import ExtractorSpec, HeadSpec, ModelCard, ModelError
from actrec_batch.model.video_spec import VIDEO_ARCH, VideoSampling

DEFAULT_MODEL = "reference@3"  # the shipped reference bundle, used when no --model is given

if TYPE_CHECKING:
    from actrec_batch.model.loading import (
        ARCHITECTURES,
        Architecture,
        LoadedModel,
        load_extractor,
        load_model,
    )
    from actrec_batch.model.refs import available_models, read_card, resolve_model_ref, select_device
    from actrec_batch.model.saving import new_head, save_model, save_with_head, save_with_new_head
    from actrec_batch.model.video import LoadedBackbone, load_backbone
    from actrec_batch.model.video_saving import save_video_model, save_with_video_head

# Where each lazily imported name lives (the card names are bound above).
_LAZY = {
    **dict.fromkeys(
        ("ARCHITECTURES", "Architecture", "LoadedModel", "load_extractor", "load_model"), "loading"
    ),
    **dict.fromkeys(("available_models", "read_card", "resolve_model_ref", "select_device"), "refs"),
    **dict.fromkeys(("new_head", "save_model", "save_with_head", "save_with_new_head"), "saving"),
    **dict.fromkeys(("LoadedBackbone", "load_backbone"), "video"),
    **dict.fromkeys(("save_video_model", "save_with_video_head"), "video_saving"),
}

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_MODEL",
    "VIDEO_ARCH",
    "VideoSampling",
    "LoadedBackbone",
    "load_backbone",
    "save_video_model",
    "save_with_video_head",
    "Architecture",
    "ExtractorSpec",
    "HeadSpec",
    "LoadedModel",
    "ModelCard",
    "ModelError",
    "available_models",
    "load_extractor",
    "load_model",
    "new_head",
    "read_card",
    "resolve_model_ref",
    "save_model",
    "save_with_head",
    "save_with_new_head",
    "select_device",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
