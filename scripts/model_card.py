"""Render MODEL_CARD.md for a model bundle from its card.json and the measured results.

Usage: python scripts/model_card.py BUNDLE_DIR [--quality bench/results/quality.json] [--speed bench/results/model.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _metrics_table(report: dict) -> list[str]:
    lines = ["| | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for t in ("0.3", "0.5", "0.7"):
        m = report["at_tiou"][t]
        lines.append(
            f"| all, tIoU {t} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {report['gt_events']} |"
        )
    for label, m in report["per_class"].items():
        lines.append(
            f"| {label}, tIoU 0.5 | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        )
    mb = report.get("median_boundary_error_s")
    lines.append("")
    lines.append(f"Median boundary error (matched events, tIoU 0.5): {mb:.2f} s." if mb is not None else "")
    return lines


def render(bundle: Path, quality: dict | None, speed: dict | None) -> str:
    card = json.loads((bundle / "card.json").read_text())
    tr = card["training"]
    cfg = tr["config"]
    ex = card["extractor"]["config"]
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
        f"{ex['sample_fps']} fps time grid; each frame also sees its difference to the previous grid frame",
        f"- extractor: 2D CNN per frame (widths {ex['widths']}, 2x2 avg+max pooling -> {ex['frame_dim']}-d),",
        f"  then dilated temporal convolutions over a clip of {ex['clip_len']} frames -> {ex['embed_dim']}-d "
        f"embedding; clips every {ex['clip_hop']} grid frames",
        "- head: temporal convolutions over a whole video's clip embeddings -> per-clip multi-label logits",
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
        f"- command: `actrec train --out DIR --steps {cfg['steps']} --seed {cfg['seed']}` "
        f"({tr['timings'].get('total_s', '?')} s of training + tuning on {tr.get('threads')} CPU threads, "
        f"torch {tr.get('torch')}; rendering the footage first adds about 4 min on 2 cores)",
        "- training footage (seeds 1001-1008, 60 min), each video a different camera set-up:",
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
        "- validation footage (tunes the event post-processing, never trains weights): seeds "
        + ", ".join(str(s["seed"]) for s in cfg["val_footage"]),
        "- augmentation: horizontal flip, random resized crop with aspect jitter, brightness/contrast/colour "
        "gain, Gaussian noise",
        f"- sampling: {cfg.get('event_centred', 0) * 100:.0f}% of training windows are centred on an event of a "
        "uniformly drawn class (so rare, subtle classes are seen as often as common ones), the rest are uniform",
        f"- optimiser: AdamW, one-cycle LR peak {cfg['lr']}, {cfg['batch_windows']} windows x "
        f"{cfg['window_clips']} clips per step, multi-label BCE",
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
                f"actrec infer-local --date {res['date']} --model {card['name']}@{card['version']}",
                f"actrec eval --date {res['date']} --model {card['name']}@{card['version']} --format json",
                "```",
                "(all four: `python bench/quality.py`)",
                "",
                *_metrics_table(res["eval"]),
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
