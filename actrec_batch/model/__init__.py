"""Models: identity and card (:mod:`.card`), the reference architecture (:mod:`.reference`), saving
and loading of bundles (:mod:`.loading`), and users' own video networks (:mod:`.video_spec`, :mod:`.video`).

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
        available_models,
        load_extractor,
        load_model,
        new_head,
        read_card,
        resolve_model_ref,
        save_model,
        save_with_head,
        save_with_new_head,
        select_device,
    )
    from actrec_batch.model.video import LoadedBackbone, load_backbone, save_video_model, save_with_video_head

_VIDEO_NAMES = ("LoadedBackbone", "load_backbone", "save_video_model", "save_with_video_head")

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
    if name in _VIDEO_NAMES:
        from actrec_batch.model import video

        return getattr(video, name)
    if name in __all__:  # the card names are already bound, so only loading's arrive here
        from actrec_batch.model import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
