"""`actrec train-head`: a new head on a backbone's clip embeddings of the user's own labelled footage.

A user with a pretrained backbone (any bundle that ``actrec run --model`` loads, or a ``video`` backbone
bundle without a head, packed from their own TorchScript or ONNX network) and a few labelled hours gets
a working model without training a backbone:

1. **Footage.** For each date, the videos that have a ``<file>.labels.json`` sidecar (docs/reference.md#object-store-layout),
   as the date's manifest lists them; discovery runs first when there is no manifest or it lacks a
   labelled video. A labelled video that discovery or decoding quarantined is left out, and the card
   says which and why.
2. **Embeddings.** :meth:`InferenceJob.embed` of the backbone over those videos: the feature cache is
   filled exactly as ``actrec run`` fills it (the same units, Ray tasks and actors, and cache keys: the
   extractor's weights and sampling), so a unit that any earlier run, rescore or train-head embedded
   is read back and only the others are decoded. This module reaches the backbone only through the
   pipeline; it never decodes a frame or runs the extractor itself.
3. **Split.** Whole videos, not clips, are held out: ``val_fraction`` of them (at least one, and at
   least one left to train on), the lowest by sha256 of their store key, so the split does not
   depend on listing order, and a video keeps its side while the set around it is unchanged.
4. **Fit.** Per-clip multi-hot targets from the sidecar events (:func:`targets_at`, as in ``actrec
   train``), then :func:`refit_head` fits a fresh head of the backbone bundle's head architecture
   (:func:`new_head`; a ``ReferenceHead`` over the embedding for a ``video`` backbone) on windows of
   consecutive clips of the training videos.
5. **Tune.** :func:`tune_postprocess` picks the event post-processing (per-class thresholds,
   smoothing, minimum duration, merge gap, exclusive labels) with the best event F1@0.5 on the
   held-out videos; that report is the card's ``metrics.validation``.
6. **Save.** :func:`save_with_head` (``save_with_video_head`` for a ``video`` backbone): the
   backbone's weights file byte for byte (same sha256, so the new model shares the backbone's feature
   cache), the new head, a ``card.json`` with ``training`` (dates, videos, split, feature counters,
   timings) and ``metrics``, and a ``MODEL_CARD.md`` that states them (:mod:`.card`).

What a user can fix (no labelled footage for a date, an unknown model, a bad ``--dates``, too little
footage) raises :class:`ConfigError`: one line naming the object and the fix (exit 2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from actrec_batch.config import Settings, logical_date_range, parse_logical_date
from actrec_batch.errors import ConfigError
from actrec_batch.training.card import MODEL_CARD_MD, model_card_markdown
from actrec_batch.training.config import TrainConfig
from actrec_batch.training.head_footage import LabelledClips, LabelledFootage, labelled_footage
from actrec_batch.training.loop import HeadSequence, refit_head
from actrec_batch.training.tune import tune_postprocess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadTrainConfig:
    """How the head is fitted: the stage 2 of ``actrec train`` (:class:`TrainConfig`'s ``head_refit_*``)."""

    seed: int = 0
    val_fraction: float = 0.25  # share of the labelled videos held out to tune the post-processing
    steps: int = 3000
    windows: int = 16  # windows per step
    window_clips: int = 32  # consecutive clips per window
    lr: float = 3e-3
    weight_decay: float = 1e-4

    def train_config(self) -> TrainConfig:
        """The :class:`TrainConfig` whose stage 2 fits this head (see ``_AS_STAGE_2``)."""
        return TrainConfig(**{theirs: getattr(self, ours) for ours, theirs in _AS_STAGE_2.items()})


# HeadTrainConfig field -> the TrainConfig field of stage 2 it sets (the others keep their defaults)
_AS_STAGE_2 = {
    "seed": "seed",
    "steps": "head_refit_steps",
    "windows": "head_refit_windows",
    "window_clips": "head_refit_clips",
    "lr": "lr",
    "weight_decay": "weight_decay",
}


# ------------------------------------------------------------------------------------- arguments


def parse_dates(text: str, *, setting: str = "--dates") -> list[dt.date]:
    """The dates of ``D1..Dn`` (inclusive), ``D1,D2,...`` or a mix (``D1..D3,D7``), sorted and unique.
    Raises ConfigError naming ``setting`` and the fix."""
    dates: set[dt.date] = set()
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            raise ConfigError(
                f"bad setting {setting} = {text!r}: an empty item. Fix: write D1..Dn or D1,D2 (YYYY-MM-DD)"
            )
        first, sep, last = part.partition("..")
        if sep:
            dates.update(logical_date_range(first, last, settings=(setting, setting)))
        else:
            dates.add(parse_logical_date(part, setting=setting))
    return sorted(dates)


def default_name(out_dir: Path) -> str:
    """A model name from the bundle directory's name (``models/lobby`` -> ``lobby``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(out_dir).resolve().name).strip("-._")
    return name or "head"


# ------------------------------------------------------------------------------------ split, fit


def split_videos(
    videos: list[LabelledClips], val_fraction: float
) -> tuple[list[LabelledClips], list[LabelledClips]]:
    """(training, held-out) videos: the ``ceil(val_fraction * n)`` lowest by sha256 of their key are
    held out, at least one, leaving at least one. Raises ConfigError with fewer than two videos."""
    if len(videos) < 2:
        raise ConfigError(
            f"train-head needs at least 2 labelled videos (one to fit on, one held out to tune and measure), "
            f"found {len(videos)}. Fix: label more footage or add dates to --dates"
        )
    ranked = sorted(videos, key=lambda v: hashlib.sha256(v.key.encode()).hexdigest())
    count = min(len(videos) - 1, max(1, math.ceil(val_fraction * len(videos))))
    held = {v.key for v in ranked[:count]}
    return [v for v in videos if v.key not in held], [v for v in videos if v.key in held]


def choose_labels(base_labels: tuple[str, ...], videos: list[LabelledClips]) -> list[str]:
    """The labels of the sidecars: those the backbone's own label map has, in its order, then the
    others, sorted."""
    seen = {e["label"] for v in videos for e in v.events}
    return [lb for lb in base_labels if lb in seen] + sorted(seen - set(base_labels))


def fit_head(
    base_card,
    train: list[LabelledClips],
    labels: list[str],
    cfg: HeadTrainConfig,
    *,
    progress: bool = False,
):
    """A fresh head of ``base_card``'s head architecture, fitted on ``train``'s embeddings."""
    import torch

    from actrec_batch.model import new_head
    from actrec_batch.model.sampling import targets_at

    sequences = []
    for v in train:
        y = targets_at(v.centers_s, v.hop_s, v.events, labels)
        sequences.append(HeadSequence(v.embeddings, y, np.ones_like(y)))
    threads = torch.get_num_threads()
    # The head is small: on a shared 2-core machine one thread took 0.02 s a step, two 0.12 s.
    torch.set_num_threads(1)
    try:
        return refit_head(
            sequences,
            labels,
            cfg.train_config(),
            progress=progress,
            head=new_head(base_card, labels, seed=cfg.seed),
        )
    except ValueError as exc:  # no video longer than a window
        raise ConfigError(
            f"train-head: {exc} ({cfg.window_clips} clips = {cfg.window_clips * train[0].hop_s:.1f} s). "
            "Fix: label longer videos, or lower --window-clips"
        ) from None
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------ run


def train_head(
    settings: Settings,
    *,
    model_ref: str,
    dates: list[dt.date],
    out_dir: Path,
    name: str | None = None,
    version: str = "1",
    cfg: HeadTrainConfig | None = None,
    progress: bool = False,
):
    """The whole ``actrec train-head`` (steps 1-6 of the module docstring). Returns (card, report,
    footage): the saved ModelCard, the held-out EvalReport, and the LabelledFootage it used."""
    from actrec_batch.model import save_with_head
    from actrec_batch.model.features import head_scores

    cfg = cfg or HeadTrainConfig()
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(
            f"bad setting --val-fraction = {cfg.val_fraction:g}: use a share between 0 and 1, e.g. 0.25"
        )
    t0 = time.perf_counter()
    base = _backbone(model_ref, settings)
    footage = labelled_footage(settings, model_ref, dates, progress=progress)
    t_embed = time.perf_counter()
    train, val = split_videos(footage.videos, cfg.val_fraction)
    labels = choose_labels(base.card.labels, footage.videos)
    head = fit_head(base.card, train, labels, cfg, progress=progress)
    t_fit = time.perf_counter()
    scored = [(v, head_scores(head, v.embeddings, "cpu")) for v in val]
    params, report = tune_postprocess(scored, labels)
    t_tune = time.perf_counter()
    timings = {
        "embed_s": round(t_embed - t0, 1),
        "fit_s": round(t_fit - t_embed, 1),
        "tune_s": round(t_tune - t_fit, 1),
        "total_s": round(time.perf_counter() - t0, 1),
    }
    validation = report.to_json()
    card = save_with_head(
        base,
        Path(out_dir),
        head,
        name=name or default_name(Path(out_dir)),
        version=version,
        labels=labels,
        postprocess={"events": params.to_dict()},
        training=_training_record(base.card, dates, cfg, footage, (train, val), labels, timings),
        metrics={"validation": _held_out_metrics(validation)},
    )
    (Path(out_dir) / MODEL_CARD_MD).write_text(model_card_markdown(card), encoding="utf-8")
    log.info("saved %s to %s: held-out F1@0.5 %.3f", card.model_id, out_dir, validation["f1"])
    return card, report, footage


def _training_record(
    base_card,
    dates: list[dt.date],
    cfg: HeadTrainConfig,
    footage: LabelledFootage,
    split: tuple[list[LabelledClips], list[LabelledClips]],
    labels: list[str],
    timings: dict[str, float],
) -> dict:
    """The card's ``training``: the backbone, dates, config, split, footage, events, features, timings."""
    import torch

    train, val = split
    return {
        "command": "train-head",
        "base_model": base_card.model_id,
        "base_weights_sha256": base_card.weights_sha256,
        "dates": [d.isoformat() for d in dates],
        "config": asdict(cfg),
        "videos": {
            "train": [v.key for v in train],
            "validation": [v.key for v in val],
            "skipped": footage.skipped,
        },
        "footage_s": {
            "train": round(sum(v.duration_s for v in train), 3),
            "validation": round(sum(v.duration_s for v in val), 3),
        },
        "events": {"train": _event_counts(train, labels), "validation": _event_counts(val, labels)},
        "features": {**footage.counters, "ray_used": footage.ray_used},
        "timings": timings,
        "torch": torch.__version__,
    }


def _held_out_metrics(validation: dict) -> dict:
    """The card's ``metrics.validation`` from the held-out EvalReport's JSON."""
    return {
        **{k: validation[k] for k in ("precision", "recall", "f1", "per_class", "at_tiou")},
        "median_boundary_error_s": validation["median_boundary_error_s"],
        "gt_events": validation["gt_events"],
        "videos": validation["videos"],
    }


def _backbone(model_ref: str, settings: Settings):
    """The backbone bundle ``model_ref``, checked to take a new head. Raises ConfigError naming it."""
    from actrec_batch.model import available_models, load_extractor, new_head
    from actrec_batch.model.card import ModelError

    try:  # a video backbone bundle without a head loads too
        base = load_extractor(model_ref, store_uri=settings.store, device="cpu")
    except ModelError as exc:
        if exc.reason != "model_not_found":
            raise
        known = ", ".join(available_models(settings.store))
        raise ConfigError(
            f"bad setting --model = {model_ref!r}: {exc}. Fix: name a bundle directory or one of: {known}"
        ) from None
    try:  # a bundle whose head cannot be rebuilt fails now, not after the embedding
        new_head(base.card, base.card.labels or ("any",))  # a backbone bundle has no labels yet
    except ModelError as exc:
        raise ConfigError(
            f"--model {model_ref}: {exc}. Fix: use a state_dict or video bundle (see the README)"
        ) from None
    return base


def _event_counts(videos: list[LabelledClips], labels: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(labels, 0)
    for v in videos:
        for e in v.events:
            counts[e["label"]] = counts.get(e["label"], 0) + 1
    return counts
