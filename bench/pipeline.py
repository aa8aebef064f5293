"""The Ray inference job on a synthetic night, through the documented command (`actrec infer`).

Every figure is the wall time of the whole command, Python and Ray start-up included:
- cold: empty feature cache and no checkpoints; throughput in video-seconds per wall-second;
- warm: the same night again (every unit is skipped from its checkpoint);
- rescore: the same night with a different head on the same extractor (every unit is a cache
  hit, nothing is decoded); the goal is rescore / cold <= 1/30;
- driver kill: the cold run SIGKILLed once half of its units are committed, then rerun; goal:
  (killed run + rerun) <= 1.1 x the cold run;
- workers: a cold run pinned (taskset) to 1 core with a 1-CPU local Ray, and to 2 cores with a
  2-CPU one (goal: >= 1.7x).

Usage: python bench/pipeline.py [--cameras 4] [--minutes 15] [--segment-s 60] [--workdir DIR] [--cluster]
Footage in --workdir is kept and reused. Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATE = dt.date(2026, 11, 10)
ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _actrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "actrec_batch", *args]


def _run(cmd: list[str]) -> tuple[dict, float]:
    print("$", " ".join(c for c in cmd if c not in (sys.executable, "-m")), flush=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=ENV, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return json.loads(out.stdout.strip().splitlines()[-1]), wall


def _reset(store: Path) -> None:
    for sub in ("cache", "checkpoints", "staging", "runs"):
        shutil.rmtree(store / sub, ignore_errors=True)


def _markers(store: Path) -> int:
    root = store / "checkpoints" / f"date={DATE}"
    return sum(1 for p in root.rglob("*.json")) if root.exists() else 0


def _rehead(dest: Path) -> Path:
    from actrec_batch.model import DEFAULT_MODEL, save_with_new_head

    if not (dest / "card.json").exists():
        save_with_new_head(DEFAULT_MODEL, dest, name="rehead", version="1", seed=11)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--segment-s", type=float, default=60.0)
    ap.add_argument("--workdir", default=str(ROOT / ".actrec" / "bench-pipeline"))
    ap.add_argument("--skip", nargs="*", default=[], choices=["kill", "workers"])
    ap.add_argument(
        "--cluster",
        action="store_true",
        help="run against a persistent local Ray head (as in production, where the cluster outlives the "
        "driver) instead of a Ray started by each command; skips the workers comparison",
    )
    args = ap.parse_args()
    if args.cluster:
        args.skip = [*args.skip, "workers"]
        ENV["RAY_AUTH_MODE"] = (
            "token"  # `ray start` turns on token authentication; drivers read ~/.ray/auth_token
        )
        with _ray_head() as address:
            return _bench(args, ["--ray-address", address])
    return _bench(args, [])


@contextlib.contextmanager
def _ray_head():
    """A Ray head of this benchmark's own (tests/ray_head.py): never `ray stop`, which would stop
    every Ray on the machine."""
    import socket

    sys.path.insert(0, str(ROOT / "tests"))
    from ray_head import free_port, own_ray_head

    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    port = free_port()
    args = [
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--include-dashboard=false",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
    ]
    log = Path(temp) / "ray-start.log"
    try:
        with own_ray_head(args, env=ENV, log=log) as head:
            deadline = time.monotonic() + 120
            while True:  # until the head's GCS accepts connections
                assert head.poll() is None, log.read_text()[-3000:]
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
                assert time.monotonic() < deadline, f"the Ray head did not come up in 120 s: {log}"
                time.sleep(0.5)
            yield f"127.0.0.1:{port}"
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _bench(args, extra: list[str]) -> int:
    work = Path(args.workdir)
    store = work / "store"
    common = [
        "--date",
        str(DATE),
        "--store",
        str(store),
        "--segment-s",
        f"{args.segment_s:g}",
        "--json",
        *extra,
    ]
    if not (store / "manifests" / f"date={DATE}" / "manifest.parquet").exists():
        subprocess.run(
            _actrec(
                "synth",
                "--date",
                str(DATE),
                "--cameras",
                str(args.cameras),
                "--minutes",
                f"{args.minutes:g}",
                "--seed",
                "31",
                "--store",
                str(store),
                "--quiet",
            ),
            env=ENV,
            check=True,
        )
        subprocess.run(
            _actrec("discover", "--date", str(DATE), "--store", str(store), "--json"), env=ENV, check=True
        )
    out: dict = {
        "cpus": os.cpu_count(),
        "segment_s": args.segment_s,
        "ray": "persistent head" if extra else "per command",
    }

    _reset(store)
    cold, cold_wall = _run(_actrec("infer", *common))
    out["footage_s"] = cold["video_seconds"]
    out["units"] = cold["units_total"]
    out["cold"] = {
        "wall_s": round(cold_wall, 2),
        "video_s_per_wall_s": round(cold["video_seconds"] / cold_wall, 2),
        "frames_decoded": cold["frames_decoded"],
    }
    warm, warm_wall = _run(_actrec("infer", *common))
    out["warm"] = {
        "wall_s": round(warm_wall, 2),
        "units_skipped_checkpoint": warm["units_skipped_checkpoint"],
        "frames_decoded": warm["frames_decoded"],
    }
    bundle = _rehead(work / "rehead-model")
    rescore, rescore_wall = _run(_actrec("infer", *common, "--model", str(bundle)))
    out["rescore"] = {
        "wall_s": round(rescore_wall, 2),
        "cache_hits": rescore["cache_hits"],
        "frames_decoded": rescore["frames_decoded"],
        "ratio_to_cold": round(rescore_wall / cold_wall, 4),
        "goal": "<= 1/30 = 0.0333",
    }

    if "kill" not in args.skip:
        _reset(store)
        cmd = _actrec("infer", *common)
        print("$", " ".join(cmd[2:]), "(SIGKILL at 50% of units)", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while _markers(store) < out["units"] // 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_wall = time.perf_counter() - t0
        at_kill = _markers(store)
        rerun, rerun_wall = _run(cmd)
        out["driver_kill"] = {
            "units_committed_at_kill": at_kill,
            "killed_run_wall_s": round(killed_wall, 2),
            "rerun_wall_s": round(rerun_wall, 2),
            "rerun_units_computed": rerun["units_computed"],
            "rerun_units_skipped": rerun["units_skipped_checkpoint"] + rerun["cache_hits"],
            "total_vs_clean": round((killed_wall + rerun_wall) / cold_wall, 3),
            "goal": "<= 1.1",
        }

    if "workers" not in args.skip:
        walls = {}
        for cpus in (1, 2):  # the whole process tree pinned to that many cores, and Ray told so
            _reset(store)
            pin = ["taskset", "-c", ",".join(str(c) for c in range(cpus))] if shutil.which("taskset") else []
            res, wall = _run([*pin, *_actrec("infer", *common, "--local-ray-cpus", str(cpus))])
            walls[cpus] = wall
            out[f"workers_{cpus}"] = {
                "wall_s": round(wall, 2),
                "video_s_per_wall_s": round(res["video_seconds"] / wall, 2),
            }
        out["workers_speedup"] = round(walls[1] / walls[2], 3)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("pipeline-cluster.json" if extra else "pipeline.json")).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
