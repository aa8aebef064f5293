"""Quality of a model on held-out synthetic footage, through the documented CLI commands.

Sets (seeds outside the training range 1000-1999):
- in_distribution: 4 cameras x 8 min (32 min), 320x240 @ 15 fps h264, noise 0.02, seed 7.
- shifted: 2 cameras x 8 min (16 min), 512x288 @ 24 fps hevc, noise 0.06, seed 8 -- resolution,
  aspect, frame rate, codec and noise all differ from every training video.

Usage: python bench/quality.py [--model reference@3] [--store DIR] [--quick] [--via local|ray]

Scores through the whole pipeline (``actrec run``: the feature cache, the events checks, the
warehouse) on the runner ``--via`` names, this process (``local``, the default) or Ray;
``actrec eval`` then reads the published events.
Prints each command, then a table; writes bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from actrec_batch.layout import manifest_key
from actrec_batch.model import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "in_distribution": ("2026-10-01", ["--cameras", "4", "--minutes", "8", "--seed", "7"]),
    "shifted": (
        "2026-10-02",
        [
            "--cameras",
            "2",
            "--minutes",
            "8",
            "--seed",
            "8",
            "--width",
            "512",
            "--height",
            "288",
            "--fps",
            "24",
            "--codec",
            "hevc",
            "--noise",
            "0.06",
        ],
    ),
}


def _run(args: list[str], env: dict) -> str:
    print("$ actrec " + " ".join(args), flush=True)
    out = subprocess.run(
        [sys.executable, "-m", "actrec_batch", *args], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"actrec {' '.join(args)} failed: {out.stderr.strip().splitlines()[-1]}")
    return out.stdout


# The bar of issue [2/8]: in distribution, F1@0.5 >= 0.90, precision >= 0.90 and every class's
# recall >= 0.85; on shifted footage the aim is F1@0.5 >= 0.80.
BAR = {"f1": 0.90, "precision": 0.90, "class_recall": 0.85}
SHIFTED_BAR = {"f1": 0.80}


def quality_bar(report: dict, *, shifted: bool = False) -> dict:
    """Which parts of the quality bar ``report`` (an ``actrec eval --format json`` object) meets."""
    bar = SHIFTED_BAR if shifted else BAR
    failures = [
        f"{key} {report[key]:.3f} < {bar[key]:.2f}"
        for key in ("f1", "precision")
        if key in bar and report[key] < bar[key]
    ]
    if "class_recall" in bar:
        failures += [
            f"{label} recall {m['recall']:.3f} < {bar['class_recall']:.2f}"
            for label, m in report["per_class"].items()
            if m["recall"] < bar["class_recall"]
        ]
    return {"thresholds": bar, "met": not failures, "failures": failures}


def _labelled(store: str, date: str) -> list[dict]:
    """The date's ground-truth sidecars (their durations give the footage's length)."""
    return [json.loads(p.read_text()) for p in Path(store, "footage", f"date={date}").rglob("*.labels.json")]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument(
        "--store",
        help="local store to use (default: a temporary directory); footage already synthesised and "
        "discovered there is scored again instead of rendered again",
    )
    p.add_argument("--quick", action="store_true", help="1 minute per camera instead of 8 (a smoke run)")
    p.add_argument(
        "--via",
        choices=("local", "ray"),
        default="local",
        help="the runner of `actrec run`: this process (local, the default) or Ray",
    )
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ACTREC_STORE": args.store or f"{tmp}/store", "ACTREC_LOG_LEVEL": "WARNING"}
        for name, (date, synth_args) in SETS.items():
            if args.quick:
                synth_args = [*synth_args[:2], "--minutes", "1", *synth_args[4:]]
            rendered = args.store and Path(args.store, manifest_key(dt.date.fromisoformat(date))).is_file()
            if rendered and not args.quick:  # footage is deterministic per seed: score it again
                print(f"reusing the footage of {date} in {args.store}", flush=True)
            else:
                _run(["synth", "--date", date, *synth_args, "--file-minutes", "8", "--quiet"], env)
                _run(["discover", "--date", date], env)
            t0 = time.perf_counter()
            command = ["run", "--runner", args.via, "--date", date, "--model", args.model, "--json"]
            infer = json.loads(_run(command, env).strip().splitlines()[-1])
            # the seconds of the labelled footage (the run's summary counts the processed videos')
            infer["video_seconds"] = sum(v["duration_s"] for v in _labelled(env["ACTREC_STORE"], date))
            wall = time.perf_counter() - t0
            report = json.loads(
                _run(["eval", "--date", date, "--model", args.model, "--format", "json"], env)
                .strip()
                .splitlines()[-1]
            )
            results[name] = {
                "date": date,
                "via": args.via,
                "synth_args": synth_args,
                "video_s": infer["video_seconds"],
                "infer_wall_s": round(wall, 1),
                "eval": report,
            }
            print(
                f"{name}: F1@0.5 {report['f1']:.3f}  P {report['precision']:.3f}  R {report['recall']:.3f}  "
                f"({report['gt_events']} GT events, {infer['video_seconds'] / 60:.0f} min)",
                flush=True,
            )
            for label, m in report["per_class"].items():
                print(
                    f"    {label:9s} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} n={m['support']}"
                )
    for name, res in results.items():
        res["bar"] = quality_bar(res["eval"], shifted=name == "shifted")
        verdict = "met" if res["bar"]["met"] else "NOT met: " + "; ".join(res["bar"]["failures"])
        print(f"quality bar ({name}): {verdict}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
