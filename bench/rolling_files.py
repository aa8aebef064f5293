"""Cameras that write rolling files: the same night written as short files and as one file per camera.

One synthetic night (default 10 cameras x 5 min, seed 1) is rendered twice with the same seed: as
``--file-minutes 0.25`` (15-s files, as an NVR cuts a stream) and as ``--file-minutes 5`` (one file
per camera). Both hold the same frames and the same actions; in the 15-s night, an action that
crosses a cut is labelled in both files. Each night is scored through the documented commands:

    actrec synth --date D --cameras 10 --minutes 5 --seed 1 --file-minutes M
    actrec run --date D --json
    actrec eval --date D --format json

The goal (issue 13, deliverable 5): the 15-s night scores within 0.01 F1@0.5 of the 5-min night.

Usage: python bench/rolling_files.py [--data DIR] [--date 2026-05-01] [--cameras 10] [--minutes 5] [--seed 1]

Rendering is the slow part (minutes of CPU per night), so ``--data`` keeps each night's store and
warehouse under ``DIR/file-minutes-<M>/``; a night whose footage is already there is scored again
without being rendered again (the feature cache then makes ``actrec run`` quick too). Prints each
command, then a table; writes bench/results/rolling_files.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from quality import _run  # bench/quality.py: prints the command, runs it, stops on its error line

ROOT = Path(__file__).resolve().parents[1]
FILE_MINUTES = (0.25, 5.0)
GOAL_F1_GAP = 0.01


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _sidecar_events(store: Path, date: str) -> tuple[int, int]:
    """(videos, labelled events) of the night's ground-truth sidecars, before any joining."""
    sidecars = list((store / "footage" / f"date={date}").rglob("*.labels.json"))
    return len(sidecars), sum(len(json.loads(p.read_text())["events"]) for p in sidecars)


def _spanning_events(store: Path, date: str) -> int:
    """Published events that start in one file and end in another."""
    (path,) = (store / "events" / f"date={date}").glob("*.parquet")
    rows = pq.read_table(io.BytesIO(path.read_bytes()), columns=["video_id", "end_video_id"]).to_pylist()
    return sum(r["video_id"] != r["end_video_id"] for r in rows)


def score_night(data: Path, date: str, file_minutes: float, synth_args: list[str]) -> dict:
    night = data / f"file-minutes-{file_minutes:g}"
    store = night / "store"
    env = {
        **os.environ,
        "ACTREC_STORE": str(store),
        "ACTREC_WAREHOUSE_URL": f"duckdb:///{night / 'warehouse.duckdb'}",
        "ACTREC_LOG_LEVEL": "WARNING",
    }
    done = night / "synth.json"
    if done.is_file() and json.loads(done.read_text())["args"] == [date, *synth_args]:
        print(f"reusing the footage in {store}", flush=True)
    else:
        night.mkdir(parents=True, exist_ok=True)
        synth = _run(
            [
                "synth",
                "--date",
                date,
                *synth_args,
                "--file-minutes",
                f"{file_minutes:g}",
                "--quiet",
                "--json",
            ],
            env,
        )
        done.write_text(json.dumps({"args": [date, *synth_args], "report": _last_json(synth)}))
    run = _last_json(_run(["run", "--date", date, "--json"], env))
    report = _last_json(_run(["eval", "--date", date, "--format", "json"], env))
    videos, labelled = _sidecar_events(store, date)
    return {
        "file_minutes": file_minutes,
        "videos": videos,
        "sidecar_events": labelled,
        "gt_events": report["gt_events"],
        "pred_events": report["pred_events"],
        "spanning_events": _spanning_events(store, date),
        "run": {
            k: run[k] for k in ("run_id", "status", "units_total", "frames_decoded", "cache_hits", "wall_s")
        },
        "eval": report,
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="directory for the nights' stores (default: a temporary directory)")
    p.add_argument("--date", default="2026-05-01")
    p.add_argument("--cameras", default="10")
    p.add_argument("--minutes", default="5")
    p.add_argument("--seed", default="1")
    args = p.parse_args(argv)
    synth_args = ["--cameras", args.cameras, "--minutes", args.minutes, "--seed", args.seed]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data or tmp).resolve()
        nights = [score_night(data, args.date, m, synth_args) for m in FILE_MINUTES]
    print(
        f"\n{'file minutes':>12} {'videos':>6} {'labels':>6} {'GT':>4} {'pred':>4} {'spanning':>8}  P      R      F1@0.5"
    )
    for n in nights:
        e = n["eval"]
        print(
            f"{n['file_minutes']:>12g} {n['videos']:>6} {n['sidecar_events']:>6} {n['gt_events']:>4} "
            f"{n['pred_events']:>4} {n['spanning_events']:>8}  {e['precision']:.3f}  {e['recall']:.3f}  {e['f1']:.3f}"
        )
    gap = nights[-1]["eval"]["f1"] - nights[0]["eval"]["f1"]
    met = gap <= GOAL_F1_GAP
    print(
        f"F1 gap (one file per camera minus rolling files): {gap:+.4f}; goal <= {GOAL_F1_GAP}: {'met' if met else 'NOT met'}"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {"date": args.date, "synth_args": synth_args, "nights": nights, "f1_gap": gap, "goal_met": met}
    (out / "rolling_files.json").write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
