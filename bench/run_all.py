"""Speed benchmarks (`make bench`). Speed is measured here, never asserted in tests.

Benchmarks:
- synth: footage seconds rendered per wall second, one core (taskset -c 0), 320x240 @ 15 fps.
- probe: discovery probe time per file on a local store and on S3 (moto's HTTP server on
  127.0.0.1), and remote bytes read per probe vs file size.

Results are printed and written to bench/results/<name>.json.
Usage: python bench/run_all.py [--only synth|probe] [--synth-minutes 10] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATE = dt.date(2026, 11, 24)


def _save(name: str, payload: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    print(f"{name}: {json.dumps(payload)}")


def bench_synth(minutes: float) -> dict:
    """Render `minutes` of one camera on one core; report footage-seconds per wall-second."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "actrec_batch",
            "synth",
            "--date",
            str(DATE),
            "--cameras",
            "1",
            "--minutes",
            str(minutes),
            "--file-minutes",
            str(minutes),
            "--seed",
            "1",
            "--json",
            "--quiet",
            "--store",
            f"{tmp}/store",
        ]
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", "0", *cmd]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        rep = json.loads(out.stdout.strip().splitlines()[-1])
    result = {
        "footage_s": rep["footage_s"],
        "synth_wall_s": rep["wall_s"],
        "command_wall_s": round(wall, 2),
        "realtime_factor": round(rep["footage_s"] / rep["wall_s"], 2),
        "render_s": rep.get("render_s"),
        "encode_s": rep.get("encode_s"),
        "cores": 1 if shutil.which("taskset") else os.cpu_count(),
        "resolution": "320x240@15fps h264",
    }
    _save("synth", result)
    return result


def bench_probe(quick: bool) -> dict:
    from moto.server import ThreadedMotoServer

    from actrec_batch.config import load_settings
    from actrec_batch.discovery import discover
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    minutes = 1.0 if quick else 4.0
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        local = open_store(f"{tmp}/store")
        # One file per camera, several MB each, so header-only probing shows against file size.
        synth_footage(
            local, date=DATE, cameras=6, minutes=minutes, file_minutes=minutes, seed=5, progress=False
        )
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
            from actrec_batch.storage import make_s3_client

            make_s3_client().create_bucket(Bucket="bench")
            remote = open_store("s3://bench/night")
            for obj in local.list("footage/"):
                remote.put_file(obj.key, local.local_path(obj.key))
            for name, root in (("local", f"{tmp}/store"), ("s3", "s3://bench/night")):
                for method, workers in [(m, w) for m in ("fast", "sha256") for w in (1, 8)]:
                    settings = load_settings(
                        {"store": root, "content_id": method, "probe_workers": workers}, env={}
                    )
                    t0 = time.perf_counter()
                    res = discover(settings, DATE).to_json()
                    wall = time.perf_counter() - t0
                    sizes = sum(o.size for o in open_store(root).list("footage/") if o.key.endswith(".mp4"))
                    results[f"{name}_{method}_workers{workers}"] = {
                        "files": res["videos_discovered"],
                        "probe_ms_per_file": round(res["probe_s_per_file"] * 1000, 2),
                        "discover_wall_s": round(wall, 2),
                        "probe_bytes_read": res["probe_bytes_read"],
                        "footage_bytes": sizes,
                        "bytes_hashed": res["bytes_hashed"],
                    }
        finally:
            server.stop()
    _save("probe", results)
    return results


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["synth", "probe"])
    p.add_argument("--synth-minutes", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="smaller inputs (a smoke run)")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if args.only in (None, "synth"):
        bench_synth(1.0 if args.quick else args.synth_minutes)
    if args.only in (None, "probe"):
        bench_probe(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
