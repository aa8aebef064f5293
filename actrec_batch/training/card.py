"""``MODEL_CARD.md`` of a bundle written by ``actrec train-head`` (:mod:`actrec_batch.training.head`):
what its head was fitted on and the figures measured on its held-out videos, from its ``card.json``."""

from __future__ import annotations

import datetime as dt
from typing import Any

MODEL_CARD_MD = "MODEL_CARD.md"


def model_card_markdown(card) -> str:
    """``MODEL_CARD.md`` of a bundle written by ``train_head``: what it was fitted on and the
    figures measured on its held-out videos."""
    from actrec_batch.evaluation import markdown_rows

    tr, val = card.training, card.metrics["validation"]
    cfg = tr["config"]
    videos, footage, feats = tr["videos"], tr["footage_s"], tr["features"]
    lines = [
        f"# Model card: {card.model_id}",
        "",
        f"A head fitted by `actrec train-head` on the clip embeddings of `{tr['base_model']}`'s backbone "
        "(extractor `" + card.extractor_id + "`, weights copied byte for byte, so it shares that model's "
        "feature cache).",
        "",
        "## Identity",
        f"- model: `{card.model_id}`, weights sha256 (extractor:head) `{card.weights_sha256[:12]}…`",
        f"- labels (output order): {', '.join(card.labels)}",
        f"- head: {card.arch} head, config {_compact(card.head.config)}",
        "",
        "## Training data",
        f"- dates: {_date_ranges(tr['dates'])}",
        f"- fitted on {len(videos['train'])} videos ({footage['train'] / 60:.1f} min), "
        f"held out {len(videos['validation'])} videos ({footage['validation'] / 60:.1f} min) to tune the "
        f"event post-processing and measure the figures below (videos split by a hash of their key, "
        f"{cfg['val_fraction']:g} held out)",
        "- labelled events (train / held out): "
        + ", ".join(
            f"{lb} {tr['events']['train'].get(lb, 0)}/{tr['events']['validation'].get(lb, 0)}"
            for lb in card.labels
        ),
        f"- features: {feats['units_total']} units, {feats['cache_hits'] + feats['units_skipped_checkpoint']} "
        f"read from the feature cache, {feats['units_computed']} computed ({feats['frames_decoded']} frames decoded)",
        *(
            [
                f"- left out: {len(videos['skipped'])} labelled videos: "
                + "; ".join(f"{s['key']} [{s['reason']}]" for s in videos["skipped"])
            ]
            if videos["skipped"]
            else []
        ),
        f"- fit: {cfg['steps']} steps of {cfg['windows']} windows x {cfg['window_clips']} clips, AdamW "
        f"(lr {cfg['lr']:g}, weight decay {cfg['weight_decay']:g}), multi-label BCE, seed {cfg['seed']}; "
        f"{tr['timings']['total_s']:.0f} s in all ({tr['timings']['embed_s']:.0f} s filling and reading "
        f"the feature cache)",
        "- event post-processing: `card.json` `postprocess.events`, tuned on the held-out videos",
        "",
        f"## Held-out videos ({val['videos']} videos, {val['gt_events']} events)",
        "",
        *markdown_rows(val),
        "",
        "These figures come from the videos that tuned the post-processing, so they lean optimistic; "
        "score footage the head never saw with `actrec run` and `actrec eval` for an unbiased figure.",
        "",
    ]
    return "\n".join(lines)


def _date_ranges(dates: list[str]) -> str:
    """``2026-09-01..2026-09-03, 2026-09-07`` for those four ISO dates (sorted)."""
    runs: list[list[dt.date]] = []
    for day in sorted(dt.date.fromisoformat(d) for d in dates):
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(f"{r[0]}..{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)


def _compact(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())
