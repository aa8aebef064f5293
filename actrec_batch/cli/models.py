"""``actrec train``, ``actrec train-head`` and ``actrec model pack``: models in, bundles out."""

from __future__ import annotations

import argparse
from pathlib import Path

from actrec_batch.cli.base import add_json, command, positive, print_json
from actrec_batch.config import Settings
from actrec_batch.errors import ConfigError

_SEED = positive(int, 0, 2**32 - 1, "seed")
_STEPS = positive(int, 1, 10**6, "step count")


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from actrec_batch.training import TrainConfig, bidirectional_config, run_training

    out = Path(args.out)
    work = Path(args.workdir) if args.workdir else out.parent / f".{out.name}-work"
    cfg = TrainConfig(seed=args.seed, steps=args.steps)
    if args.no_postures:
        cfg = replace(cfg, extractor=cfg.extractor.with_postures(0))
    if args.bidirectional:
        cfg = bidirectional_config(cfg)
    card, report = run_training(
        out,
        work,
        cfg,
        name=args.name,
        version=args.version,
        progress=not args.quiet,
        extractor_from=args.extractor_from,
    )
    summary = {
        "model": card.model_id,
        "weights_sha256": card.weights_sha256,
        "out": str(out),
        "validation": report.to_json(),
        "timings": card.training.get("timings", {}),
    }
    if args.json:
        print_json(summary)
    else:
        print(report.to_table())
        print(
            f"saved {card.model_id} ({card.weights_sha256[:12]}) to {out} in {summary['timings'].get('total_s')} s"
        )
    return 0


def cmd_train_head(args: argparse.Namespace, settings: Settings) -> int:
    from actrec_batch.training import HeadTrainConfig, parse_dates, train_head

    dates = parse_dates(args.dates)
    cfg = HeadTrainConfig(
        seed=args.seed, val_fraction=args.val_fraction, steps=args.steps, window_clips=args.window_clips
    )
    card, report, footage = train_head(
        settings,
        model_ref=args.model,
        dates=dates,
        out_dir=Path(args.out),
        name=args.name,
        version=args.version,
        cfg=cfg,
        progress=not (args.json or args.quiet),
    )
    summary = {
        "model": card.model_id,
        "base_model": card.training["base_model"],
        "weights_sha256": card.weights_sha256,
        "out": args.out,
        "labels": list(card.labels),
        "videos_train": len(card.training["videos"]["train"]),
        "videos_validation": len(card.training["videos"]["validation"]),
        "videos_skipped": card.training["videos"]["skipped"],
        **card.training["features"],
        "validation": card.metrics["validation"],
        "timings": card.training["timings"],
    }
    if args.json:
        print_json(summary)
    else:
        print(report.to_table())
        print(
            f"saved {card.model_id} ({card.weights_sha256[:12]}) to {args.out}: held-out F1@0.5 "
            f"{report.f1:.3f} on {summary['videos_validation']} videos; {footage.counters['frames_decoded']} "
            f"frames decoded, {footage.counters['units_computed']} of {footage.counters['units_total']} "
            f"units computed, in {summary['timings']['total_s']} s"
        )
    return 0


def cmd_model_pack(args: argparse.Namespace, settings: Settings) -> int:
    """``actrec model pack``: a ``video`` bundle from a user's exported backbone (and head)."""
    if (args.sample_fps is None) == (args.frame_stride is None):
        raise ConfigError("give one of --sample-fps F or --frame-stride K (with --source-fps, default 30)")
    sample_fps = args.sample_fps or args.source_fps / args.frame_stride
    width, height = _size_flag("--size", args.size)
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else []
    if bool(labels) != bool(args.head):
        raise ConfigError(
            "--head and --labels go together: a head needs its label map, and labels need a head"
        )
    sampling = {
        "sample_fps": sample_fps,
        "clip_len": args.clip_len,
        "clip_hop": args.clip_hop,
        "frame_width": width,
        "frame_height": height,
        "mean": _floats_flag("--mean", args.mean),
        "std": _floats_flag("--std", args.std),
        "resize": args.resize,
        "pixel_range": args.pixel_range,
        "channel_order": args.channel_order,
    }
    if args.embed_dim:
        sampling["embed_dim"] = args.embed_dim
    if args.resize == "short_side_crop":
        sampling["short_side"] = args.short_side or max(width, height) * 8 // 7
    for flag, path in (("--backbone", args.backbone), ("--head", args.head)):
        if path and not Path(path).is_file():
            raise ConfigError(f"bad {flag} {path!r}: no such file")
    from actrec_batch.model.video_saving import save_video_model

    card = save_video_model(
        Path(args.out),
        name=args.name,
        version=args.version,
        backbone=Path(args.backbone),
        backbone_format=args.format,
        sampling=sampling,
        labels=labels,
        head=Path(args.head) if args.head else None,
        extractor_id=args.extractor_id,
    )
    if args.json:
        print_json(card.to_dict())
    else:
        what = (
            f"{len(card.labels)} labels" if card.head else "no head (a backbone bundle for actrec train-head)"
        )
        print(f"packed {card.model_id} ({card.format} backbone, {what}) in {Path(args.out).resolve()}")
    return 0


def _size_flag(flag: str, raw: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in raw.lower().split("x"))
        if width > 0 and height > 0:
            return width, height
    except ValueError:
        pass
    raise ConfigError(f"bad {flag} {raw!r}. Fix: write WIDTHxHEIGHT, e.g. 112x112")


def _floats_flag(flag: str, raw: str) -> list[float]:
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise ConfigError(
            f"bad {flag} {raw!r}. Fix: write three numbers, one per channel, e.g. 123.675,116.28,103.53"
        )
    return values


def _register_train(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "train",
        cmd_train,
        groups=(),
        help="train the reference model on synthetic footage (CPU, ~30 min on 2 cores)",
        description="Render seeded training/validation footage, train the reference model, "
        "tune event post-processing on validation footage, save a model bundle.",
    )
    p.add_argument("--out", required=True, help="bundle directory to write (card.json + safetensors)")
    p.add_argument("--workdir", help="where rendered training footage is kept and reused")
    p.add_argument("--steps", type=_STEPS, default=1800)
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--name", default="reference")
    p.add_argument("--version", default="3")
    p.add_argument(
        "--extractor-from",
        metavar="MODEL",
        help="keep this model's extractor and fit only a new head on its embeddings (minutes, not half an hour)",
    )
    p.add_argument(
        "--bidirectional",
        action="store_true",
        help="read every clip forwards and backwards (twice the frame encoder's work) and fit the head "
        "on mirrored and time-reversed footage too; with --extractor-from, that extractor's weights are reused",
    )
    p.add_argument(
        "--no-postures",
        action="store_true",
        help="no posture branch (the reference@2 architecture): the extractor then barely tells "
        "sitting down from standing up",
    )
    add_json(p, quiet=True)


def _register_train_head(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "train-head",
        cmd_train_head,
        groups=("store", "ray", "decode"),
        help="fit a new head on a backbone's cached embeddings of your labelled footage",
        description="For the videos of --dates that have a <file>.labels.json sidecar: fill the feature "
        "cache with the --model bundle's backbone as `actrec run` does (decoding only what the cache "
        "lacks), fit a new head on the embeddings, tune the event post-processing on held-out videos, "
        "and write a bundle (card.json, weights, MODEL_CARD.md) that `actrec run`/`rescore --model DIR` load.",
    )
    p.add_argument(
        "--model", required=True, help="backbone bundle: NAME@VERSION, a bundle directory or s3:// URI"
    )
    p.add_argument("--dates", required=True, help="labelled dates: D1..Dn (inclusive), D1,D2 or a mix")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--name", help="model name (default: the --out directory's name)")
    p.add_argument("--version", default="1", help="model version (default 1)")
    p.add_argument(
        "--val-fraction",
        type=positive(float, 0.01, 0.99, "share"),
        default=0.25,
        help="share of the labelled videos held out to tune the post-processing and measure F1 (default 0.25)",
    )
    p.add_argument("--steps", type=_STEPS, default=3000)
    p.add_argument(
        "--window-clips",
        type=positive(int, 2, 4096, "clip count"),
        default=32,
        help="consecutive clips per training window (default 32); videos must be longer",
    )
    p.add_argument("--seed", type=_SEED, default=0)
    add_json(p, quiet=True)


def _register_model_pack(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "model",
        cmd_model_pack,
        groups=(),
        help="bundle your own video model",
        description="actrec model pack: write a model bundle (card.json with every file's sha256) from a "
        "TorchScript or ONNX backbone [B, 3, T, H, W] -> [B, D] and, optionally, a TorchScript head "
        "[1, N, D] -> [1, N, C]. The bundle is loaded and checked before it is written.",
    )
    p.add_argument("action", choices=["pack"], help="pack: write a bundle")
    p.add_argument("--backbone", required=True, help="the exported backbone file (.pt TorchScript or .onnx)")
    p.add_argument(
        "--format", choices=["torchscript", "onnx"], help="the backbone's format (default: from its bytes)"
    )
    p.add_argument("--head", help="a TorchScript head file (without one: a backbone bundle for train-head)")
    p.add_argument("--labels", help="comma-separated label map of the head's outputs, in order")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--name", required=True, help="model name (the NAME of NAME@VERSION)")
    p.add_argument("--version", default="1")
    p.add_argument("--extractor-id", help="the backbone's id in the feature cache (default: --name)")
    _add_sampling_args(p)
    p.add_argument("--json", action="store_true", help="print the card as JSON")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    """How the packed backbone samples and normalises frames (its card's ``sampling``)."""
    p.add_argument(
        "--sample-fps", type=positive(float, 0.01, 1000, "sample rate"), help="grid frames per second"
    )
    p.add_argument(
        "--frame-stride",
        type=positive(int, 1, 1000, "frame stride"),
        help="or: every K-th frame of --source-fps",
    )
    p.add_argument("--source-fps", type=positive(float, 1, 1000, "frame rate"), default=30.0)
    p.add_argument(
        "--clip-len", type=positive(int, 1, 4096, "clip length"), required=True, help="frames per clip (T)"
    )
    p.add_argument(
        "--clip-hop",
        type=positive(int, 1, 4096, "clip hop"),
        required=True,
        help="grid frames between clip starts",
    )
    p.add_argument("--size", required=True, help="the network's input WIDTHxHEIGHT, e.g. 112x112")
    p.add_argument("--resize", choices=["short_side_crop", "stretch"], default="short_side_crop")
    p.add_argument(
        "--short-side",
        type=positive(int, 1, 8192, "short side"),
        help="short_side_crop: short side before the crop (default 8/7 of the crop)",
    )
    p.add_argument(
        "--embed-dim",
        type=positive(int, 1, 1 << 20, "embedding width"),
        help="D, the backbone's output width (default: measured on one clip)",
    )
    p.add_argument(
        "--mean",
        default="123.675,116.28,103.53",
        help="per-channel mean, in --channel-order, on the --pixel-range scale",
    )
    p.add_argument("--std", default="58.395,57.12,57.375", help="per-channel std, likewise")
    p.add_argument(
        "--pixel-range",
        type=int,
        choices=[1, 255],
        default=255,
        help="255: pixels 0..255 (MMAction2); 1: 0..1 (torchvision)",
    )
    p.add_argument("--channel-order", choices=["RGB", "BGR"], default="RGB")


def register(sub: argparse._SubParsersAction) -> None:
    _register_train(sub)
    _register_train_head(sub)
    _register_model_pack(sub)
