"""The ``actrec`` command line. Wiring only: parse, build Settings, call the library, print.

Failures print exactly one line on stderr. Exit codes: 0 success, 1 a failed run (validation,
reconciliation, I/O), 2 a bad flag or setting (the line names the setting and the fix),
130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from actrec_batch import __version__
from actrec_batch.config import Settings, load_settings, logical_date_range, parse_logical_date
from actrec_batch.errors import ActrecError, ConfigError
from actrec_batch.model import DEFAULT_MODEL

log = logging.getLogger("actrec")

# Setting flags accepted by every subcommand (names match actrec_batch.config settings).
_SETTING_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--store", "store", "object-store root: a local path, file:///abs/path or s3://bucket/prefix"),
    ("--warehouse", "warehouse_url", "SQLAlchemy URL of the warehouse"),
    ("--ray-address", "ray_address", "Ray cluster address ('auto', ray://host:10001); unset = local Ray"),
    ("--probe-workers", "probe_workers", "parallel probes during discovery"),
    ("--probe-timeout", "probe_timeout_s", "seconds before a hung probe is quarantined as 'timeout'"),
    ("--content-id", "content_id", "content id method: sha256 (exact) or fast (size+ETag/sampled)"),
    ("--max-video-bytes", "max_video_bytes", "larger files are quarantined as 'too_large'"),
    ("--local-ray-cpus", "local_ray_cpus", "CPUs a local Ray may use (0: all); ignored with a Ray address"),
    ("--segment-s", "segment_s", "work-unit length in seconds of footage (default 300)"),
    ("--runner", "runner", "ray (decode tasks and embedder actors on Ray) or local (this process)"),
    ("--unit-timeout", "unit_timeout_s", "seconds before a hung unit is quarantined as 'timeout'"),
    ("--decode-cpus", "decode_cpus", "CPUs reserved by each Ray decode task"),
    ("--task-retries", "task_retries", "Ray retries of a task, and restarts of an actor, whose worker died"),
    ("--inference-actors", "inference_actors", "inference actors (0: one per GPU, or one CPU actor)"),
    ("--actor-gpus", "actor_gpus", "GPUs per inference actor (1, 0.5, ...; 0 = CPU actors; auto)"),
    ("--actor-cpus", "actor_cpus", "CPUs reserved by each inference actor"),
    ("--max-inflight-units", "max_inflight_units", "units decoded or scored at once (0: 2 per worker)"),
    ("--batch-frames", "batch_frames", "frames one inference call gathers across units"),
    ("--cpu-hour-usd", "cpu_hour_usd", "on-demand USD per vCPU-hour, for the cost ledger"),
    ("--gpu-hour-usd", "gpu_hour_usd", "on-demand USD per GPU-hour, for the cost ledger"),
    ("--spot-price-ratio", "spot_price_ratio", "spot price as a fraction of on-demand (0..1)"),
    (
        "--file-time-pattern",
        "file_time_pattern",
        "strftime pattern of a file's start in its name (else creation time)",
    ),
    ("--chain-tolerance", "chain_tolerance_s", "seconds of gap/overlap within which a camera's files chain"),
    ("--log-level", "log_level", "DEBUG, INFO, WARNING or ERROR"),
)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming the fix, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}. Fix: see '{self.prog} --help'\n")


def _add_setting_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings (flag > ACTREC_* env > --config file > default)")
    g.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="YAML file of settings (also ACTREC_CONFIG)",
    )
    for flag, dest, help_ in _SETTING_FLAGS:
        g.add_argument(flag, dest=dest, default=argparse.SUPPRESS, help=help_)


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """The arguments `actrec run` and `actrec infer` share, then the setting flags."""
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    p.add_argument("--camera", action="append", help="only this camera id (repeatable)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="NAME@VERSION, a bundle directory or s3:// URI")
    p.add_argument(
        "--force", action="store_true", help="forget this date's checkpoints and recompute every unit"
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    _add_setting_flags(p)


def _settings(args: argparse.Namespace) -> Settings:
    flags = {dest: getattr(args, dest, None) for _, dest, _ in _SETTING_FLAGS}
    return load_settings(flags, config_file=getattr(args, "config_file", None))


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    ``main()`` may run inside another program (a test, a notebook) that swaps ``sys.stderr`` and
    later closes the stream it swapped in; a handler bound to that stream would then fail on every
    later log line."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        handlers=[_CurrentStderr()],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "great_expectations", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _print_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- subcommands


def cmd_synth(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    report = synth_footage(
        open_store(settings.store),
        date=date,
        cameras=args.cameras,
        minutes=args.minutes,
        seed=args.seed,
        width=args.width,
        height=args.height,
        fps=args.fps,
        codec=args.codec,
        noise=args.noise,
        file_minutes=args.file_minutes,
        progress=not args.quiet,
    )
    summary = report.to_json()
    if args.json:
        _print_json(summary)
    else:
        footage_s = summary.get("footage_s", 0.0)
        wall_s = summary.get("wall_s", 0.0)
        print(
            f"synth {date}: {len(summary.get('videos', []))} videos, {footage_s:.0f} s of footage, "
            f"{summary.get('events', 0)} labelled events, {wall_s:.1f} s wall "
            f"({footage_s / max(wall_s, 1e-9):.1f}x real time) -> {settings.store}"
        )
    return 0


def cmd_discover(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.discovery import discover

    result = discover(settings, date, progress=not args.json and sys.stderr.isatty())
    out = result.to_json()
    if args.json:
        _print_json(out)
        return 0
    print(
        f"discover {out['logical_date']}: {out['videos_discovered']} discovered = "
        f"{out['videos_manifested']} manifested + {out['videos_quarantined']} quarantined"
    )
    for q in out["quarantine"]:
        print(f"  quarantined [{q['reason']}] {q['uri']}")
    print(f"  manifest: {out['manifest_uri']} ({out['validation'].get('evaluated', 0)} expectations passed)")
    print(
        f"  probe: {out['probe_s_per_file'] * 1000:.1f} ms/file, {out['probe_bytes_read']} bytes read remotely; "
        f"content id: {out['content_id_method']}, {out['bytes_hashed']} bytes hashed"
    )
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.demo import run_demo

    return run_demo(
        settings, date=date, cameras=args.cameras, minutes=args.minutes, airflow=not args.without_airflow
    )


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace
    from pathlib import Path

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
        _print_json(summary)
    else:
        print(report.to_table())
        print(
            f"saved {card.model_id} ({card.weights_sha256[:12]}) to {out} in {summary['timings'].get('total_s')} s"
        )
    return 0


def cmd_train_head(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from actrec_batch.head_training import HeadTrainConfig, parse_dates, train_head

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
        _print_json(summary)
    else:
        print(report.to_table())
        print(
            f"saved {card.model_id} ({card.weights_sha256[:12]}) to {args.out}: held-out F1@0.5 "
            f"{report.f1:.3f} on {summary['videos_validation']} videos; {footage.counters['frames_decoded']} "
            f"frames decoded, {footage.counters['units_computed']} of {footage.counters['units_total']} "
            f"units computed, in {summary['timings']['total_s']} s"
        )
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.pipeline.nightly import run_nightly
    from actrec_batch.pipeline.spec import RunSpec

    spec = RunSpec(date, model_ref=args.model, cameras=tuple(args.camera or ()), force=args.force)
    summary = run_nightly(settings, spec, progress=not args.json)
    if args.json:
        _print_json(summary)
    else:
        print(_run_text(summary))
    return 0 if summary["status"] == "success" else 1


def cmd_infer(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.pipeline.nightly import discover_stage, infer_stage
    from actrec_batch.pipeline.spec import RunSpec

    if args.discover:
        discover_stage(settings, date, progress=not args.json)
    spec = RunSpec(
        date, model_ref=args.model, cameras=tuple(args.camera or ()), force=args.force, run_id=args.run_id
    )
    result = infer_stage(settings, spec, progress=not args.json)
    out = result.to_json()
    if args.json:
        _print_json(out)
    else:
        print(
            f"infer {out['logical_date']} with {out['model']} (run {out['run_id']}): {out['videos_processed']} videos "
            f"({out['videos_quarantined']} quarantined), {out['units_total']} units ({out['units_skipped_checkpoint']} "
            f"from checkpoints, {out['cache_hits']} cache hits, {out['units_computed']} computed), {out['events']} "
            f"events, {out['video_s_per_wall_s']} video-s per wall-s -> {out['staging_uri']}"
        )
    return 0


def _run_text(s: dict) -> str:
    lines = [
        f"run {s['run_id']} ({s['model']}): {s['status']}",
        f"  videos: {s['videos_discovered']} discovered = {s['videos_processed']} processed + "
        f"{s['videos_quarantined']} quarantined",
        f"  units: {s['units_total']} ({s['units_skipped_checkpoint']} from checkpoints, {s['cache_hits']} cache hits, "
        f"{s['units_computed']} computed); {s['frames_decoded']} frames decoded",
        f"  events: {s['events']} -> {s['events_uri']}",
        f"  {s['video_seconds']:.0f} s of footage in {s['wall_s']:.1f} s ({s['video_s_per_wall_s']} video-s per wall-s)",
        f"  metrics: {s['metrics_uri']}",
        f"  validation (Data Docs): {s.get('docs_uri')}",
        f"  warehouse: {s.get('warehouse_videos')} videos and {s.get('warehouse_quarantine')} quarantine rows "
        f"for {s['logical_date']}; events in current_action_events",
    ]
    lines += [f"  quarantined [{q['reason']}] {q['uri']} ({q['stage']})" for q in s["quarantine"]]
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.evaluation import (
        evaluate,
        labelled_videos,
        load_chains,
        load_predictions_parquet,
        load_truth,
        on_chains,
    )
    from actrec_batch.model import read_card, resolve_model_ref
    from actrec_batch.storage import open_store

    store = open_store(settings.store)
    version = labels = None
    if args.model:  # the card has the version and the label map: no need to deserialise the weights
        card = read_card(open_store(resolve_model_ref(args.model, store_uri=settings.store)))
        version, labels = card.version, list(card.labels)
    preds = _warehouse_predictions(settings, store, date, version) if args.source != "parquet" else None
    if preds is None:
        if args.source == "warehouse":
            raise ActrecError(
                f"no events for {date} in the warehouse; run `actrec run --date {date}` first, or use --source parquet",
                reason="no_events",
            )
        preds = load_predictions_parquet(store, date, model_version=version)
    truths = load_truth(store, date)
    if labels is None:
        labels = sorted({e.label for e in truths} | {p.label for p in preds})
    chains = load_chains(
        store, date, file_time_pattern=settings.file_time_pattern, tolerance_s=settings.chain_tolerance_s
    )
    preds, truths, videos = on_chains(preds, truths, labelled_videos(store, date), chains)
    report = evaluate(preds, truths, labels, videos=videos)
    if args.format == "json":
        _print_json(report.to_json())
    else:
        print(report.to_table())
    return 0


def _warehouse_predictions(settings: Settings, store, date: dt.date, version: str | None):
    """The date's current events (or ``version``'s) from the warehouse as predictions; None when
    the warehouse has no published run for the date (or none of ``version``)."""
    import pyarrow as pa

    from actrec_batch.evaluation import predictions_from_table
    from actrec_batch.warehouse import open_warehouse
    from actrec_batch.warehouse.queries import events_of_date

    warehouse = open_warehouse(settings.warehouse_url, upgrade=True)
    rows, active = events_of_date(warehouse, date, version)
    warehouse.dispose()
    if active is None or (
        version is not None and not rows
    ):  # not published there: the Parquet files may have it
        return None
    root = store.root_uri.rstrip("/") + "/"
    for r in rows:
        r["video_key"] = r.pop("uri").removeprefix(root)
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("label", pa.string()),
                ("start_s", pa.float64()),
                ("end_s", pa.float64()),
                ("confidence", pa.float64()),
                ("model_version", pa.string()),
                ("video_key", pa.string()),
            ]
        ),
    )
    return predictions_from_table(table, source=f"the warehouse's events of {date}", model_version=version)


def cmd_rescore(args: argparse.Namespace, settings: Settings) -> int:
    days = logical_date_range(args.date_from, args.date_to)
    from actrec_batch.pipeline.nightly import run_nightly
    from actrec_batch.pipeline.spec import RunSpec

    failed = 0
    for day in days:
        spec = RunSpec(day, model_ref=args.model)
        summary = run_nightly(settings, spec, progress=not args.json, discover_first=False)
        failed += summary["status"] != "success"
        if args.json:
            _print_json(summary)
        else:
            print(_run_text(summary))
    return 1 if failed else 0


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
    from actrec_batch.model.video import save_video_model

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
        _print_json(card.to_dict())
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


def cmd_warehouse(args: argparse.Namespace, settings: Settings) -> int:
    from actrec_batch.warehouse import open_warehouse
    from actrec_batch.warehouse.core import redacted

    warehouse = open_warehouse(settings.warehouse_url, upgrade=True)
    print(f"warehouse {redacted(settings.warehouse_url)} is at revision {warehouse.revision()}")
    warehouse.dispose()
    return 0


def _timestamp(flag: str, raw: str | None) -> dt.datetime | None:
    """A --from/--to value: YYYY-MM-DD or an ISO timestamp; UTC when it carries no offset."""
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"bad {flag} {raw!r}: not a date or timestamp. Fix: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"
        ) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from actrec_batch.warehouse import open_warehouse
    from actrec_batch.warehouse.queries import SearchFilter, search_events, when

    f = SearchFilter(
        label=args.label,
        camera=args.camera,
        start=_timestamp("--from", args.start),
        end=_timestamp("--to", args.end),
        min_confidence=args.min_confidence,
        limit=args.limit,
    )
    warehouse = open_warehouse(settings.warehouse_url)
    rows = search_events(warehouse, f)
    warehouse.dispose()
    for r in rows:
        r["when"] = when(r)
    _print_rows(
        rows,
        ["when", "camera_id", "label", "confidence", "start_s", "end_s", "uri", "model_version", "event_id"],
        args.format,
    )
    return 0


def cmd_cost(args: argparse.Namespace, settings: Settings) -> int:
    from actrec_batch.costs import (
        COST_COLUMNS,
        cost_footer,
        cost_title,
        display_rows,
        find_run_cost,
        render_html,
    )
    from actrec_batch.storage import open_store

    date = parse_logical_date(args.date) if args.date else None
    report = find_run_cost(open_store(settings.store), date=date, run_id=args.run_id)
    if args.format == "json":
        _print_json(report)
    elif args.format == "html":
        sys.stdout.write(render_html(report))
    else:
        print(cost_title(report))
        _print_rows(display_rows(report), list(COST_COLUMNS), "table")
        print("\n".join(cost_footer(report)))
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from actrec_batch.warehouse import open_warehouse
    from actrec_batch.warehouse.queries import report_names, report_params, run_report

    if args.list or not args.name:
        for name in report_names():
            print(f"{name}  ({', '.join(report_params(name)) or 'no parameters'})")
        return 0
    params = {}
    for item in args.param or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad --param {item!r}. Fix: write --param NAME=VALUE")
        params[key] = value
    warehouse = open_warehouse(settings.warehouse_url)
    columns, rows = run_report(warehouse, args.name, params)
    warehouse.dispose()
    _print_rows([dict(zip(columns, r, strict=True)) for r in rows], columns, args.format)
    return 0


def _print_rows(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    """Rows as an aligned table, CSV or JSON lines-free JSON (one array) on stdout."""
    if fmt == "json":
        sys.stdout.write(json.dumps([{c: r.get(c) for c in columns} for r in rows], default=str) + "\n")
        return
    if fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([["" if r.get(c) is None else r.get(c) for c in columns] for r in rows])
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    for name, value in settings.redacted().items():
        print(f"{name} = {value!r}  ({settings.sources.get(name, 'default')})")
    return 0


# ---------------------------------------------------------------- parser


def _positive(kind: Callable[[str], Any], lo: float, hi: float, what: str) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a valid {what}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{raw!r} is out of range; use {lo:g} to {hi:g}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="actrec", description="Nightly batch action recognition over archived footage.")
    parser.add_argument("--version", action="version", version=f"actrec-batch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "synth",
        help="render labelled synthetic footage for a date",
        description="Render labelled synthetic footage into footage/date=D/camera=*/ "
        "with a <file>.labels.json ground-truth sidecar per video.",
    )
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    p.add_argument("--cameras", type=_positive(int, 1, 64, "camera count"), default=2)
    p.add_argument(
        "--minutes",
        type=_positive(float, 0.05, 24 * 60, "number of minutes"),
        default=5.0,
        help="minutes of footage per camera",
    )
    p.add_argument(
        "--file-minutes",
        type=_positive(float, 0.05, 24 * 60, "number of minutes"),
        default=5.0,
        help="longest video file, in minutes",
    )
    p.add_argument("--seed", type=_positive(int, 0, 2**32 - 1, "seed"), default=0)
    p.add_argument("--width", type=_positive(int, 64, 3840, "width"), default=320)
    p.add_argument("--height", type=_positive(int, 48, 2160, "height"), default=240)
    p.add_argument("--fps", type=_positive(float, 1, 120, "frame rate"), default=15.0)
    p.add_argument("--codec", choices=["h264", "hevc", "mpeg4", "vp9", "ffv1", "mjpeg"], default="h264")
    p.add_argument(
        "--noise",
        type=_positive(float, 0.0, 1.0, "noise level"),
        default=0.02,
        help="sensor-noise standard deviation, as a fraction of full scale",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "discover",
        help="list, probe and validate a date's footage; write its manifest",
        description="List footage/date=D/camera=*/, probe every file in parallel, quarantine "
        "unreadable files with a reason code, validate and write the manifest.",
    )
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser(
        "demo",
        help="what `make demo` runs: synthetic footage, then the nightly DAG through Airflow",
        description="Render a small synthetic night (plus one corrupt file), run the actrec_nightly DAG over it "
        "through Airflow on the embedded defaults (local store, DuckDB, local Ray), and print a summary.",
    )
    p.add_argument("--date", default="2026-11-24", help="logical date YYYY-MM-DD")
    p.add_argument("--cameras", type=_positive(int, 1, 16, "camera count"), default=2)
    p.add_argument("--minutes", type=_positive(float, 0.1, 60, "number of minutes"), default=2.0)
    p.add_argument(
        "--without-airflow",
        action="store_true",
        help="run the stages through `actrec run` instead of the DAG",
    )
    _add_setting_flags(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "train",
        help="train the reference model on synthetic footage (CPU, ~30 min on 2 cores)",
        description="Render seeded training/validation footage, train the reference model, "
        "tune event post-processing on validation footage, save a model bundle.",
    )
    p.add_argument("--out", required=True, help="bundle directory to write (card.json + safetensors)")
    p.add_argument("--workdir", help="where rendered training footage is kept and reused")
    p.add_argument("--steps", type=_positive(int, 1, 10**6, "step count"), default=1800)
    p.add_argument("--seed", type=_positive(int, 0, 2**32 - 1, "seed"), default=0)
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
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "train-head",
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
        type=_positive(float, 0.01, 0.99, "share"),
        default=0.25,
        help="share of the labelled videos held out to tune the post-processing and measure F1 (default 0.25)",
    )
    p.add_argument("--steps", type=_positive(int, 1, 10**6, "step count"), default=3000)
    p.add_argument(
        "--window-clips",
        type=_positive(int, 2, 4096, "clip count"),
        default=32,
        help="consecutive clips per training window (default 32); videos must be longer",
    )
    p.add_argument("--seed", type=_positive(int, 0, 2**32 - 1, "seed"), default=0)
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_train_head)

    p = sub.add_parser(
        "run",
        help="the whole nightly pipeline for one date, without Airflow",
        description="discover -> validate the manifest -> infer on Ray (feature cache, segment "
        "checkpoints) -> publish events/date=D/. Reruns skip committed units.",
    )
    _add_pipeline_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "infer",
        help="the inference stage alone (what ray_jobs/nightly_inference.py runs)",
        description="Read the date's manifest, compute or reuse every unit's features on Ray, and "
        "write the run's events to its staging area and its metrics to runs/date=D/run=<id>/.",
    )
    p.add_argument("--run-id", help="run id to use (default: a new one)")
    p.add_argument("--discover", action="store_true", help="run discovery first (writes the manifest)")
    _add_pipeline_args(p)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser(
        "rescore",
        help="rerun a model's head over the cached features of a range of dates",
        description="For each date from --from to --to: infer from the feature cache (no decoding when "
        "the extractor matches), validate, publish the new version's events and make it current.",
    )
    p.add_argument("--from", dest="date_from", required=True, help="first logical date YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last logical date YYYY-MM-DD (inclusive)")
    p.add_argument("--model", required=True, help="NAME@VERSION, a bundle directory or s3:// URI")
    p.add_argument("--json", action="store_true", help="print one JSON summary per date")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_rescore)

    p = sub.add_parser(
        "search",
        help="search the warehouse's current events",
        description="Filter current_action_events (the active model version of each date). Times "
        "are printed as wall-clock UTC when the recording's start is known, else as seconds into the video.",
    )
    p.add_argument("--label", help="action label, e.g. fall")
    p.add_argument("--camera", help="camera id")
    p.add_argument("--from", dest="start", help="from this date or UTC timestamp (inclusive)")
    p.add_argument("--to", dest="end", help="to this date or UTC timestamp (exclusive)")
    p.add_argument(
        "--min-confidence", type=_positive(float, 0.0, 1.0, "confidence"), help="lowest confidence, 0..1"
    )
    p.add_argument("--limit", type=_positive(int, 1, 1_000_000, "row limit"), default=100)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "cost",
        help="the cost report of one job",
        description="Print a run's cost ledger (runs/date=D/run=<id>/cost.json): vCPU- and GPU-hours it "
        "reserved, by component, priced on demand or at spot rates. --date takes the run of that date "
        "priced last. Across runs, see `actrec report cost_per_job`.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--date", help="logical date YYYY-MM-DD (its latest priced run)")
    which.add_argument("--run-id", help="a run id (they start with their logical date)")
    p.add_argument("--format", choices=["table", "json", "html"], default="table")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_cost)

    p = sub.add_parser(
        "report",
        help="run a report query from sql/ against the warehouse",
        description="Run sql/NAME.sql with its bind parameters. Without NAME, list the reports and their parameters.",
    )
    p.add_argument("name", nargs="?", help="report name (a file in sql/ without .sql)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="a bind parameter (repeatable)")
    p.add_argument("--list", action="store_true", help="list the reports")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "warehouse",
        help="manage the warehouse schema",
        description="actrec warehouse upgrade: apply the Alembic migrations (actrec run also does).",
    )
    p.add_argument("action", choices=["upgrade"], help="upgrade: apply every pending migration")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_warehouse)

    p = sub.add_parser(
        "eval",
        help="compare a date's events with the ground-truth sidecars",
        description="Event-level precision/recall/F1 at tIoU 0.3/0.5/0.7, per class, boundary "
        "error and confusion matrix.",
    )
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    p.add_argument(
        "--model", help="NAME@VERSION whose events to evaluate (default: the date's current version)"
    )
    p.add_argument(
        "--source",
        choices=["auto", "warehouse", "parquet"],
        default="auto",
        help="where the events come from; auto: the warehouse when it has the date, else events/date=D/*.parquet",
    )
    p.add_argument("--format", choices=["table", "json"], default="table")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "model",
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
    p.add_argument(
        "--sample-fps", type=_positive(float, 0.01, 1000, "sample rate"), help="grid frames per second"
    )
    p.add_argument(
        "--frame-stride",
        type=_positive(int, 1, 1000, "frame stride"),
        help="or: every K-th frame of --source-fps",
    )
    p.add_argument("--source-fps", type=_positive(float, 1, 1000, "frame rate"), default=30.0)
    p.add_argument(
        "--clip-len", type=_positive(int, 1, 4096, "clip length"), required=True, help="frames per clip (T)"
    )
    p.add_argument(
        "--clip-hop",
        type=_positive(int, 1, 4096, "clip hop"),
        required=True,
        help="grid frames between clip starts",
    )
    p.add_argument("--size", required=True, help="the network's input WIDTHxHEIGHT, e.g. 112x112")
    p.add_argument("--resize", choices=["short_side_crop", "stretch"], default="short_side_crop")
    p.add_argument(
        "--short-side",
        type=_positive(int, 1, 8192, "short side"),
        help="short_side_crop: short side before the crop (default 8/7 of the crop)",
    )
    p.add_argument(
        "--embed-dim",
        type=_positive(int, 1, 1 << 20, "embedding width"),
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
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_model_pack)

    p = sub.add_parser("config", help="print the resolved settings (secrets masked) and where each came from")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_config)
    return parser


REMOVED_COMMANDS = {"infer-local": "actrec infer --runner local"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in REMOVED_COMMANDS:
        print(f"actrec {argv[0]}: error: removed; use `{REMOVED_COMMANDS[argv[0]]}`", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = os.environ.get("ACTREC_DEBUG") == "1"
    prog = f"actrec {args.command}"
    try:
        settings = _settings(args)
        _setup_logging(settings.log_level)
        t0 = time.perf_counter()
        rc = args.func(args, settings)
        log.debug("%s finished in %.2f s", prog, time.perf_counter() - t0)
        return rc
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except ActrecError as exc:
        if debug:
            raise
        print(f"{prog}: error [{exc.reason}]: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`actrec search | head`): not an error of ours
        # Point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for users; ACTREC_DEBUG=1 shows the traceback
        if debug:
            raise
        first = " ".join(str(exc).split())[:400]
        print(
            f"{prog}: error: unexpected {type(exc).__name__}: {first} (rerun with ACTREC_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
