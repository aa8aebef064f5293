"""Render MODEL_CARD.md for a model bundle from its card.json and the measured results.

Usage: python scripts/model_card.py BUNDLE_DIR [--quality bench/results/quality.json] [--speed bench/results/model.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from actrec_batch.evaluation import markdown_rows as _metrics_table
from actrec_batch.synth.timeline import POSTURES


def _minutes(seconds) -> str:
    return "?" if seconds is None else f"{float(seconds) / 60:.1f} min"


def _timings(tr: dict) -> tuple[str, float, float]:
    """Where the training time went, from an empty work dir. A run that reused rendered footage gives
    the render time measured on an empty work dir (``render_fresh_s``); a head refitted on another
    bundle's extractor (``--extractor-from``) counts that bundle's extractor training time.
    Returns the text, the total and the posture branch's share, in seconds."""
    t = tr["timings"]
    render = float(t.get("render_s") or 0)
    notes = []
    if t.get("videos_rendered") == 0 and t.get("render_fresh_s") is not None:
        render = float(t["render_fresh_s"])
        notes.append("this run reused footage rendered earlier; rendering time measured on an empty work dir")
    train = float(t.get("train_s") or 0)
    if tr.get("extractor_from"):
        train = float(tr.get("extractor_train_s") or 0)
        notes.append(
            f"stage 1 ran as `actrec train` for `{tr['extractor_from']}` (extractor sha256 "
            f"{tr['extractor_sha256'][:12]}), stage 2 as `actrec train --extractor-from` it; "
            "one `actrec train` runs both"
        )
    decode, refit = float(t.get("decode_s") or 0), float(t.get("head_refit_s") or 0)  # refit includes embed_s
    posture = float(t.get("posture_s") or 0)
    tune = max(
        0.0,
        float(t.get("total_s") or 0)
        - float(t.get("render_s") or 0)
        - decode
        - float(t.get("train_s") or 0)
        - posture
        - refit,
    )
    total = render + decode + train + posture + refit + tune
    text = (
        f"{_minutes(total)} in all from an empty work dir: rendering the footage {_minutes(render)}, decoding it "
        f"{_minutes(decode)}, stage 1 (extractor and a first head, end to end) {_minutes(train)}, "
        + (f"stage 1b (the posture branch) {_minutes(posture)}, " if posture else "")
        + f"stage 2 (embedding the training footage, refitting the head) {_minutes(refit)}, tuning the "
        f"post-processing {_minutes(tune)}"
    )
    return text + (f" ({'; '.join(notes)})" if notes else ""), total, posture


def _seeds(specs: list[dict]) -> str:
    seeds = [s["seed"] for s in specs]
    return (
        f"{min(seeds)}-{max(seeds)}"
        if seeds == list(range(min(seeds), max(seeds) + 1))
        else ", ".join(map(str, seeds))
    )


def render(bundle: Path, quality: dict | None, speed: dict | None) -> str:
    card = json.loads((bundle / "card.json").read_text())
    tr = card["training"]
    cfg = tr["config"]
    ex = card["extractor"]["config"]
    hd = card["head"]["config"]
    timing_text, total_s, posture_s = _timings(tr)
    out = [
        f"# Model card: {card['name']}@{card['version']}",
        "",
        "A compact spatio-temporal action recogniser for fixed cameras, trained only on actrec-batch's own",
        "labelled synthetic footage (`actrec synth`). It is the project's reference model: it proves the",
        "pipeline end to end and is the baseline to beat; deploy your own weights for real footage",
        "(see the README, *Recognition*).",
        "",
        "## Identity",
        f"- model: `{card['name']}@{card['version']}`, weights sha256 (extractor:head) in `card.json`",
        f"- extractor: `{card['extractor']['id']}@{card['extractor']['version']}`, head on top of it",
        f"- labels (output order): {', '.join(card['labels'])}",
        "",
        "## Architecture",
        f"- input: RGB frames resized to {ex['frame_width']}x{ex['frame_height']} in libswscale, sampled on a "
        f"{ex['sample_fps']} fps time grid; each frame also sees its per-channel difference to the previous grid frame",
        f"- extractor: 2D CNN per frame (widths {ex['widths']}, 2x2 avg+max pooling -> {ex['frame_dim']}-d),",
        f"  then dilated temporal convolutions over a clip of {ex['clip_len']} frames, pooled by mean, max and the "
        f"means of the clip's two halves (so the direction of a change is kept) -> "
        f"{ex['embed_dim'] - 2 * ex.get('postures', 0)}-d motion embedding; clips every {ex['clip_hop']} grid frames"
        + (
            f"; bidirectional: every clip is also read backwards (each frame against its successor, the "
            f"codes pooled in reverse order) with the same weights, and the embedding is both "
            f"{(ex['embed_dim'] - 2 * ex.get('postures', 0)) // 2}-d halves side by side, which swap when "
            "time runs backwards"
            if ex.get("bidirectional")
            else ""
        ),
        *(
            [
                f"- posture branch: a second, still-image CNN per frame (widths {ex['posture_widths']}, global "
                f"max+mean pooling) scores what a still frame shows ({', '.join(POSTURES[: ex['postures']])}: "
                "a standing, seated or lying figure, a walking or running stride, a raised arm); the last "
                f"{2 * ex['postures']} values of the {ex['embed_dim']}-d embedding are those "
                "scores averaged over the clip's first and second halves. The motion embedding alone kept almost "
                "nothing of a still figure's posture (a probe on reference@2's embeddings could not tell seated "
                "from standing), and posture before vs after is what tells sitting down from standing up; a "
                "runner's bent arms and long stride tell a run from a walk whatever the figure's size"
            ]
            if ex.get("postures")
            else []
        ),
        "- head: temporal convolutions over a whole video's clip embeddings -> per-clip multi-label logits"
        + (
            f"; its input adds the differences emb(t + l) - emb(t - l) for l in {hd['lags']} clips, which change "
            "sign when time runs backwards (sitting down vs standing up)"
            if hd.get("lags")
            else ""
        ),
        "- events: post-processing parameters in `card.json` (`postprocess.events`), tuned on validation footage",
    ]
    if speed:
        out += [
            f"- parameters: {speed['params_extractor']:,} (extractor) + {speed['params_head']:,} (head); "
            f"{speed['flops_per_grid_frame'] / 1e6:.1f} MFLOPs per grid frame, "
            f"{speed['flops_per_clip'] / 1e6:.1f} MFLOPs per clip",
        ]
    out += [
        "",
        "## Training data and procedure",
        f"- command: `actrec train --out DIR --steps {cfg['steps']} --seed {cfg['seed']}"
        + ("" if ex.get("postures") else " --no-postures")
        + "` on "
        f"{tr.get('threads')} CPU threads, torch {tr.get('torch')}: {timing_text}",
        f"- training footage (seeds {_seeds(cfg['train_footage'])}, "
        f"{sum(s['minutes'] for s in cfg['train_footage']):.0f} min), camera set-ups varied per video:",
        "",
        "| seed | minutes | size | fps | codec | noise |",
        "|---|---|---|---|---|---|",
    ]
    for s in cfg["train_footage"]:
        out.append(
            f"| {s['seed']} | {s['minutes']} | {s['width']}x{s['height']} | {s['fps']} | {s['codec']} | {s['noise']} |"
        )
    out += [
        "",
        f"- validation footage (tunes the event post-processing, never trains weights): seeds "
        f"{_seeds(cfg['val_footage'])}, {sum(s['minutes'] for s in cfg['val_footage']):.0f} min",
        "- augmentation: horizontal flip, random resized crop with aspect jitter, brightness/contrast/colour "
        "gain, Gaussian noise"
        + (
            f"; time reversal of {cfg['time_reverse'] * 100:.0f}% of the windows whose labels all have a "
            f"reversed twin ({', '.join(f'{a} <-> {b}' for a, b in cfg['reverse_pairs'])}; "
            f"{', '.join(cfg['reverse_self'])} stay themselves), so direction is learnt from the order of frames"
            if cfg.get("time_reverse")
            else ""
        ),
        f"- sampling: {cfg.get('event_centred', 0) * 100:.0f}% of training windows are centred on an event of a "
        "uniformly drawn class (so rare, subtle classes are seen as often as common ones), the rest are uniform",
        f"- optimiser: AdamW, one-cycle LR peak {cfg['lr']}, {cfg['batch_windows']} windows x "
        f"{cfg['window_clips']} clips per step, multi-label BCE",
        f"- stage 1: extractor and a first head end to end, {cfg['steps']} steps; stage 2: the extractor is frozen, "
        f"the training footage embedded once, and a new head with lag-difference features is fitted on "
        f"{cfg.get('head_refit_windows')} windows x {cfg.get('head_refit_clips')} clips per step for "
        f"{cfg.get('head_refit_steps')} steps (end to end, the head never learnt to tell sitting down from "
        "standing up)"
        + (
            "; stage 2 also sees the training footage mirrored (a second embedding pass)"
            if cfg.get("head_flip")
            else ""
        )
        + (
            "; and, from the bidirectional embedding, every video played backwards (halves swapped, time "
            "reversed, sit_down and stand_up swapped, no loss on labels without a reversed twin)"
            if ex.get("bidirectional")
            else ""
        ),
        *(
            [
                f"- stage 1b (between them): the posture branch alone, {cfg.get('posture_steps')} steps of 8 x 8 "
                "augmented training frames, multi-label BCE against the postures of the synth timeline "
                "(`posture_frames`: transitions are in no posture)"
            ]
            if ex.get("postures")
            else []
        ),
        "- seeds 1000-1999 are reserved for training and validation; evaluate on any other seed",
        "",
        "## Validation (seeds of the validation footage)",
        "",
        *_metrics_table({**card["metrics"]["validation"], "gt_events": "-"}),
    ]
    if quality:
        for name, res in quality.items():
            args = " ".join(res["synth_args"])
            out += [
                "",
                f"## Held-out: {name} ({res['video_s'] / 60:.0f} min)",
                "",
                "```",
                f"actrec synth --date {res['date']} {args} --file-minutes 8",
                f"actrec discover --date {res['date']}",
                f"actrec run --runner local --date {res['date']} --model {card['name']}@{card['version']}",
                f"actrec eval --date {res['date']} --model {card['name']}@{card['version']} --format json",
                "```",
                "(all four: `python bench/quality.py`)",
                "",
                *_metrics_table(res["eval"]),
            ]
            if "bar" in res:
                bar = res["bar"]
                limits = ", ".join(f"{k} >= {v}" for k, v in bar["thresholds"].items())
                out += [
                    "",
                    f"Quality bar ({limits}): "
                    + ("**met**." if bar["met"] else "**not met**: " + "; ".join(bar["failures"]) + "."),
                ]
    if speed:
        c1, c2 = speed["cpu_1_thread"], speed["cpu_2_threads"]
        out += [
            "",
            "## Speed (`python bench/run_all.py --only model`)",
            f"- CPU, 1 thread: {c1['clips_per_s']} clips/s ({c1['video_s_per_s']} video-s per s); "
            f"2 threads: {c2['clips_per_s']} clips/s ({c2['video_s_per_s']} video-s per s)",
            f"- decoding 720p30 h264 onto the grid (one process, FFmpeg default threads): {speed['decode_720p']['video_s_per_s_1_core']} video-s "
            f"per s; inference (1 thread) / decode ratio: {speed['inference_to_decode_ratio_1_core']} "
            "(above 1: decoding, not the model, is the bottleneck)",
        ]
    out += [
        "",
        "## Limits",
        "- Trained and evaluated on synthetic stick-figure footage only. Its figures say nothing about real",
        "  people or cameras; real deployments should load their own weights (TorchScript or state_dict bundles).",
        "- Fixed, static cameras; figures 1/6 to 1/2 of the frame height; up to 3 people.",
        "- Two people doing the same action at once produce one event (the head is multi-label per class, not per person).",
        *(
            [
                f"- {' and '.join(' / '.join(g) for g in card['postprocess']['events']['exclusive'])} suppress each "
                "other (`postprocess.events.exclusive`, kept because it raised validation F1): two people, one "
                "walking and one running side by side, give the more confident event only."
            ]
            if card.get("postprocess", {}).get("events", {}).get("exclusive")
            else []
        ),
        *(
            [
                f"- Training from an empty work dir takes {_minutes(total_s)} on {tr.get('threads')} CPU threads, "
                f"more than the ~30 min aimed for; the posture branch is {_minutes(posture_s)} of it. "
                "`--extractor-from` a bundle skips stage 1."
            ]
            if total_s > 30 * 60
            else []
        ),
        "- Events shorter than about 0.5 s are not reported; boundaries are quantised to the ~0.27 s clip grid",
        "  (with sub-hop interpolation).",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("bundle", type=Path)
    p.add_argument("--quality", type=Path, default=Path("bench/results/quality.json"))
    p.add_argument("--speed", type=Path, default=Path("bench/results/model.json"))
    a = p.parse_args(argv)
    quality = json.loads(a.quality.read_text()) if a.quality.is_file() else None
    speed = json.loads(a.speed.read_text()) if a.speed.is_file() else None
    (a.bundle / "MODEL_CARD.md").write_text(render(a.bundle, quality, speed))
    print(f"wrote {a.bundle / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
