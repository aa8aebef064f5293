"""`actrec train`: the reference model, trained reproducibly on CPU from labelled synthetic footage.

Flow: render training + validation footage (:mod:`.footage`) -> decode each video once onto the
model's sampling grid (:mod:`.data`) -> stage 1, the extractor + head end to end on augmented
windows, or a saved bundle's extractor (:mod:`.checkpoints`) -> stage 1b, the posture branch ->
stage 2, a fresh head on the frozen extractor's embeddings (:mod:`.loop`) -> score the validation
videos and tune the event post-processing on them (:mod:`.tune`) -> save a model bundle
(safetensors + card.json).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from actrec_batch.training.checkpoints import ReusedExtractor, reuse_extractor, with_config
from actrec_batch.training.config import TrainConfig, config_dict
from actrec_batch.training.data import VideoArrays, load_videos
from actrec_batch.training.footage import VAL_OFFSET, missing_footage, render_footage
from actrec_batch.training.loop import (
    head_sequences,
    refit_head,
    score_arrays,
    train_model,
    train_postures,
    video_embeddings,
)
from actrec_batch.training.tune import tune_postprocess

log = logging.getLogger(__name__)

_VALIDATION_KEYS = ("precision", "recall", "f1", "per_class", "at_tiou", "median_boundary_error_s")


@dataclass
class _Run:
    """What one `actrec train` has so far: its clock, the seconds of each step, and the footage."""

    cfg: TrainConfig
    labels: list[str]
    t0: float = field(default_factory=time.perf_counter)
    timings: dict = field(default_factory=dict)
    train: list[VideoArrays] = field(default_factory=list)
    val: list[VideoArrays] = field(default_factory=list)

    def since(self, t: float) -> float:
        return round(time.perf_counter() - t, 1)


def run_training(
    out_dir: Path,
    work_dir: Path,
    cfg: TrainConfig,
    *,
    name: str = "reference",
    version: str = "1",
    progress: bool = True,
    extractor_from: str | None = None,
):
    """The whole `actrec train`: footage -> decode -> train -> refit the head -> tune on validation ->
    model bundle.

    Returns the saved ModelCard. Rendered footage in ``work_dir`` is reused when present. With
    ``extractor_from`` (a model reference), stage 1 is skipped: that bundle's extractor is kept
    (its identity too) and only a new head is fitted on its embeddings.
    """
    from actrec_batch.model import save_model
    from actrec_batch.synth import LABELS

    torch.set_num_threads(os.cpu_count() or 1)
    run = _Run(cfg, list(LABELS))
    _prepare_footage(run, work_dir / "store")
    t1 = time.perf_counter()
    if extractor_from:
        stage1, history = reuse_extractor(extractor_from, cfg.extractor, version), []
    else:
        motion, _, history = train_model(run.train, run.labels, cfg, progress=progress)
        stage1 = ReusedExtractor(motion, False, "reference-extractor", version)
    run.timings["train_s"] = run.since(t1)
    extractor = _with_postures(run, stage1, progress)
    head = _fit_head(run, extractor, progress)
    scored = [(v, score_arrays(extractor, head, v)) for v in run.val]
    params, report = tune_postprocess(scored, run.labels)
    run.timings["total_s"] = run.since(run.t0)
    val_json = report.to_json()
    card = save_model(
        out_dir,
        name=name,
        version=version,
        labels=run.labels,
        extractor=extractor,
        head=head,
        extractor_id=stage1.extractor_id,
        extractor_version=stage1.extractor_version,
        postprocess={"events": params.to_dict()},
        training={
            "config": config_dict(cfg),
            "timings": run.timings,
            "final_loss": float(np.mean(history[-50:])) if history else None,
            **stage1.stage1,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        metrics={"validation": {k: val_json[k] for k in _VALIDATION_KEYS}},
    )
    log.info("saved %s to %s: validation F1@0.5 %.3f", card.model_id, out_dir, val_json["f1"])
    return card, report


def _prepare_footage(run: _Run, root: Path) -> None:
    """Render what is missing of the training and validation footage in the local store ``root``, and
    decode it all into ``run``."""
    cfg = run.cfg
    run.timings["videos_rendered"] = len(missing_footage(root, cfg.train_footage)) + len(
        missing_footage(root, cfg.val_footage, offset=VAL_OFFSET)
    )
    train_keys = render_footage(root, cfg.train_footage)
    val_keys = render_footage(root, cfg.val_footage, offset=VAL_OFFSET)
    run.timings["render_s"] = run.since(run.t0)
    log.info(
        "footage ready: %d train, %d validation videos (%.0f s)",
        len(train_keys),
        len(val_keys),
        run.timings["render_s"],
    )
    run.train, run.val = load_videos(root, [train_keys, val_keys], cfg.extractor, run.labels)
    run.timings["decode_s"] = round(time.perf_counter() - run.t0 - run.timings["render_s"], 1)


def _with_postures(run: _Run, stage1: ReusedExtractor, progress: bool):
    """Stage 1b: the extractor of ``run.cfg``, with a posture branch trained now unless stage 1's is kept."""
    posture = None
    if run.cfg.extractor.postures and not stage1.keep_posture:
        t = time.perf_counter()
        posture = train_postures(run.train, run.cfg, progress=progress)
        run.timings["posture_s"] = run.since(t)
    return with_config(stage1.motion, run.cfg.extractor, posture)


def _fit_head(run: _Run, extractor, progress: bool):
    """Stage 2: a fresh head on the frozen ``extractor``'s embeddings of the training footage."""
    cfg, t = run.cfg, time.perf_counter()
    sequences = head_sequences(video_embeddings(extractor, run.train), run.train, run.labels, cfg)
    if cfg.head_flip:
        mirrored = video_embeddings(extractor, run.train, mirror=True)
        sequences += head_sequences(mirrored, run.train, run.labels, cfg)
    run.timings["embed_s"] = run.since(t)
    head = refit_head(sequences, run.labels, cfg, progress=progress)
    run.timings["head_refit_s"] = run.since(t)
    return head
