"""A user's own video network through the whole pipeline: the generic ``video`` arch.

The network is defined here, R(2+1)D-shaped (factorised (1, 3, 3) spatial and (3, 1, 1) temporal
convolutions), with random weights and small widths so that it runs fast on a CPU: 16 frames at
112 x 112 in, a 32-wide embedding out. It is exported both ways (TorchScript by tracing, ONNX by
``torch.onnx.export``), packed with ``actrec model pack`` and a head whose label map is not the
reference model's, and run with ``actrec run`` (local Ray, feature cache, Great Expectations, DuckDB),
rerun, and rescored with another head.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime  # noqa: F401 - dev dependencies, imported plainly: a broken install fails, never skips
import onnxscript  # noqa: F401
import pytest
import sqlalchemy as sa
import torch
from torch import nn

from actrec_batch.manifest import read_manifest
from actrec_batch.model import (
    ModelError,
    load_backbone,
    load_model,
    read_card,
    save_video_model,
    save_with_video_head,
)
from actrec_batch.model.features import embed_range
from actrec_batch.model.reference import HeadConfig, ReferenceHead
from actrec_batch.model.sampling import build_grid, decode_grid_frames
from actrec_batch.pipeline.cache import FeatureCache, segment_name
from actrec_batch.pipeline.scoring import score_video
from actrec_batch.storage import open_store
from actrec_batch.synth import synth_footage
from actrec_batch.video import frame_timestamps
from actrec_batch.warehouse import open_warehouse

DATE = dt.date(2026, 11, 9)
ACTREC = str(Path(sys.executable).with_name("actrec"))
LABELS = ["person_down", "loitering", "wave"]
SEGMENT_S = 10  # 30-s videos in 3 units: the Ray path cuts them, the single-process path does not
EMBED_DIM = 32
SAMPLING = {  # what `actrec model pack` writes for PACK_FLAGS and its default mean, std, range and order
    "sample_fps": 7.5,
    "clip_len": 16,
    "clip_hop": 8,
    "frame_width": 112,
    "frame_height": 112,
    "embed_dim": EMBED_DIM,
    "resize": "short_side_crop",
    "short_side": 128,
    "mean": [123.675, 116.28, 103.53],
    "std": [58.395, 57.12, 57.375],
    "pixel_range": 255,
    "channel_order": "RGB",
}
PACK_FLAGS = [
    *("--sample-fps", "7.5", "--clip-len", "16", "--clip-hop", "8", "--size", "112x112"),
    *("--resize", "short_side_crop", "--short-side", "128", "--embed-dim", str(EMBED_DIM)),
]


class R2Plus1D(nn.Module):
    """``[B, 3, T, H, W] -> [B, D]``: three (2+1)D blocks, each halving space and time, then global pooling."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, EMBED_DIM)) -> None:
        super().__init__()
        blocks, cin = [], 3
        for width in widths:
            blocks += [
                nn.Conv3d(cin, width, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False),
                nn.BatchNorm3d(width),
                nn.ReLU(),
                nn.Conv3d(width, width, (3, 1, 1), (2, 1, 1), (1, 0, 0), bias=False),
                nn.BatchNorm3d(width),
                nn.ReLU(),
            ]
            cin = width
        self.features = nn.Sequential(*blocks)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.features(clips).mean(dim=(2, 3, 4))


def _head(hot: int) -> nn.Module:
    """A ReferenceHead over D-wide embeddings whose class ``hot`` is always on (a large output bias),
    so every video gets an event of that label and a rescore visibly changes the events."""
    torch.manual_seed(hot)
    head = ReferenceHead(HeadConfig(embed_dim=EMBED_DIM, hidden=16, num_classes=len(LABELS), kernel=3))
    with torch.no_grad():
        head.out.bias.copy_(torch.tensor([-8.0, -8.0, -8.0]))
        head.out.bias[hot] = 8.0
    return head.eval()


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """The same random network exported as TorchScript and as ONNX, and two TorchScript heads."""
    out = tmp_path_factory.mktemp("exports")
    torch.manual_seed(0)
    net = R2Plus1D().eval()
    example = torch.randn(2, 3, 16, 112, 112)
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(net, example), out / "backbone.pt")
    torch.onnx.export(
        net,
        (example,),
        str(out / "backbone.onnx"),
        input_names=["clips"],
        output_names=["embeddings"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        external_data=False,  # one self-contained file (the bundle checks one sha256 per file)
        verbose=False,
    )
    for hot in (2, 1):  # "wave" first, then "loitering"
        torch.jit.save(torch.jit.script(_head(hot)), out / f"head-{LABELS[hot]}.pt")
    return {"torchscript": out / "backbone.pt", "onnx": out / "backbone.onnx", "dir": out}


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """Two cameras x 30 s of synthetic footage (rendered once, copied by each case)."""
    root = tmp_path_factory.mktemp("footage") / "store"
    synth_footage(open_store(str(root)), date=DATE, cameras=2, minutes=0.5, seed=909, progress=False)
    return root


def _env(root: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "ACTREC_STORE": str(root),
        "ACTREC_WAREHOUSE_URL": url,
        "ACTREC_SEGMENT_S": str(SEGMENT_S),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }


def _actrec(args: list[str], root: Path, url: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([ACTREC, *args], env=_env(root, url), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, f"actrec {' '.join(args)} failed: {proc.stderr[-3000:]}"
    return proc


def _pack(exports, fmt: str, out: Path, *, version: str, head: str) -> Path:
    """What `actrec model pack` does (tested once, in the CLI, below), without a process to start."""
    save_video_model(
        out,
        name=f"r2p1d-{fmt}",
        version=version,
        backbone=exports[fmt],
        sampling=SAMPLING,
        labels=LABELS,
        head=exports["dir"] / f"head-{head}.pt",
    )
    return out


def _last_json(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _actrec_json(capsys, args: list[str], root: Path, url: str) -> dict:
    """``actrec ARGS --json`` run by the console script's ``main`` in this process (its imports are
    paid once, and the local Ray it starts is stopped when the command ends); the JSON summary line."""
    from actrec_batch.cli import main

    capsys.readouterr()
    rc = main([*args, "--json", "--store", str(root), "--warehouse", url, "--segment-s", str(SEGMENT_S)])
    out, err = capsys.readouterr()
    assert rc == 0, f"actrec {' '.join(args)} failed: {err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def _current_events(url: str) -> list[tuple[str, str, str]]:
    wh = open_warehouse(url)
    with wh.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT model_name, model_version, label FROM current_action_events WHERE logical_date = :d"
            ),
            {"d": DATE},
        ).all()
    wh.dispose()
    return sorted(tuple(r) for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_a_user_model_runs_reruns_and_rescores_through_the_pipeline(fmt, exports, footage, tmp_path, capsys):
    root = tmp_path / "store"
    shutil.copytree(footage, root)
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    bundle = _pack(exports, fmt, tmp_path / "bundle-v1", version="1", head="wave")
    card = read_card(open_store(str(bundle)))
    assert card.format == fmt and card.is_video_arch and card.head.format == "torchscript"

    first = _actrec_json(capsys, ["run", "--date", DATE.isoformat(), "--model", str(bundle)], root, url)
    assert first["status"] == "success", first
    assert first["videos_discovered"] == first["videos_processed"] == 2 and first["videos_quarantined"] == 0
    assert first["units_total"] == 6 == first["cache_misses"] and first["frames_decoded"] > 0
    # The always-on class of this head gives each video one "wave" event, under the card's labels.
    assert _current_events(url) == [(f"r2p1d-{fmt}", "1", "wave")] * 2

    # The Ray path, in 10-s units, cached what the single-process path computes over whole videos.
    model = load_model(str(bundle), device="cpu")
    store = open_store(str(root))
    cache = FeatureCache.for_model(store, card)
    for row in read_manifest(store, DATE).to_pylist():
        parts = [cache.get(cache.key(row["content_id"], segment_name(SEGMENT_S, k))) for k in range(3)]
        cached = np.concatenate([p.embeddings for p in parts])
        whole = score_video(model, root / row["key"], duration_s=row["duration_s"], segment_s=1e6)
        assert cached.shape == (whole.scores.shape[0], EMBED_DIM)
        probs = torch.sigmoid(model.head(torch.as_tensor(cached)[None])[0]).detach().numpy()
        np.testing.assert_allclose(probs, whole.scores, atol=1e-5)

    again = _actrec_json(capsys, ["run", "--date", DATE.isoformat(), "--model", str(bundle)], root, url)
    assert again["status"] == "success" and again["frames_decoded"] == 0
    assert again["units_skipped_checkpoint"] == 6 and again["events"] == first["events"]

    # A new head on the same backbone: every unit from the feature cache, nothing decoded, and the
    # warehouse's current events are the new version's.
    rehead = _pack(exports, fmt, tmp_path / "bundle-v2", version="2", head="loitering")
    rescored = _actrec_json(
        capsys,
        ["rescore", "--from", DATE.isoformat(), "--to", DATE.isoformat(), "--model", str(rehead)],
        root,
        url,
    )
    assert rescored["status"] == "success" and rescored["frames_decoded"] == 0
    assert rescored["cache_hits"] == 6 and rescored["cache_misses"] == 0
    assert _current_events(url) == [(f"r2p1d-{fmt}", "2", "loitering")] * 2


def test_torchscript_and_onnx_give_the_same_embeddings(exports, tmp_path):
    from actrec_batch.model.features import UnitFrames, embed_units

    bundles = {
        fmt: _pack(exports, fmt, tmp_path / fmt, version="1", head="wave") for fmt in ("torchscript", "onnx")
    }
    rng = np.random.default_rng(3)
    units = [  # 5 clips of 144 x 192 frames after a context frame, and an empty unit
        UnitFrames(rng.integers(0, 256, (1 + 4 * 8 + 16, 144, 192, 3), dtype=np.uint8), True, 5),
        UnitFrames(np.zeros((0, 144, 192, 3), np.uint8), False, 0),
    ]
    out = {}
    for fmt, bundle in bundles.items():
        model = load_model(str(bundle), device="cpu")
        out[fmt] = embed_units(
            model.extractor, units, clip_len=16, clip_hop=8, embed_dim=EMBED_DIM, device="cpu"
        )
    assert [e.shape for e in out["onnx"]] == [(5, EMBED_DIM), (0, EMBED_DIM)]
    assert np.abs(out["onnx"][0]).max() > 0.01
    np.testing.assert_allclose(out["torchscript"][0], out["onnx"][0], atol=1e-4)
    # A unit's embeddings do not depend on the other units in the call (the scheduler's batches do).
    model = load_model(str(bundles["torchscript"]), device="cpu")
    longer = UnitFrames(rng.integers(0, 256, (1 + 12 * 8 + 16, 144, 192, 3), dtype=np.uint8), True, 13)
    mixed = embed_units(
        model.extractor, [longer, units[0]], clip_len=16, clip_hop=8, embed_dim=EMBED_DIM, device="cpu"
    )
    assert mixed[1].tobytes() == out["torchscript"][0].tobytes()


def test_embeddings_do_not_depend_on_where_a_video_is_cut(exports, footage, tmp_path):
    """The split invariance of the reference path holds for the video arch: clips embedded segment by
    segment (each decoding only its own grid frames) equal the whole video's, and the short-side
    decode keeps the aspect ratio."""
    model = load_model(str(_pack(exports, "onnx", tmp_path / "b", version="1", head="wave")), device="cpu")
    sampling = model.card.decode_sampling()
    assert (sampling["frame_width"], sampling["frame_height"]) == (None, 128)
    path = next(footage.rglob("*.mp4"))
    times = frame_timestamps(path)
    grid = build_grid(times, sample_fps=7.5, clip_len=16, clip_hop=8)

    def embed(clips: range) -> np.ndarray:
        frames = decode_grid_frames(
            path, grid, grid.grid_span(clips), width=None, height=128, frame_times=times
        )
        assert len(clips) == 0 or frames.shape[1:] == (128, 171, 3)  # 320 x 240 footage, short side 128
        return embed_range(model.extractor, grid, clips, frames, "cpu").embeddings

    whole = embed(range(grid.num_clips))
    parts = [embed(grid.clips_in(lo, lo + 7.0)) for lo in np.arange(0, 30, 7.0)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)
    assert len(whole) == grid.num_clips > 20


def test_a_portrait_video_is_decoded_with_its_width_as_the_short_side(tmp_path):
    from actrec_batch.video import VideoWriter

    path = tmp_path / "portrait.mp4"
    with VideoWriter(path, fps=8, width=96, height=160) as writer:
        for frame in np.random.default_rng(1).integers(0, 256, (8, 160, 96, 3), dtype=np.uint8):
            writer.write(frame)
    times = frame_timestamps(path)
    grid = build_grid(times, sample_fps=8, clip_len=4, clip_hop=2)
    out = decode_grid_frames(path, grid, range(8), width=None, height=64, frame_times=times)
    assert out.shape == (8, 107, 64, 3)


def test_bad_bundles_fail_with_one_line_naming_the_file(exports, tmp_path, capsys):
    bundle = _pack(exports, "onnx", tmp_path / "good", version="1", head="wave")
    card = json.loads((bundle / "card.json").read_text())

    def broken(name: str, **changes) -> Path:
        dest = tmp_path / name
        shutil.copytree(bundle, dest)
        new = json.loads(json.dumps(card))
        for path, value in changes.items():
            *parents, key = path.split(".")
            node = new
            for p in parents:
                node = node[p]
            node[key] = value
        (dest / "card.json").write_text(json.dumps(new))
        return dest

    cases = {
        "embed_dim": (
            broken("dim", **{"extractor.config.embed_dim": 64, "head.config.embed_dim": 64}),
            "shape_mismatch",
            "outputs [1, 32]",
        ),
        "crop": (broken("crop", **{"extractor.config.short_side": 100}), "bad_card", "short_side 100"),
        "order": (broken("order", **{"extractor.config.channel_order": "GBR"}), "bad_card", "channel_order"),
        "labels": (broken("labels", labels=["a", "b"]), "shape_mismatch", "label map has 2"),
        "format": (broken("fmt", format="state_dict"), "bad_card", "format"),
    }
    missing = broken("missing")
    (missing / "backbone.onnx").unlink()
    cases["missing"] = (missing, "weights_missing", "backbone.onnx")
    swapped = broken("swapped")
    (swapped / "backbone.onnx").write_bytes(exports["torchscript"].read_bytes())
    cases["checksum"] = (swapped, "checksum_mismatch", "backbone.onnx")
    for what, (path, reason, words) in cases.items():
        with pytest.raises(ModelError) as exc:
            load_model(str(path), device="cpu")
        message = str(exc.value)
        assert exc.value.reason == reason and words in message and "\n" not in message, (what, message)
        assert str(path) in message, (what, message)

    # Packing checks the same, naming the user's own file, and writes nothing when it fails.
    with pytest.raises(ModelError, match=r"outputs \[1, 32\]") as exc:
        save_video_model(
            tmp_path / "wide",
            name="w",
            version="1",
            backbone=exports["onnx"],
            sampling={**SAMPLING, "embed_dim": 64},
        )
    assert str(exports["onnx"]) in str(exc.value) and not (tmp_path / "wide").exists()

    # `actrec model pack` without a head: a backbone bundle, which loads as a backbone only.
    proc = _actrec(  # without --embed-dim: measured on one clip
        ["model", "pack", "--backbone", str(exports["onnx"]), "--name", "bb", "--out", str(tmp_path / "bb")]
        + [*PACK_FLAGS[:-2], "--json"],
        tmp_path,
        "duckdb:///:memory:",
    )
    packed = _last_json(proc)
    assert packed["extractor"]["config"] == SAMPLING and "head" not in packed and packed["format"] == "onnx"
    assert load_backbone(str(tmp_path / "bb")).sampling.embed_dim == EMBED_DIM
    with pytest.raises(ModelError, match="without a head") as exc:
        load_model(str(tmp_path / "bb"))
    assert exc.value.reason == "no_head"
    # ... and a head saved onto it shares its backbone's cache identity.
    new = save_with_video_head(
        str(tmp_path / "bb"), tmp_path / "bb-head", name="bb", version="2", labels=LABELS, head=_head(0)
    )
    assert (
        new.extractor == read_card(open_store(str(tmp_path / "bb"))).extractor
        and new.head.format == "state_dict"
    )
    from actrec_batch.cli import main

    capsys.readouterr()
    flags = [f if f != "112x112" else "112by112" for f in PACK_FLAGS]
    rc = main(
        [
            "model",
            "pack",
            "--backbone",
            str(exports["onnx"]),
            "--name",
            "x",
            "--out",
            str(tmp_path / "x"),
            *flags,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--size" in err and len(err.splitlines()) == 1 and not (tmp_path / "x").exists()


def test_frames_are_cropped_reordered_and_normalised_as_the_card_says():
    from actrec_batch.model.video import VideoBackbone
    from actrec_batch.model.video_spec import VideoSampling

    sampling = VideoSampling.from_dict(
        {**SAMPLING, "frame_width": 4, "frame_height": 2, "short_side": 4, "clip_len": 2, "clip_hop": 1}
        | {"pixel_range": 1, "channel_order": "BGR", "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 2.0]}
    )
    backbone = VideoBackbone(
        sampling, lambda x: x.mean(dim=(2, 3, 4))[:, :1], torch.device("cpu"), 16, "test"
    )
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 6, 3), dtype=np.uint8)  # 6 x 4 frames
    got = backbone.prepare(frames).numpy()
    window = frames[:, 1:3, 1:5, ::-1] / 255.0  # the centred 4 x 2 window, B G R, on 0..1
    want = (window - [0.1, 0.2, 0.3]) / [0.5, 0.25, 2.0]
    np.testing.assert_allclose(got, want.transpose(0, 3, 1, 2), atol=1e-6)
    clips = backbone.clips(frames, 0, 2).numpy()  # clip j: grid frames j and j + 1, as [C, T, H, W]
    assert clips.shape == (2, 3, 2, 2, 4)
    np.testing.assert_allclose(clips[1, :, 1], got[2], atol=1e-6)
    np.testing.assert_allclose(backbone.clips(frames, 1, 1).numpy(), clips[1:], atol=1e-6)
    with pytest.raises(ValueError, match="smaller than the backbone's 4x2 input"):
        backbone.prepare(frames[:, :1])


def test_the_cache_keys_on_the_backbone_and_all_of_its_sampling_but_not_the_head(exports, tmp_path):
    from actrec_batch.pipeline.cache import extractor_tag, sampling_tag

    one = read_card(open_store(str(_pack(exports, "onnx", tmp_path / "one", version="1", head="wave"))))
    two = read_card(open_store(str(_pack(exports, "onnx", tmp_path / "two", version="2", head="loitering"))))
    bgr = json.loads((tmp_path / "one" / "card.json").read_text())
    bgr["extractor"]["config"]["channel_order"] = "BGR"
    bgr = type(one).from_dict(bgr)
    assert (extractor_tag(one), sampling_tag(one)) == (extractor_tag(two), sampling_tag(two))
    assert sampling_tag(one).startswith("112x112-crop128-7.5fps-c16h8-") and sampling_tag(one).endswith(
        "-nr1"
    )
    assert extractor_tag(bgr) == extractor_tag(one) and sampling_tag(bgr) != sampling_tag(one)
    other = read_card(
        open_store(str(_pack(exports, "torchscript", tmp_path / "ts", version="1", head="wave")))
    )
    assert extractor_tag(other) != extractor_tag(one)  # another file: another backbone sha256


def test_a_bundle_in_the_object_store_loads_by_name_and_version(exports, s3_bucket, tmp_path):
    """Bundles kept at <store>/models/NAME/VERSION/ on S3 (moto's server): downloaded, checked, loaded."""
    bundle = _pack(exports, "onnx", tmp_path / "b", version="3", head="wave")
    store = open_store(f"s3://{s3_bucket}/root")
    for path in bundle.iterdir():
        store.put_bytes(f"models/r2p1d-onnx/3/{path.name}", path.read_bytes())
    model = load_model("r2p1d-onnx@3", store_uri=store.root_uri, device="cpu")
    assert model.source == f"s3://{s3_bucket}/root/models/r2p1d-onnx/3" and model.card.labels == tuple(LABELS)
    assert load_backbone("r2p1d-onnx@3", store_uri=store.root_uri).card == model.card
    store.put_bytes("models/r2p1d-onnx/3/head.pt", b"not the head")
    with pytest.raises(ModelError, match=rf"s3://{s3_bucket}/root/models/r2p1d-onnx/3/head.pt has sha256"):
        load_model("r2p1d-onnx@3", store_uri=store.root_uri, device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_train_head_fits_a_head_on_a_user_backbone_bundle(fmt, exports, footage, tmp_path, capsys):
    """A head-less backbone bundle of the user's own network gets a head from ``actrec train-head``:
    the pipeline fills the feature cache with it, and the bundle it writes keeps the backbone, so a
    rerun and a rescore decode nothing. (Random weights: no F1 bar; test_train_head.py has one.)"""
    from actrec_batch.evaluation import load_truth

    root = tmp_path / "store"
    shutil.copytree(footage, root)
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    backbone = tmp_path / "bb"
    save_video_model(
        backbone, name=f"bb-{fmt}", version="1", backbone=exports[fmt], sampling=SAMPLING, labels=[]
    )
    with pytest.raises(ModelError, match="without a head"):
        load_model(str(backbone))
    out = tmp_path / "lobby"
    args = ["train-head", "--model", str(backbone), "--dates", DATE.isoformat(), "--out", str(out)]
    args += ["--steps", "60", "--window-clips", "8", "--val-fraction", "0.5"]

    first = _actrec_json(capsys, args, root, url)
    assert first["model"] == "lobby@1" and first["base_model"] == f"bb-{fmt}@1"
    assert (first["videos_train"], first["videos_validation"], first["videos_skipped"]) == (1, 1, [])
    assert first["units_computed"] == first["units_total"] == 6 and first["frames_decoded"] > 0
    model = load_model(str(out), device="cpu")
    base = read_card(open_store(str(backbone)))
    assert model.card.is_video_arch and model.card.format == fmt and model.card.extractor == base.extractor
    assert model.card.head.format == "state_dict" and model.card.head.config["embed_dim"] == EMBED_DIM
    truth = load_truth(open_store(str(root)), DATE)
    assert truth and sorted(model.card.labels) == sorted({g.label for g in truth})
    validation = model.card.metrics["validation"]
    text = (out / "MODEL_CARD.md").read_text()
    assert (
        f"| all, tIoU 0.5 | {validation['precision']:.3f} | {validation['recall']:.3f} | {validation['f1']:.3f} |"
        in text
    )
    assert "6 computed" in text and DATE.isoformat() in text

    again = _actrec_json(capsys, [*args[:-7], str(tmp_path / "again"), *args[-6:]], root, url)
    assert again["frames_decoded"] == 0 and again["units_computed"] == 0 and again["ray_used"] is False
    assert again["weights_sha256"] == first["weights_sha256"]  # same seed, same embeddings: same head

    rescored = _actrec_json(
        capsys,
        ["rescore", "--from", DATE.isoformat(), "--to", DATE.isoformat(), "--model", str(out)],
        root,
        url,
    )
    assert rescored["status"] == "success" and rescored["model"] == "lobby@1"
    assert rescored["frames_decoded"] == 0 and rescored["cache_misses"] == 0 and rescored["cache_hits"] == 6
