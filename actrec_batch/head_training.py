"""`actrec train-head`: a new head on a backbone's clip embeddings of the user's own labelled footage.

A user with a pretrained backbone (any bundle that ``actrec run --model`` loads, or a ``video`` backbone
bundle without a head, packed from their own TorchScript or ONNX network) and a few labelled hours gets
a working model without training a backbone:

1. **Footage.** For each date, the videos that have a ``<file>.labels.json`` sidecar (CONTRACTS.md),
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
   timings) and ``metrics``, and a ``MODEL_CARD.md`` that states them (:mod:`.head_card`).

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from actrec_batch import layout
from actrec_batch.config import Settings, logical_date_range, parse_logical_date
from actrec_batch.errors import ActrecError, ConfigError, StorageError
from actrec_batch.head_card import MODEL_CARD_MD, model_card_markdown
from actrec_batch.storage import ObjectStore, open_store

log = logging.getLogger(__name__)

_COUNTERS = ("units_total", "units_skipped_checkpoint", "cache_hits", "units_computed", "frames_decoded")


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

    def train_config(self):
        from actrec_batch.training import TrainConfig

        return replace(
            TrainConfig(),
            seed=self.seed,
            head_refit_steps=self.steps,
            head_refit_windows=self.windows,
            head_refit_clips=self.window_clips,
            lr=self.lr,
            weight_decay=self.weight_decay,
        )


@dataclass
class LabelledClips:
    """One labelled video as the head sees it: its clips (centres and the backbone's embeddings,
    from the feature cache) and its ground-truth events. Times are seconds from the first frame."""

    key: str  # store key, footage/date=D/camera=C/<file>
    date: dt.date
    duration_s: float
    events: list[dict]  # the sidecar's {"label", "start_s", "end_s"}
    centers_s: np.ndarray  # [N]
    hop_s: float
    embeddings: np.ndarray  # [N, D] float32


@dataclass
class LabelledFootage:
    """The labelled videos of some dates with their embeddings, and what filling the cache took."""

    videos: list[LabelledClips] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"key", "reason", "detail"}
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    ray_used: bool = False


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


# ------------------------------------------------------------------------------------- footage


def labelled_footage(
    settings: Settings,
    model_ref: str,
    dates: list[dt.date],
    *,
    store: ObjectStore | None = None,
    progress: bool = False,
) -> LabelledFootage:
    """The labelled videos of ``dates`` with the embeddings of ``model_ref``'s backbone (steps 1-2).

    Raises ConfigError for a date without labelled footage; ActrecError ``bad_ground_truth`` for a
    malformed sidecar.
    """
    from actrec_batch.pipeline.ray_backend import connect, disconnect

    store = store or open_store(settings.store)
    footage = LabelledFootage()
    labelled = {date: _labelled_keys(store, date) for date in dates}  # every date checked before any work
    kept_ray = False
    try:
        for n, (date, keys) in enumerate(labelled.items(), 1):
            _embed_date(settings, model_ref, store, date, keys, footage, progress)
            if footage.ray_used and not kept_ray and n < len(labelled):
                # A job starts and stops its own Ray (~10 s) unless one is up: once a date had to
                # compute, keep one for the dates left. A fully cached set never starts Ray.
                kept_ray = connect(settings)
    finally:
        disconnect(kept_ray)
    return footage


def _embed_date(
    settings: Settings,
    model_ref: str,
    store: ObjectStore,
    date: dt.date,
    keys: list[str],
    footage: LabelledFootage,
    progress: bool,
) -> None:
    """Add the labelled videos ``keys`` of ``date`` to ``footage``, with their embeddings."""
    from actrec_batch.evaluation import load_truth
    from actrec_batch.pipeline.job import InferenceJob, RunSpec, clip_hop_s
    from actrec_batch.pipeline.scoring import join_segments

    rows = _manifested(settings, store, date, keys)
    truth: dict[str, list[dict]] = {k: [] for k in keys}
    for g in load_truth(store, date, videos=keys):
        truth[g.video].append({"label": g.label, "start_s": g.start_s, "end_s": g.end_s})
    for key in sorted(set(keys) - {r["key"] for r in rows}):
        footage.skipped.append({"key": key, "reason": "not_manifested", "detail": "discovery quarantined it"})
    if not rows:
        return
    spec = RunSpec(date, model_ref=model_ref, video_keys=tuple(keys))
    job = InferenceJob(settings, spec, store=store, progress=progress)
    features = job.embed(head=False)
    for name in _COUNTERS:
        footage.counters[name] += int(getattr(job.result, name))
    footage.ray_used |= job.result.ray_used
    for video_id, failure in job.failed.items():
        footage.skipped.append(
            {"key": job.videos[video_id]["key"], "reason": failure.reason, "detail": failure.detail}
        )
    hop_s = clip_hop_s(job.model.card)
    for video_id, parts in sorted(features.items(), key=lambda kv: job.videos[kv[0]]["key"]):
        row = job.videos[video_id]
        parts = [p for p in parts if len(p.clips)]
        if not parts:
            footage.skipped.append(
                {"key": row["key"], "reason": "too_short", "detail": "shorter than one clip"}
            )
            continue
        centers, embeddings = join_segments(parts)
        footage.videos.append(
            LabelledClips(
                row["key"],
                date,
                float(row["duration_s"]),
                truth[row["key"]],
                centers,
                hop_s,
                np.ascontiguousarray(embeddings, dtype=np.float32),
            )
        )


def _labelled_keys(store: ObjectStore, date: dt.date) -> list[str]:
    from actrec_batch.evaluation import labelled_videos

    try:
        return labelled_videos(store, date)
    except ActrecError as exc:
        if exc.reason != "no_ground_truth":
            raise
        raise ConfigError(
            f"no labelled footage for {date}: no *{layout.SIDECAR_SUFFIX} sidecar under "
            f"{store.uri(layout.footage_prefix(date))}. Fix: write a sidecar beside each labelled video "
            f"(see the README, 'Train a head on your own labels'), or leave {date} out of --dates"
        ) from None


def _manifested(settings: Settings, store: ObjectStore, date: dt.date, keys: list[str]) -> list[dict]:
    """The manifest rows of ``keys``; discovery runs first when the manifest is missing or lacks one."""
    from actrec_batch.manifest import read_manifest
    from actrec_batch.pipeline.nightly import discover_stage

    def rows() -> list[dict] | None:
        try:
            return read_manifest(store, date).to_pylist()
        except StorageError as exc:
            if exc.reason != "not_found":
                raise
            return None

    manifest = rows()
    if manifest is None or not set(keys) <= {r["key"] for r in manifest}:
        log.info("train-head: discovering %s (its manifest is missing or lacks labelled videos)", date)
        discover_stage(settings, date, store=store)
        manifest = rows() or []
    wanted = set(keys)
    return [r for r in manifest if r["key"] in wanted]


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
    from actrec_batch.training import HeadSequence, refit_head

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
    import torch

    from actrec_batch.model import new_head, save_with_head
    from actrec_batch.model.card import ModelError
    from actrec_batch.model.features import head_scores
    from actrec_batch.training import tune_postprocess

    cfg = cfg or HeadTrainConfig()
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(
            f"bad setting --val-fraction = {cfg.val_fraction:g}: use a share between 0 and 1, e.g. 0.25"
        )
    t0 = time.perf_counter()
    base = _backbone(model_ref, settings)
    try:  # a bundle whose head cannot be rebuilt fails now, not after the embedding
        new_head(base.card, base.card.labels or ("any",))  # a backbone bundle has no labels yet
    except ModelError as exc:
        raise ConfigError(
            f"--model {model_ref}: {exc}. Fix: use a state_dict or video bundle (see the README)"
        ) from None
    footage = labelled_footage(settings, model_ref, dates, progress=progress)
    t_embed = time.perf_counter()
    train, val = split_videos(footage.videos, cfg.val_fraction)
    labels = choose_labels(base.card.labels, footage.videos)
    head = fit_head(base.card, train, labels, cfg, progress=progress)
    t_fit = time.perf_counter()
    scored = [(v, head_scores(head, v.embeddings, "cpu")) for v in val]
    params, report = tune_postprocess(scored, labels)
    t_tune = time.perf_counter()
    validation = report.to_json()
    training = {
        "command": "train-head",
        "base_model": base.card.model_id,
        "base_weights_sha256": base.card.weights_sha256,
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
        "timings": {
            "embed_s": round(t_embed - t0, 1),
            "fit_s": round(t_fit - t_embed, 1),
            "tune_s": round(t_tune - t_fit, 1),
            "total_s": round(time.perf_counter() - t0, 1),
        },
        "torch": torch.__version__,
    }
    metrics = {
        "validation": {
            **{k: validation[k] for k in ("precision", "recall", "f1", "per_class", "at_tiou")},
            "median_boundary_error_s": validation["median_boundary_error_s"],
            "gt_events": validation["gt_events"],
            "videos": validation["videos"],
        }
    }
    card = save_with_head(
        base,
        Path(out_dir),
        head,
        name=name or default_name(Path(out_dir)),
        version=version,
        labels=labels,
        postprocess={"events": params.to_dict()},
        training=training,
        metrics=metrics,
    )
    (Path(out_dir) / MODEL_CARD_MD).write_text(model_card_markdown(card), encoding="utf-8")
    log.info("saved %s to %s: held-out F1@0.5 %.3f", card.model_id, out_dir, validation["f1"])
    return card, report, footage


def _backbone(model_ref: str, settings: Settings):
    from actrec_batch.model import available_models, load_extractor
    from actrec_batch.model.card import ModelError

    try:  # a video backbone bundle without a head loads too
        return load_extractor(model_ref, store_uri=settings.store, device="cpu")
    except ModelError as exc:
        if exc.reason != "model_not_found":
            raise
        known = ", ".join(available_models(settings.store))
        raise ConfigError(
            f"bad setting --model = {model_ref!r}: {exc}. Fix: name a bundle directory or one of: {known}"
        ) from None


def _event_counts(videos: list[LabelledClips], labels: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(labels, 0)
    for v in videos:
        for e in v.events:
            counts[e["label"]] = counts.get(e["label"], 0) + 1
    return counts
