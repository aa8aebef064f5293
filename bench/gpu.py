"""GPU check and benchmark of the model path the Ray inference actors run (no Ray, no decoding).

What it exercises, all through the library's own functions:
- device auto-selection (``select_device(None)``, what ``load_model(device=None)`` and a GPU actor use:
  ``ray_backend.py`` passes ``device=None`` to :class:`~actrec_batch.pipeline.work.Embedder` when an
  actor has a GPU);
- correctness: one deterministic synthetic video of grid frames (uint8 ``[N, 84, 112, 3]``, the shape
  ``decode_grid_frames`` gives the Embedder) through the shipped model's extractor (``encode_pairs`` +
  ``clip_embeddings``) and head (``head_scores``) on CPU and on the auto-selected device; max abs diff of
  embeddings and class probabilities, with torch's default float32 settings (what the pipeline runs:
  cuDNN may use TF32 for convolutions) and with TF32 off;
- the ``Embedder`` class itself (what the Ray actor wraps), on the same video cut into work units, its
  embeddings then scored on CPU as the job's driver does;
- throughput of the extractor (frames/s, clips/s, video-s/s) at several frames per encoder call, in
  float32 and under ``torch.autocast`` bfloat16, with frames coming from host memory (the pipeline's
  path: uint8 copied to the device per call) and already resident on the device; peak device memory;
  the Embedder's own throughput on a ``batch_frames``-sized call;
- how many CPU decode cores one device keeps busy, from the project's 720p decode figure.

Usage: python bench/gpu.py [--quick] [--out DIR] [--device auto|cpu|cuda] [--require-cuda]
Prints a JSON report (last line of stdout) and writes DIR/gpu.json (DIR: --out, else $OUT if set).
Exits 1 when CPU and device probabilities differ by more than 1e-3, or, with --require-cuda, when the
automatic choice is not CUDA.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
import traceback
import types
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the package is not installed on the device machine
    sys.path.insert(0, str(ROOT))

PROB_TOL = 1e-3  # max abs difference of class probabilities, CPU vs device, before the check fails
# 720p30 h264 decoded onto the model's grid by one process (bench/run_all.py, bench/results/model.json)
DECODE_720P_VIDEO_S_PER_S = 26.05


# ------------------------------------------------------------------------- imports without S3 deps

# boto3/botocore modules and names that actrec_batch/storage/s3.py imports at module level.
_S3_IMPORTS = {
    "boto3": (),
    "boto3.exceptions": ("S3UploadFailedError",),
    "boto3.s3": (),
    "boto3.s3.transfer": ("TransferConfig",),
    "botocore": (),
    "botocore.config": ("Config",),
    "botocore.exceptions": (
        "BotoCoreError",
        "ClientError",
        "CredentialRetrievalError",
        "EndpointConnectionError",
        "NoCredentialsError",
        "PartialCredentialsError",
    ),
}


def _stub_missing_s3_packages() -> list[str]:
    """Placeholder boto3/botocore modules, installed only where the real ones are missing.

    Why: actrec_batch.model.card and .loading import actrec_batch.storage, whose __init__ imports
    actrec_batch.storage.s3, which imports boto3 and botocore at import time. They are needed only for
    s3:// stores; this bench reads the shipped bundle from the package directory. The device machine has
    no boto3, and library files are not edited for a bench. Every placeholder name is an exception class
    (so the library's ``except`` clauses stay valid) whose construction raises ModuleNotFoundError, so
    any real use of S3 fails loudly instead of silently.
    """
    stubbed = []
    for top in ("boto3", "botocore"):
        if importlib.util.find_spec(top) is not None:
            continue
        for name, attrs in _S3_IMPORTS.items():
            if name.split(".")[0] != top:
                continue
            mod = types.ModuleType(name, f"placeholder for missing {top} (bench/gpu.py)")
            mod.__path__ = []  # a package, so its submodules resolve from sys.modules
            mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            for attr in attrs:
                setattr(mod, attr, _missing_class(top, attr))
            mod.__getattr__ = _missing_getattr(top)
            sys.modules[name] = mod
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, mod)
        stubbed.append(top)
    return stubbed


def _missing_class(package: str, attr: str) -> type:
    def __init__(self, *args, **kwargs):
        raise ModuleNotFoundError(f"{package} is not installed here ({attr} is a bench/gpu.py placeholder)")

    return type(attr, (Exception,), {"__init__": __init__})


def _missing_getattr(package: str):
    def __getattr__(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _missing_class(package, attr)

    return __getattr__


MISSING = [m for m in ("av", "ray", "boto3", "botocore") if importlib.util.find_spec(m) is None]
STUBBED = _stub_missing_s3_packages()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from actrec_batch.model import DEFAULT_MODEL  # noqa: E402
from actrec_batch.model import features as F  # noqa: E402
from actrec_batch.model.loading import load_model  # noqa: E402
from actrec_batch.model.refs import select_device  # noqa: E402
from actrec_batch.model.sampling import build_grid  # noqa: E402
from actrec_batch.pipeline.work import DecodedUnit, Embedder, UnitSpec  # noqa: E402


def log(msg: str) -> None:
    print(f"[gpu.py {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- synthetic frames


def synthetic_frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``[n, height, width, 3]`` uint8 grid frames: a blocky static background, a few coloured boxes
    moving and bobbing (motion between grid frames, as figures give), and sensor noise. Deterministic."""
    rng = np.random.default_rng(seed)
    bg = rng.uniform(40, 200, size=(6, 8, 3))
    bg = np.kron(bg, np.ones((height // 6 + 1, width // 8 + 1, 1)))[:height, :width]
    bg = bg + np.linspace(-20, 20, width)[None, :, None]
    out = np.empty((n, height, width, 3), np.uint8)
    boxes = [
        (rng.uniform(0, width), rng.uniform(10, height - 30), rng.uniform(-3, 3), rng.uniform(0.1, 0.6))
        for _ in range(3)
    ]
    colours = rng.uniform(0, 255, size=(len(boxes), 3))
    for k in range(n):
        img = bg.copy()
        for (x0, y0, vx, w), colour in zip(boxes, colours, strict=True):
            x = int((x0 + vx * k) % width)
            y = int(y0 + 8 * np.sin(w * k))
            img[max(y, 0) : y + 24, x : x + 10] = colour
        img += rng.normal(0, 4, size=img.shape)
        out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def fp32_mode(strict: bool):
    """``strict``: TF32 off for cuDNN convolutions and CUDA matmuls; else torch's defaults (as found)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        if strict:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def frame_batch(n: int):
    """Frames per encoder call in ``features.encode_pairs`` (the library's FRAME_BATCH, read per call)."""
    saved = F.FRAME_BATCH
    F.FRAME_BATCH = n
    try:
        yield
    finally:
        F.FRAME_BATCH = saved


def extract(model, frames, device: torch.device, precision: str = "fp32") -> torch.Tensor:
    """Clip embeddings ``[num_clips, D]`` of a whole video's grid frames (``frames[0]`` is grid frame 0),
    through the library's frame_pairs -> encode_pairs -> clip_embeddings, as embed_range runs them."""
    cfg = model.card.extractor.config
    n_clips = (frames.shape[0] - cfg["clip_len"]) // cfg["clip_hop"] + 1
    with torch.inference_mode(), autocast(device, precision):
        codes = F.encode_pairs(model.extractor, *F.frame_pairs(frames, False), device)
        return F.clip_embeddings(model.extractor, codes, n_clips, cfg["clip_len"], cfg["clip_hop"])


def score(model, emb: np.ndarray, device: torch.device, precision: str = "fp32") -> np.ndarray:
    with autocast(device, precision):
        return F.head_scores(model.head, emb, device)


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def timed(fn, device: torch.device, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def rates(frames: int, clips: int, seconds: float, sample_fps: float) -> dict:
    return {
        "frames_per_s": round(frames / seconds, 1),
        "clips_per_s": round(clips / seconds, 1),
        "video_s_per_s": round(frames / sample_fps / seconds, 1),
    }


# ----------------------------------------------------------------------------------------- checks


def env_report(device: torch.device) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf32 = {
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        }
    out = {
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "tf32_defaults": tf32,
        "stubbed_missing_packages": STUBBED,
        "missing_packages": MISSING,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_sms=props.multi_processor_count,
            compute_capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    out["device_used"] = str(device)
    return out


def correctness(cpu_model, dev_model, frames: np.ndarray, device: torch.device) -> dict:
    """The same video on CPU (reference, float32) and on ``device``: embeddings and probabilities."""
    ref_emb = extract(cpu_model, frames, torch.device("cpu")).float().numpy()
    ref_prob = score(cpu_model, ref_emb, torch.device("cpu"))
    out: dict = {
        "frames": int(frames.shape[0]),
        "clips": int(ref_emb.shape[0]),
        "prob_range": [round(float(ref_prob.min()), 4), round(float(ref_prob.max()), 4)],
        "embedding_abs_max": round(float(np.abs(ref_emb).max()), 3),
        "probs_between_0.05_and_0.95": int(((ref_prob > 0.05) & (ref_prob < 0.95)).sum()),
        "probs_total": int(ref_prob.size),
    }
    variants = [
        ("fp32_default", "fp32", False),
        ("fp32_strict_no_tf32", "fp32", True),
        ("bf16_autocast", "bf16", False),
    ]
    for name, precision, strict in variants:
        if device.type == "cpu" and strict:
            continue  # TF32 is a CUDA setting
        try:
            with fp32_mode(strict):
                emb = extract(dev_model, frames, device, precision).float().cpu().numpy()
                prob_dev_head = score(dev_model, emb, device, precision)
        except Exception as exc:  # noqa: BLE001 - e.g. a TF32 switch this torch refuses: keep the others
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        prob_cpu_head = score(cpu_model, emb, torch.device("cpu"))  # the Ray job scores on the driver's CPU
        out[name] = {
            "embedding_max_abs_diff": max_abs(emb, ref_emb),
            "embedding_max_abs_diff_rel_to_max": max_abs(emb, ref_emb) / float(np.abs(ref_emb).max()),
            "prob_max_abs_diff_head_on_device": max_abs(prob_dev_head, ref_prob),
            "prob_max_abs_diff_head_on_cpu": max_abs(prob_cpu_head, ref_prob),
            "decisions_flipped_at_0.5": int(((prob_dev_head > 0.5) != (ref_prob > 0.5)).sum()),
        }
    out["_ref"] = (ref_emb, ref_prob)
    return out


def make_units(frames: np.ndarray, sample_fps: float, clip_len: int, clip_hop: int, segment_s: float):
    """The video cut into work units as the job cuts it (segments of the clip grid): (units, frames)."""
    duration = frames.shape[0] / sample_fps
    grid = build_grid(
        np.arange(frames.shape[0]) / sample_fps,
        sample_fps=sample_fps,
        clip_len=clip_len,
        clip_hop=clip_hop,
        duration_s=duration,
    )
    assert np.array_equal(grid.grid_frames, np.arange(frames.shape[0])), "source frames are the grid frames"
    units, unit_frames = [], []
    starts = [*np.arange(0.0, duration, segment_s), duration + 1.0]  # the last is an empty unit
    for i, start in enumerate(starts):
        clips = grid.clips_in(float(start), float(start + segment_s))
        span = grid.grid_span(clips)
        spec = UnitSpec(
            "v0", "bench/v0.mp4", "file:///bench/v0.mp4", "c0", duration, i, start, start + segment_s, f"s{i}"
        )
        units.append(
            DecodedUnit(
                spec=spec,
                clips=clips,
                centers_s=grid.clip_centers(clips),
                first_is_context=len(clips) > 0 and span.start < clips.start * grid.clip_hop,
                frames_decoded=len(span),
                decode_s=0.0,
                cpu_s=0.0,
                attempt=0,
                node_id="local",
            )
        )
        unit_frames.append(frames[span.start : span.stop])
    return units, unit_frames, grid.num_clips


def embedder_check(embedder: Embedder, cpu_model, frames, ref_emb, ref_prob, cfg, device) -> dict:
    units, unit_frames, n_clips = make_units(
        frames, cfg["sample_fps"], cfg["clip_len"], cfg["clip_hop"], segment_s=20.0
    )
    out = embedder.embed(units, unit_frames)
    emb = np.concatenate([e.embeddings for e in out])
    got = [(e.clips.start, e.clips.stop) for e in out]
    assert emb.shape == ref_emb.shape, (emb.shape, ref_emb.shape, got)
    prob = score(cpu_model, emb, torch.device("cpu"))
    return {
        "device": embedder.device(),
        "units": len(units),
        "unit_clips": got,
        "clips": n_clips,
        "embedding_max_abs_diff_vs_cpu_reference": max_abs(emb, ref_emb),
        "prob_max_abs_diff_vs_cpu_reference": max_abs(prob, ref_prob),
        "usage": {k: v for k, v in embedder.usage().items() if k in ("device", "calls", "busy_s")},
    }


def embedder_speed(embedder: Embedder, frames: np.ndarray, cfg, device, warmup: int, runs: int) -> dict:
    """One embed() call of about batch_frames (1024, the setting's default) grid frames, as an actor gets."""
    units, unit_frames, n_clips = make_units(
        frames, cfg["sample_fps"], cfg["clip_len"], cfg["clip_hop"], segment_s=30.0
    )
    times = timed(lambda: embedder.embed(units, unit_frames), device, warmup, runs)
    n_frames = sum(f.shape[0] for f in unit_frames)
    med = statistics.median(times)
    return {
        "grid_frames_per_call": n_frames,
        "units_per_call": len(units),
        "clips_per_call": n_clips,
        "median_s": round(med, 5),
        **rates(n_frames, n_clips, med, cfg["sample_fps"]),
    }


def throughput(model, frames_host: torch.Tensor, device, configs, warmup: int, runs: int, rows: list) -> list:
    """Extractor (frame encoder + clip pooling) over ``frames_host`` through the library's encode_pairs,
    for each config ``(frames_from, precision, frames per encoder call, cudnn.benchmark)``; appends rows."""
    cfg = model.card.extractor.config
    n = frames_host.shape[0]
    n_clips = (n - cfg["clip_len"]) // cfg["clip_hop"] + 1
    pairs = {"host": F.frame_pairs(frames_host, False)}
    for residency, precision, b, bench_mode in configs:
        if residency not in pairs:
            pairs[residency] = tuple(t.to(device) for t in pairs["host"])
        cur, prev = pairs[residency]

        def run(cur=cur, prev=prev, precision=precision):
            with torch.inference_mode(), autocast(device, precision):
                codes = F.encode_pairs(model.extractor, cur, prev, device)
                return F.clip_embeddings(model.extractor, codes, n_clips, cfg["clip_len"], cfg["clip_hop"])

        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        saved = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = bench_mode
        try:
            with frame_batch(b), fp32_mode(precision == "fp32-strict"):
                times = timed(run, device, warmup, runs)
        finally:
            torch.backends.cudnn.benchmark = saved
        med = statistics.median(times)
        row = {
            "frames_from": residency,
            "precision": precision,
            "frames_per_encoder_call": b,
            "cudnn_benchmark": bench_mode,
            "frames": n,
            "runs": runs,
            "median_s": round(med, 5),
            "min_s": round(min(times), 5),
            **rates(n, n_clips, med, cfg["sample_fps"]),
        }
        if device.type == "cuda":
            # includes the resident frames (2 x frames x H x W x 3 bytes) for frames_from=device
            row["peak_mem_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        rows.append(row)
        log(
            f"  {residency:6s} {precision} b={b:6d} bench={bench_mode!s:5s}: {row['frames_per_s']:>10.1f} frames/s"
        )
    return rows


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small inputs, few runs (a smoke run)")
    p.add_argument("--device", default=None, help="auto (default: what the pipeline picks), cpu, cuda")
    p.add_argument("--require-cuda", action="store_true", help="fail unless the automatic choice is CUDA")
    p.add_argument("--out", type=Path, default=None, help="directory for gpu.json (default: $OUT)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    out_dir = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    failures: list[str] = []
    report: dict = {"model": args.model}

    def save() -> str:
        report["checks"] = {"passed": not failures, "failures": failures, "prob_tolerance": PROB_TOL}
        report["wall_s"] = round(time.perf_counter() - t_start, 1)
        text = json.dumps(report, indent=2)
        if out_dir is not None:  # after every section, so a run cut short still leaves what it measured
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "gpu.json").write_text(text + "\n")
        return text

    @contextlib.contextmanager
    def section(name: str):
        log(name)
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - report it and go on with the other sections
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            report.setdefault("errors", {})[name] = traceback.format_exc()
            log(f"ERROR in {name}: {type(exc).__name__}: {exc}")
        save()

    auto = select_device(None)
    device = select_device(args.device)
    on_gpu = device.type == "cuda"
    report["auto_selected_device"] = str(auto)
    report["env"] = env_report(device)
    log(f"auto-selected {auto}; running on {device}; torch {torch.__version__}; stubs: {STUBBED or 'none'}")
    if args.require_cuda and auto.type != "cuda":
        failures.append(f"auto-selected device is {auto}, not cuda")

    t0 = time.perf_counter()
    cpu_model = load_model(args.model, device="cpu")
    dev_model = load_model(args.model, device=args.device)  # None: auto, as GPU actors load it
    report["load_s"] = round(time.perf_counter() - t0, 2)
    report["loaded_on"] = str(dev_model.device)
    cfg = dict(cpu_model.card.extractor.config)
    report["sampling"] = {
        k: cfg[k] for k in ("frame_width", "frame_height", "sample_fps", "clip_len", "clip_hop")
    }
    h, w = cfg["frame_height"], cfg["frame_width"]

    n_video = 121 if args.quick else 601  # grid frames (16 s / 80 s at 7.5 fps)
    video = synthetic_frames(n_video, h, w, seed=1)
    ref_emb = ref_prob = embedder = None
    with section(f"correctness: {n_video} grid frames on cpu and {device}"):
        corr = correctness(cpu_model, dev_model, video, device)
        ref_emb, ref_prob = corr.pop("_ref")
        report["correctness"] = corr
        diff = corr["fp32_default"]["prob_max_abs_diff_head_on_device"]
        if diff > PROB_TOL:
            failures.append(f"fp32 probabilities, cpu vs {device}, differ by {diff:.2e} > {PROB_TOL}")

    with section("Embedder (what the Ray actor wraps): the same video cut into units"):
        embedder = Embedder(args.model, None, args.device)  # device None = auto, as ray_backend passes
        if ref_emb is not None:
            report["embedder"] = embedder_check(embedder, cpu_model, video, ref_emb, ref_prob, cfg, device)
            if report["embedder"]["prob_max_abs_diff_vs_cpu_reference"] > PROB_TOL:
                failures.append("Embedder probabilities differ from the CPU reference by more than 1e-3")
        if embedder.device() != str(device):
            failures.append(f"Embedder runs on {embedder.device()}, expected {device}")

    if args.quick:
        n_frames, batches, warmup, runs = 512, [256], 1, 2
    elif on_gpu:
        n_frames, batches, warmup, runs = 16384, [256, 1024, 4096, 16384], 3, 10
    else:
        n_frames, batches, warmup, runs = 2048, [256, 1024], 1, 3
    precisions = ["fp32", "fp32-strict", "bf16"] if on_gpu else ["fp32", "bf16"]  # strict: TF32 off
    if on_gpu and not torch.cuda.is_bf16_supported():
        precisions.remove("bf16")
    configs = [("host", prec, b, False) for prec in precisions for b in batches]
    if on_gpu:
        configs += [("device", prec, b, False) for prec in precisions for b in batches]
        configs += [
            (res, prec, b, True)
            for res in ("host", "device")
            for prec in ("fp32", "bf16")
            for b in (1024, 4096)
        ]
    rows: list = []
    report["throughput"] = rows
    with section(f"throughput: {n_frames} frames, {len(configs)} configs, {warmup} warm-up + {runs} runs"):
        base = synthetic_frames(min(n_frames, 1024), h, w, seed=2)
        reps = -(-n_frames // base.shape[0])
        frames_host = torch.from_numpy(np.concatenate([base] * reps)[:n_frames])
        throughput(dev_model, frames_host, device, configs, warmup, runs, rows)
        del frames_host

    with section("Embedder speed: one embed() call of ~1024 grid frames (batch_frames' default)"):
        if embedder is not None:
            speed_frames = synthetic_frames(1033, h, w, seed=3)
            report["embedder_speed"] = embedder_speed(
                embedder, speed_frames, cfg, device, warmup, max(runs, 3)
            )
            if on_gpu:  # the same call with TF32 off (the fix for the CPU/GPU mismatch would do this)
                with fp32_mode(True):
                    report["embedder_speed_tf32_off"] = embedder_speed(
                        embedder, speed_frames, cfg, device, warmup, max(runs, 3)
                    )

    with section("decode balance"):
        decode = DECODE_720P_VIDEO_S_PER_S
        with contextlib.suppress(OSError, KeyError, ValueError):
            decode = json.loads((ROOT / "bench/results/model.json").read_text())["decode_720p"][
                "video_s_per_s_1_core"
            ]
        busy = {}
        lib = [
            r
            for r in rows
            if (r["frames_from"], r["precision"], r["frames_per_encoder_call"])
            == ("host", "fp32", F.FRAME_BATCH)
            and not r["cudnn_benchmark"]
        ]
        if lib:
            busy["library_encoder_path_fp32_256_from_host"] = round(lib[0]["video_s_per_s"] / decode, 1)
        if "embedder_speed" in report:
            busy["embedder_call"] = round(report["embedder_speed"]["video_s_per_s"] / decode, 1)
        best = {}
        for label, pick in (("best_from_host", "host"), ("best_any", None)):
            cand = [r for r in rows if pick is None or r["frames_from"] == pick]
            if cand:
                top = max(cand, key=lambda r: r["frames_per_s"])
                busy[label] = round(top["video_s_per_s"] / decode, 1)
                best[label] = {
                    k: top[k]
                    for k in (
                        "frames_from",
                        "precision",
                        "frames_per_encoder_call",
                        "cudnn_benchmark",
                        "clips_per_s",
                    )
                }
        report["decode_balance"] = {
            "decode_720p_video_s_per_s_per_process": decode,
            "clips_per_video_s": cfg["sample_fps"] / cfg["clip_hop"],
            "grid_frames_per_video_s": cfg["sample_fps"],
            "decode_processes_kept_busy": busy,
            **best,
        }
        if on_gpu:
            report["peak_mem_mib_max_over_throughput_configs"] = max(
                (r["peak_mem_mib"] for r in rows), default=None
            )

    print(save())
    for f in failures:
        log(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
