"""`actrec train-head` against the shipped head, on the model card's held-out footage.

1. Labelled footage: the 4 hours `actrec train` fitted reference@3's head on, rendered by `actrec synth`
   with camera set-ups varied per video (training.TRAIN_FOOTAGE: 32 videos of 7.5 min, seeds
   1001-1032), one video per date (2000-01-01..2000-02-01). Reused when present.
2. `actrec train-head --model reference@3 --dates 2000-01-01..2000-02-01 --out <workdir>/trained-head`:
   the shipped backbone's embeddings through the pipeline's feature cache, a new head fitted on 24
   videos (3 h), the post-processing tuned on the 8 held out (1 h). (`actrec train` also tuned on
   72 more minutes, VAL_FOOTAGE; train-head makes do with the user's labelled footage alone.)
3. The model card's held-out sets (bench/quality.py SETS: seed 7, 32 min; seed 8 shifted, 16 min):
   `actrec synth`, then `actrec run --model reference@3` (decodes and fills the cache) and
   `actrec rescore --model <trained-head>` (decodes nothing: the same backbone), then `actrec eval`
   of each model.

The bar: the trained head's F1@0.5 on seed 7 within 0.03 of the shipped head's.

Usage: python bench/train_head.py [--workdir DIR] [--quick]
Prints each command, then a table; writes bench/results/train_head.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from quality import SETS, _run  # noqa: E402 - bench/ is not a package

from actrec_batch.model import DEFAULT_MODEL  # noqa: E402

BAR_F1_GAP = 0.03


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def _dates(keys: list[str]) -> str:
    """``first..last`` of the footage keys' dates (one video per consecutive date)."""
    dates = sorted({k.split("date=", 1)[1][:10] for k in keys})
    return f"{dates[0]}..{dates[-1]}"


def main(argv: list[str]) -> int:
    from actrec_batch.training import TRAIN_FOOTAGE, render_footage, varied_footage

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default=str(ROOT / ".actrec" / "bench-train-head"), help="kept and reused")
    p.add_argument("--model", default=DEFAULT_MODEL, help="the backbone bundle, and the head to compare with")
    p.add_argument("--quick", action="store_true", help="minutes instead of hours of footage (a smoke run)")
    args = p.parse_args(argv)
    work = Path(args.workdir)
    store = work / ("store-quick" if args.quick else "store")
    env = {
        **os.environ,
        "ACTREC_STORE": str(store),
        "ACTREC_WAREHOUSE_URL": f"duckdb:///{store}.duckdb",
        "ACTREC_LOG_LEVEL": "WARNING",
    }
    specs = varied_footage(1001, 4, 0.5) if args.quick else TRAIN_FOOTAGE
    t0 = time.perf_counter()
    print(f"rendering (or reusing) the labelled footage in {store}", flush=True)
    dates = _dates(render_footage(store, specs))
    render_s = time.perf_counter() - t0
    out_dir = work / ("trained-head-quick" if args.quick else "trained-head")
    t1 = time.perf_counter()
    trained = _last_json(
        _run(["train-head", "--model", args.model, "--dates", dates, "--out", str(out_dir), "--json"], env)
    )
    train_head_s = time.perf_counter() - t1
    print(
        f"train-head: {trained['videos_train']} videos fitted on, {trained['videos_validation']} held out; "
        f"held-out F1@0.5 {trained['validation']['f1']:.3f}; {trained['frames_decoded']} frames decoded; "
        f"{train_head_s:.0f} s",
        flush=True,
    )
    results: dict = {
        "labelled_dates": dates,
        "labelled_minutes": round(sum(s.minutes for s in specs), 1),
        "render_s": round(render_s, 1),
        "train_head": {**trained, "wall_s": round(train_head_s, 1)},
        "held_out": {},
    }
    for name, (date, synth_args) in SETS.items():
        if args.quick:
            synth_args = [*synth_args[:2], "--minutes", "1", *synth_args[4:]]
        if (store / "footage" / f"date={date}").is_dir():  # deterministic per seed: score it again
            print(f"reusing the footage of {date} in {store}", flush=True)
        else:
            _run(["synth", "--date", date, *synth_args, "--file-minutes", "8", "--quiet"], env)
        scores = {}
        for model, command in ((args.model, "run"), (str(out_dir), "rescore")):
            span = ["--date", date] if command == "run" else ["--from", date, "--to", date]
            summary = _last_json(_run([command, *span, "--model", model, "--json"], env))
            report = _last_json(_run(["eval", "--date", date, "--model", model, "--format", "json"], env))
            scores[model] = {"eval": report, "frames_decoded": summary["frames_decoded"]}
        shipped, fitted = (scores[m]["eval"]["f1"] for m in (args.model, str(out_dir)))
        results["held_out"][name] = {
            "date": date,
            "synth_args": synth_args,
            "shipped": scores[args.model],
            "trained_head": scores[str(out_dir)],
            "f1_gap": round(shipped - fitted, 4),
        }
        print(
            f"{name} ({date}): shipped {args.model} F1@0.5 {shipped:.3f}, trained head {fitted:.3f}",
            flush=True,
        )
        labels = scores[args.model]["eval"]["per_class"]
        for label in labels:
            a, b = (scores[m]["eval"]["per_class"][label]["f1"] for m in (args.model, str(out_dir)))
            print(f"    {label:9s} shipped F1 {a:.3f}  trained head F1 {b:.3f}")
    gap = results["held_out"]["in_distribution"]["f1_gap"]
    results["bar"] = {"max_f1_gap": BAR_F1_GAP, "gap": gap, "met": gap <= BAR_F1_GAP}
    print(
        f"bar (in_distribution F1 within {BAR_F1_GAP} of the shipped head): {'met' if gap <= BAR_F1_GAP else 'NOT met'}"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / ("train_head-quick.json" if args.quick else "train_head.json")).write_text(
        json.dumps(results, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
