"""Rescore against cold, on hours of footage: the fixed start-up apart from the per-hour cost.

For each night size (default 1 h and 4 h of 320x240 15 fps footage, 30-min files, 2 and 8 cameras):
- cold: ``actrec run --date D`` on a fresh store (discover, validate, decode + embed on Ray,
  validate, publish, cost, quality), wall time of the whole command, ``--repeats`` times, each on
  a fresh store and warehouse (the ratio is against their median);
- rescore: ``actrec rescore --from D --to D --model M`` with a new head on the same extractor
  (every unit a feature-cache hit, nothing decoded, no Ray), a fresh head each repeat;
- the goal: rescore / cold <= 1/30 on the largest night (>= 4 h).

The rescore's wall time is fitted as ``fixed + per_hour x hours`` over the sizes (least squares),
so the start-up (interpreter, imports, model load, GX, warehouse) is reported apart from the
marginal cost per hour of footage (reading cached features, the head, events). ``startup``
times ``python -m actrec_batch --help`` and the imports a rescore needs, for the floor.
``--profile`` cProfiles one rescore in-process (bench/profiles/rescore.txt).

Usage: python bench/rescore.py [--smoke] [--repeats 3] [--hours 1 4] [--profile]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import footage  # noqa: E402
from harness import Figure, Goal, Section  # noqa: E402
from runs import ENV, actrec, finish, fresh_store, rel, run_json, save_profile, section_args  # noqa: E402

TARGET = 1 / 30


def night(hours: float, smoke: bool) -> Path:
    if smoke:  # 2 x 15 s at 160x120: checks the script only
        return footage.synthetic_night(160, 120, 10, 0.25)
    return footage.synthetic_night(320, 240, 15, 30, cameras=max(1, round(hours * 2)))


def rehead(dest: Path, seed: int) -> Path:
    """A bundle with the default model's extractor and a fresh head (a new model version)."""
    code = (
        "import sys; from pathlib import Path; from actrec_batch.model import DEFAULT_MODEL, save_with_new_head; "
        f"save_with_new_head(DEFAULT_MODEL, Path({str(dest)!r}), name='rehead', version='{seed}', seed={seed})"
    )
    subprocess.run([sys.executable, "-c", code], env=ENV, check=True, capture_output=True)
    return dest


def startup_s() -> tuple[float, float]:
    """(``actrec --help`` wall, importing what a rescore imports) in a fresh interpreter, seconds."""
    t0 = time.perf_counter()
    subprocess.run(actrec("--help"), env=ENV, check=True, capture_output=True)
    helps = time.perf_counter() - t0
    code = (
        "import time; t=time.perf_counter(); import torch, great_expectations, duckdb, pyarrow.dataset; "
        "import actrec_batch.pipeline.nightly, actrec_batch.pipeline.job; print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, check=True, capture_output=True, text=True)
    return helps, float(out.stdout.strip().splitlines()[-1])


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares ``y = a + b x`` over ``(x, y)`` points: ``(a, b)``; one point: ``(y, 0)``."""
    if len({x for x, _ in points}) < 2:
        return (sum(y for _, y in points) / len(points), 0.0)
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - b * mx, b


def profiled_rescore(store: Path, model: Path, warehouse: str, out: Path) -> dict:
    code = f"""
import cProfile, json, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
t0 = time.perf_counter()
prof = cProfile.Profile(); prof.enable()
from actrec_batch.cli.main import main
rc = main(["rescore", "--from", {footage.DATE.isoformat()!r}, "--to", {footage.DATE.isoformat()!r}, "--store",
           {str(store)!r}, "--warehouse", {warehouse!r}, "--model", {str(model)!r}, "--json"])
prof.disable()
from runs import profile_text
modules = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "ray", "great_expectations", "av", "sqlalchemy"))
json.dump({{"rc": rc, "wall_s": time.perf_counter() - t0, "profile": profile_text(prof),
           "heavy_packages": sorted({{m.split(".")[0] for m in modules}})}}, open({str(out)!r}, "w"))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"profiled rescore failed ({proc.returncode}): {proc.stderr.strip()[-3000:]}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = section_args(__doc__)
    ap.add_argument("--hours", type=float, nargs="*", default=[1.0, 4.0], help="night sizes (default 1 4)")
    ap.add_argument("--profile", action="store_true", help="cProfile one rescore of the largest night")
    args = ap.parse_args(argv)
    hours_list = [1.0] if args.smoke else sorted(args.hours)  # smoke: night() ignores the size
    repeats = 1 if args.smoke else args.repeats
    section = Section(
        "rescore",
        "Rescore (a new head over cached features) against the cold run",
        footage="smoke: 2 x 15 s 160x120"
        if args.smoke
        else ", ".join(f"{h:g} h" for h in hours_list) + " of 320x240 15 fps, 30-min files",
        smoke=args.smoke,
    )
    points: list[tuple[float, float]] = []
    cold_walls: dict[float, float] = {}
    with tempfile.TemporaryDirectory(prefix="actrec-rescore-") as tmp:
        work = Path(tmp)
        for hours in hours_list:
            src = night(hours, args.smoke)
            seconds = footage.footage_seconds(src)
            store = work / f"store-{hours:g}h"
            warehouse_file = work / f"wh-{hours:g}h.duckdb"
            warehouse = f"duckdb:///{warehouse_file}"
            common = [
                "--date",
                footage.DATE.isoformat(),
                "--store",
                str(store),
                "--warehouse",
                warehouse,
                "--json",
            ]
            cold_runs = []
            for _ in range(repeats):  # each on a fresh store and warehouse; the rescores use the last
                fresh_store(src, store)
                warehouse_file.unlink(missing_ok=True)
                wall, cold = run_json(actrec("run", *common))
                cold_runs.append(wall)
            cold_wall = statistics.median(cold_runs)
            cold_walls[hours] = cold_wall
            tag = f"{seconds / 3600:.2f}h"
            section.figures.append(
                Figure(
                    f"cold.{tag}",
                    f"cold `actrec run`, {seconds / 3600:.2f} h",
                    "s",
                    cold_runs,
                    {
                        "footage_s": seconds,
                        "units": cold["units_total"],
                        "frames_decoded": cold["frames_decoded"],
                    },
                )
            )
            walls, hits = [], []
            for i in range(repeats):
                model = rehead(work / f"rehead-{hours:g}-{i}", seed=11 + i)
                wall, out = run_json(
                    actrec(
                        "rescore",
                        "--from",
                        footage.DATE.isoformat(),
                        "--to",
                        footage.DATE.isoformat(),
                        "--store",
                        str(store),
                        "--warehouse",
                        warehouse,
                        "--model",
                        str(model),
                        "--json",
                    )
                )
                if out.get("frames_decoded"):
                    raise RuntimeError(f"the rescore of {store} decoded {out['frames_decoded']} frames")
                walls.append(wall)
                hits.append(out.get("cache_hits"))
                points.append((seconds / 3600, wall))
            section.figures.append(
                Figure(
                    f"rescore.{tag}",
                    f"`actrec rescore`, {seconds / 3600:.2f} h",
                    "s",
                    walls,
                    {"footage_s": seconds, "cache_hits": hits},
                )
            )
            section.figures.append(
                Figure(
                    f"ratio.{tag}",
                    f"rescore / cold, {seconds / 3600:.2f} h",
                    "ratio",
                    [w / cold_wall for w in walls],
                )
            )
            if args.profile and hours == hours_list[-1]:
                prof = profiled_rescore(
                    store, rehead(work / "rehead-prof", seed=99), warehouse, work / "prof.json"
                )
                path = save_profile(
                    "rescore.txt",
                    json.dumps({k: v for k, v in prof.items() if k != "profile"}, indent=2)
                    + "\n\n"
                    + prof["profile"],
                )
                section.notes.append(
                    f"profile of a rescore of {tag}: {rel(path)}; imports {prof['heavy_packages']}"
                )
        fixed, per_hour = fit(points)
        section.notes.append(
            f"rescore wall = {fixed:.2f} s fixed + {per_hour:.3f} s per hour of footage (least squares over {len(points)} runs)"
        )
        help_runs, import_runs = zip(*(startup_s() for _ in range(repeats)), strict=True)
    section.figures += [
        Figure("startup.help", "`python -m actrec_batch --help` (interpreter + CLI)", "s", list(help_runs)),
        Figure(
            "startup.imports", "importing torch, GX, duckdb, pyarrow and the pipeline", "s", list(import_runs)
        ),
    ]
    largest = max(hours_list)  # the loop's last night: its tag is the last one set
    ratio = section.figure(f"ratio.{tag}")
    goal = Goal(
        "rescore_vs_cold",
        f"rescore <= 1/30 of cold on {tag} of footage",
        ratio.id,
        "<=",
        TARGET,
        ratio.median,
    )
    if goal.holds is False:
        cold = cold_walls[largest]
        goal.why_missed = (
            f"rescore {section.figure(f'rescore.{tag}').median:.1f} s vs cold {cold:.1f} s: the rescore is "
            f"{fixed:.1f} s fixed (interpreter, torch/GX/duckdb imports, model load, GX suite, warehouse, "
            f"reports) + {per_hour:.2f} s per hour; 1/30 of cold is {cold / 30:.1f} s"
        )
    section.goals.append(goal)
    return finish(section, args.results)


if __name__ == "__main__":
    sys.exit(main())
