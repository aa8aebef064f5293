"""Speed benchmarks (`make bench`). Speed is measured here, never asserted in tests.

Benchmarks:
- synth: footage seconds rendered per wall second, one core (taskset -c 0), 320x240 @ 15 fps.
- probe: discovery probe time per file on a local store and on S3 (moto's HTTP server on
  127.0.0.1), and remote bytes read per probe vs file size.
- model: the shipped model's parameters, FLOPs, clips/s on 1 and 2 CPU threads, and how fast
  one core decodes 720p footage onto the model's grid (the ratio says which side is the bottleneck).
- timings: the figures the test suite no longer asserts as wall-clock bounds (bench/suite_timings.py:
  DAG parse, 10,000-event validation, 1,205-key S3 listing, discovery past a hung probe).

Results are printed and written to bench/results/<name>.json.
Usage: python bench/run_all.py [--only synth|probe|model|timings] [--synth-minutes 10] [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("ACTREC_BENCH_RESULTS") or ROOT / "bench" / "results")
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


def _model_worker(threads: int) -> dict:
    """Clip throughput of the shipped model's extractor + head with ``threads`` torch threads."""
    import torch

    from actrec_batch.model import DEFAULT_MODEL, load_model

    torch.set_num_threads(threads)
    model = load_model(DEFAULT_MODEL, device="cpu")
    cfg = model.card.extractor.config
    h, w, t, hop = cfg["frame_height"], cfg["frame_width"], cfg["clip_len"], cfg["clip_hop"]
    n_clips = 512
    frames = torch.randint(0, 256, ((n_clips - 1) * hop + t + 1, h, w, 3), dtype=torch.uint8)
    from actrec_batch.model.features import clip_embeddings, frame_codes, head_scores

    with torch.inference_mode():
        frame_codes(model.extractor, frames[:64], True, "cpu")
        t0 = time.perf_counter()
        codes = frame_codes(model.extractor, frames, True, "cpu")
        emb = clip_embeddings(model.extractor, codes, n_clips, t, hop)
        head_scores(model.head, emb.numpy(), "cpu")
        wall = time.perf_counter() - t0
    return {
        "threads": threads,
        "clips_per_s": round(n_clips / wall, 1),
        "grid_frames_per_s": round(frames.shape[0] / wall, 1),
        "video_s_per_s": round(frames.shape[0] / cfg["sample_fps"] / wall, 1),
    }


def bench_model() -> dict:
    """Model size, FLOPs, clips/s on 1 and 2 cores, and 720p decode speed for comparison."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from actrec_batch.model import DEFAULT_MODEL, load_model

    model = load_model(DEFAULT_MODEL, device="cpu")
    cfg = model.card.extractor.config
    frame = torch.zeros((1, cfg["frame_height"], cfg["frame_width"], 3), dtype=torch.uint8)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        model.extractor.encode_frames(frame, frame)
    per_frame = fc.get_total_flops()
    codes = torch.zeros((1, cfg["clip_len"], model.extractor.cfg.code_dim))
    with torch.inference_mode(), FlopCounterMode(display=False) as fc2:
        model.extractor.encode_clips(codes)
    per_clip_pool = fc2.get_total_flops()
    result = {
        "params_extractor": sum(p.numel() for p in model.extractor.parameters()),
        "params_head": sum(p.numel() for p in model.head.parameters()),
        "flops_per_grid_frame": per_frame,
        # each clip adds clip_hop new grid frames (frames are shared between overlapping clips)
        "flops_per_clip": per_frame * cfg["clip_hop"] + per_clip_pool,
        "input": f"{cfg['frame_width']}x{cfg['frame_height']} @ {cfg['sample_fps']} fps, clip {cfg['clip_len']}",
    }
    # A fresh interpreter per measurement (spawn: forking after torch started its threads can deadlock).
    spawn = multiprocessing.get_context("spawn")
    for key, threads in (("cpu_1_thread", 1), ("cpu_2_threads", 2)):
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            result[key] = pool.submit(_model_worker, threads).result()
    result["decode_720p"] = _decode_720p()
    need = result["decode_720p"]["video_s_per_s_1_core"]
    result["inference_to_decode_ratio_1_core"] = round(result["cpu_1_thread"]["video_s_per_s"] / need, 2)
    _save("model", result)
    return result


def _decode_720p() -> dict:
    """Decode synthetic 1280x720 @ 30 fps h264 onto the model grid with one decoder thread."""
    from actrec_batch.model import DEFAULT_MODEL, load_model
    from actrec_batch.model.sampling import build_grid, decode_grid_frames
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage
    from actrec_batch.video import DecodeStats, frame_timestamps

    cfg = load_model(DEFAULT_MODEL, device="cpu").card.extractor.config
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(tmp)
        rep = synth_footage(
            store, date=DATE, cameras=1, minutes=0.5, width=1280, height=720, fps=30.0, seed=9, progress=False
        )
        path = store.local_path(rep.videos[0])
        t0 = time.perf_counter()
        times = frame_timestamps(path)
        grid = build_grid(
            times, sample_fps=cfg["sample_fps"], clip_len=cfg["clip_len"], clip_hop=cfg["clip_hop"]
        )
        stats = DecodeStats()
        decode_grid_frames(
            path,
            grid,
            range(len(grid.grid_times)),
            width=cfg["frame_width"],
            height=cfg["frame_height"],
            frame_times=times,
            stats=stats,
        )
        wall = time.perf_counter() - t0
    return {
        "video_s": rep.footage_s,
        "wall_s": round(wall, 2),
        "frames_decoded": stats.frames_decoded,
        "video_s_per_s_1_core": round(rep.footage_s / wall, 2),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["synth", "probe", "model", "timings"])
    p.add_argument("--synth-minutes", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="smaller inputs (a smoke run)")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if args.only in (None, "synth"):
        bench_synth(1.0 if args.quick else args.synth_minutes)
    if args.only in (None, "probe"):
        bench_probe(args.quick)
    if args.only in (None, "model"):
        bench_model()
    if args.only in (None, "timings"):
        import suite_timings  # bench/ is on sys.path: this script's own folder

        suite_timings.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
