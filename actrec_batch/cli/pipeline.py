"""``actrec run``, ``actrec infer`` and ``actrec rescore``: the nightly pipeline from the command line."""

from __future__ import annotations

import argparse
import sys

from actrec_batch.cli.base import ALL_GROUPS, add_json, command, print_json
from actrec_batch.config import Settings, logical_date_range, parse_logical_date
from actrec_batch.model import DEFAULT_MODEL

REMOVED = {
    "infer-local": "actrec infer-local was removed: it wrote events without validation. Fix: run "
    "`actrec infer --runner local --publish --date D` (in this process; validated and published like every run)",
}


def removed_command(argv: list[str]) -> str | None:
    """The one-line error for a removed command name in ``argv``, else None."""
    name = next((a for a in argv if not a.startswith("-")), None)
    return REMOVED.get(name) if name else None


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.pipeline.nightly import run_nightly
    from actrec_batch.pipeline.spec import RunSpec

    spec = RunSpec(date, model_ref=args.model, cameras=tuple(args.camera or ()), force=args.force)
    return _print_run(run_nightly(settings, spec, progress=not args.json), args)


def _print_run(summary: dict, args: argparse.Namespace) -> int:
    if args.json:
        print_json(summary)
    else:
        print(run_text(summary))
    return 0 if summary["status"] == "success" else 1


def cmd_infer(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.pipeline.nightly import discover_stage, infer_stage, run_nightly
    from actrec_batch.pipeline.spec import RunSpec

    spec = RunSpec(
        date, model_ref=args.model, cameras=tuple(args.camera or ()), force=args.force, run_id=args.run_id
    )
    if args.publish:  # the run from here on, as `actrec run` does it
        return _print_run(
            run_nightly(settings, spec, progress=not args.json, discover_first=args.discover), args
        )
    if args.discover:
        discover_stage(settings, date, progress=not args.json)
    result = infer_stage(settings, spec, progress=not args.json)
    out = result.to_json()
    if args.json:
        print_json(out)
    else:
        print(
            f"infer {out['logical_date']} with {out['model']} (run {out['run_id']}): {out['videos_processed']} videos "
            f"({out['videos_quarantined']} quarantined), {out['units_total']} units ({out['units_skipped_checkpoint']} "
            f"from checkpoints, {out['cache_hits']} cache hits, {out['units_computed']} computed), {out['events']} "
            f"events, {out['video_s_per_wall_s']} video-s per wall-s -> {out['staging_uri']}"
        )
    return 0


def run_text(s: dict) -> str:
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


def cmd_rescore(args: argparse.Namespace, settings: Settings) -> int:
    days = logical_date_range(args.date_from, args.date_to)
    from actrec_batch.pipeline.nightly import run_nightly
    from actrec_batch.pipeline.spec import RunSpec

    failed = 0
    for day in days:
        summary = run_nightly(
            settings, RunSpec(day, model_ref=args.model), progress=not args.json, discover_first=False
        )
        failed += summary["status"] != "success"
        if args.json:
            print_json(summary)
        else:
            print(run_text(summary))
    return 1 if failed else 0


def cmd_quality(args: argparse.Namespace, settings: Settings) -> int:
    """Print a run's stored quality report (default: the date's latest); 1 when it has a drift alert."""
    date = parse_logical_date(args.date)
    from actrec_batch.errors import ActrecError
    from actrec_batch.runs import QualityRecord, RunFolder, latest_run_with
    from actrec_batch.storage import open_store

    store = open_store(settings.store)
    folder = (
        RunFolder(store, date, args.run_id) if args.run_id else latest_run_with(store, date, QualityRecord)
    )
    if folder is None or not folder.has(QualityRecord):
        what = f"run {args.run_id}" if args.run_id else f"any run of {date}"
        raise ActrecError(
            f"no quality report for {what} in {store.uri('reports/')}: run `actrec run --date {date}` first",
            reason="not_found",
        )
    report = {**folder.read(QualityRecord).to_json(), "uri": folder.uri(QualityRecord)}
    if args.json:
        print_json(report)
    else:
        print(quality_text(report))
    return 1 if (report.get("drift") or {}).get("alert") else 0


def quality_text(r: dict) -> str:
    drift, ev = r.get("drift"), r.get("evaluation")
    lines = [
        f"quality of run {r['run_id']} ({r['logical_date']}, {r['model']}): {r['events']['count']} events"
    ]
    if ev:
        lines.append(
            f"  against ground truth: precision {ev['precision']:.3f}, recall {ev['recall']:.3f}, F1 {ev['f1']:.3f}"
        )
    if not drift:
        lines.append("  drift: not computed (no warehouse when the report was made)")
    else:
        w = drift["window"]
        lines.append(f"  window: {w['first']} to {w['last']} ({len(w['dates'])} nights with footage)")
        if drift["alerts"]:
            lines.append(f"  DRIFT ALERT ({len(drift['alerts'])}):")
            lines += [f"    {a['message']}" for a in drift["alerts"]]
        elif not drift["baseline"]:
            lines.append("  drift: no baseline (no earlier night in the window)")
        else:
            lines.append("  drift: no alert")
        if not drift["frame_health"]["measured"]:
            lines.append("  frame health: not measured (nothing decoded: features from the cache)")
        lines.append(f"  report: {drift['page_uri']}")
    lines.append(f"  json: {r['uri']}")
    return "\n".join(lines)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """The arguments `actrec run` and `actrec infer` share."""
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    p.add_argument("--camera", action="append", help="only this camera id (repeatable)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="NAME@VERSION, a bundle directory or s3:// URI")
    p.add_argument(
        "--force", action="store_true", help="forget this date's checkpoints and recompute every unit"
    )
    add_json(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "run",
        cmd_run,
        groups=ALL_GROUPS,
        help="the whole nightly pipeline for one date, without Airflow",
        description="discover -> validate the manifest -> infer on Ray (feature cache, segment "
        "checkpoints) -> publish events/date=D/. Reruns skip committed units.",
    )
    _add_run_args(p)

    p = command(
        sub,
        "infer",
        cmd_infer,
        groups=ALL_GROUPS,
        help="the inference stage alone (what ray_jobs/nightly_inference.py runs)",
        description="Read the date's manifest, compute or reuse every unit's features (on Ray, or in "
        "this process with --runner local), and write the run's events to its staging area and its "
        "metrics to runs/date=D/run=<id>/. With --publish: then validate, publish, cost and quality, "
        "as `actrec run` does.",
    )
    p.add_argument("--run-id", help="run id to use (default: a new one)")
    p.add_argument("--discover", action="store_true", help="run discovery first (writes the manifest)")
    p.add_argument(
        "--publish",
        action="store_true",
        help="go on as a whole run: validate the staged events, publish them, cost and quality",
    )
    _add_run_args(p)

    p = command(
        sub,
        "quality",
        cmd_quality,
        groups=("store",),
        help="print a run's quality and drift report",
        description="Print the quality report (events, F1 where ground truth exists, the drift "
        "report against the previous nights) of a run of --date: --run-id's, or the latest. "
        "Exits 1 when the report has a drift alert.",
    )
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    p.add_argument("--run-id", help="the run (default: the date's latest with a quality report)")
    add_json(p)

    p = command(
        sub,
        "rescore",
        cmd_rescore,
        groups=ALL_GROUPS,
        help="rerun a model's head over the cached features of a range of dates",
        description="For each date from --from to --to: infer from the feature cache (no decoding when "
        "the extractor matches), validate, publish the new version's events and make it current.",
    )
    p.add_argument("--from", dest="date_from", required=True, help="first logical date YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last logical date YYYY-MM-DD (inclusive)")
    p.add_argument("--model", required=True, help="NAME@VERSION, a bundle directory or s3:// URI")
    p.add_argument("--json", action="store_true", help="print one JSON summary per date")


def print_removed(message: str) -> int:
    print(message, file=sys.stderr)
    return 2
