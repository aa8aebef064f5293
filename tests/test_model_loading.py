"""Model bundles: save, load (local and S3 over real HTTP), and every way a bundle can be broken.

Models are tiny reference models with random weights, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from actrec_batch.errors import ConfigError
from actrec_batch.model import (
    ModelCard,
    ModelError,
    available_models,
    load_model,
    read_card,
    resolve_model_ref,
    save_model,
    select_device,
)
from actrec_batch.model.reference import (
    POSTURE_GAIN,
    ExtractorConfig,
    HeadConfig,
    ReferenceExtractor,
    ReferenceHead,
    normalised_rgb,
)
from actrec_batch.storage import open_store

pytestmark = pytest.mark.timeout(60)

LABELS = ("walk", "run", "fall")
EXTRACTOR_CFG = ExtractorConfig(frame_width=32, frame_height=24, frame_dim=16, embed_dim=16, widths=(4, 8))
HEAD_CFG = HeadConfig(embed_dim=16, hidden=8, num_classes=len(LABELS), kernel=3)
WEIGHTS = {
    "state_dict": ("extractor.safetensors", "head.safetensors"),
    "torchscript": ("extractor.pt", "head.pt"),
}


def _random_modules(
    seed: int = 0, bidirectional: bool = False, postures: int = 0
) -> tuple[ReferenceExtractor, ReferenceHead]:
    """Fresh modules whose BatchNorm statistics are random too, so buffers must survive the round trip."""
    torch.manual_seed(seed)
    cfg = EXTRACTOR_CFG.with_postures(postures)
    cfg = cfg.bidirectional_of() if bidirectional else cfg
    extractor = ReferenceExtractor(cfg)
    head = ReferenceHead(HeadConfig(**{**HEAD_CFG.to_dict(), "embed_dim": cfg.embed_dim}))
    with torch.no_grad():
        for module in extractor.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return extractor, head


def _save(
    dest: Path,
    fmt: str = "state_dict",
    *,
    name: str = "tiny",
    version: str = "1",
    bidirectional: bool = False,
    postures: int = 0,
) -> ModelCard:
    extractor, head = _random_modules(bidirectional=bidirectional, postures=postures)
    return save_model(
        dest,
        name=name,
        version=version,
        labels=LABELS,
        extractor=extractor,
        head=head,
        postprocess={"min_duration_s": 0.5},
        training={"epochs": 1},
        metrics={"map": 0.5},
        format=fmt,
    )


def _edit_card(bundle: Path, edit) -> None:
    card = json.loads((bundle / "card.json").read_text())
    edit(card)
    (bundle / "card.json").write_text(json.dumps(card))


def _load_error(ref: str, **kwargs) -> ModelError:
    with pytest.raises(ModelError) as caught:
        load_model(ref, device="cpu", **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return caught.value


def _frames(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = (n, EXTRACTOR_CFG.frame_height, EXTRACTOR_CFG.frame_width, 3)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)


def _assert_same_outputs(original: tuple[torch.nn.Module, torch.nn.Module], loaded) -> None:
    """Identical codes, embeddings and scores, on batch sizes and clip lengths other than those traced."""
    extractor, head = (module.eval() for module in original)
    frames, previous = _frames(5, seed=1), _frames(5, seed=2)
    codes = torch.randn(3, extractor.cfg.clip_len + 3, extractor.cfg.code_dim)
    embeddings = torch.randn(2, 6, extractor.cfg.embed_dim)
    with torch.inference_mode():
        pairs = [
            (extractor.encode_frames(frames, previous), loaded.extractor.encode_frames(frames, previous)),
            (extractor.encode_clips(codes), loaded.extractor.encode_clips(codes)),
            (head(embeddings), loaded.head(embeddings)),
        ]
    for expected, actual in pairs:
        assert actual.shape == expected.shape
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)  # the same ops on the same weights


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, fmt: str) -> None:
    card = _save(tmp_path / "bundle", fmt)
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == sorted(("card.json", *WEIGHTS[fmt]))

    loaded = load_model(str(tmp_path / "bundle"), device="cpu")

    assert loaded.card == card
    assert loaded.card.labels == LABELS
    assert loaded.card.model_id == "tiny@1"
    assert loaded.card.extractor_id == "reference-extractor@1"
    assert loaded.card.extractor.config["clip_len"] == EXTRACTOR_CFG.clip_len  # sampling params, both formats
    assert loaded.card.postprocess == {"min_duration_s": 0.5}
    assert loaded.source == open_store(str(tmp_path / "bundle")).root_uri
    assert loaded.device == torch.device("cpu")
    assert not loaded.extractor.training and not loaded.head.training
    _assert_same_outputs(_random_modules(), loaded)


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
def test_bidirectional_round_trip_gives_identical_outputs(tmp_path: Path, fmt: str) -> None:
    card = _save(tmp_path / "bundle", fmt, bidirectional=True)
    assert card.extractor.config["bidirectional"] is True
    assert card.extractor.config["embed_dim"] == 2 * EXTRACTOR_CFG.embed_dim
    loaded = load_model(str(tmp_path / "bundle"), device="cpu")
    _assert_same_outputs(_random_modules(bidirectional=True), loaded)
    with torch.inference_mode():
        codes = loaded.extractor.encode_frames(_frames(4, seed=3), _frames(4, seed=4))
    assert codes.shape == (4, 2 * EXTRACTOR_CFG.frame_dim)


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_posture_branch_round_trip_gives_identical_outputs(
    tmp_path: Path, fmt: str, bidirectional: bool
) -> None:
    card = _save(tmp_path / "bundle", fmt, bidirectional=bidirectional, postures=3)
    motion = (2 if bidirectional else 1) * EXTRACTOR_CFG.embed_dim
    assert card.extractor.config["postures"] == 3 and card.extractor.config["embed_dim"] == motion + 6
    loaded = load_model(str(tmp_path / "bundle"), device="cpu")
    original = _random_modules(bidirectional=bidirectional, postures=3)
    _assert_same_outputs(original, loaded)
    frames = _frames(8, seed=5)
    with torch.inference_mode():
        codes = loaded.extractor.encode_frames(frames[1:], frames[:-1])
        logits = original[0].posture(normalised_rgb(frames[1:]))
        clip = loaded.extractor.encode_clips(codes[None])[0]
    # each frame code ends with the frame's posture logits; a clip embedding ends with their
    # means over its first and second halves, scaled by POSTURE_GAIN
    torch.testing.assert_close(codes[:, -3:], logits, rtol=0, atol=1e-5)
    half = len(codes) // 2
    expected = torch.cat([logits[:half].mean(0), logits[half:].mean(0)]) * POSTURE_GAIN
    torch.testing.assert_close(clip[motion:], expected, rtol=1e-5, atol=1e-4)


def test_save_model_leaves_the_callers_modules_alone(tmp_path: Path) -> None:
    extractor, head = _random_modules()
    before = {k: v.clone() for k, v in extractor.state_dict().items()}
    save_model(tmp_path / "b", name="tiny", version="1", labels=LABELS, extractor=extractor, head=head)
    assert extractor.training and head.training
    assert all(torch.equal(before[k], v) for k, v in extractor.state_dict().items())


def test_card_identity_and_dict_round_trip(tmp_path: Path) -> None:
    card = _save(tmp_path / "b")
    on_disk = json.loads((tmp_path / "b" / "card.json").read_text())
    assert on_disk == card.to_dict()
    assert ModelCard.from_dict(on_disk) == card
    extractor_sha = hashlib.sha256((tmp_path / "b" / "extractor.safetensors").read_bytes()).hexdigest()
    assert card.extractor.sha256 == extractor_sha
    assert card.weights_sha256 == hashlib.sha256(f"{extractor_sha}:{card.head.sha256}".encode()).hexdigest()
    assert read_card(open_store(str(tmp_path / "b"))) == card


def test_load_from_s3(tmp_path: Path, s3_bucket: str) -> None:
    _save(tmp_path / "b", name="x", version="1")
    store_uri = f"s3://{s3_bucket}"
    bundle = open_store(f"{store_uri}/models/x/1")
    for path in (tmp_path / "b").iterdir():
        bundle.put_file(path.name, path)

    assert resolve_model_ref("x@1", store_uri=store_uri) == f"{store_uri}/models/x/1"
    assert "x@1" in available_models(store_uri)
    by_id = load_model("x@1", store_uri=store_uri, device="cpu")
    by_uri = load_model(f"{store_uri}/models/x/1", device="cpu")

    assert by_id.source == by_uri.source == f"{store_uri}/models/x/1"
    assert by_id.card.model_id == "x@1"
    _assert_same_outputs(_random_modules(), by_id)

    damaged = bytearray((tmp_path / "b" / "head.safetensors").read_bytes())
    damaged[-1] ^= 0xFF
    bundle.put_bytes("head.safetensors", bytes(damaged))
    error = _load_error("x@1", store_uri=store_uri)
    assert error.reason == "checksum_mismatch"
    assert f"{store_uri}/models/x/1/head.safetensors" in str(error)


# ------------------------------------------------------------------------------------ broken bundles


def test_flipped_byte_is_a_checksum_mismatch(tmp_path: Path) -> None:
    card = _save(tmp_path / "b")
    weights = tmp_path / "b" / "extractor.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))

    error = _load_error(str(tmp_path / "b"))

    assert error.reason == "checksum_mismatch"
    actual = hashlib.sha256(bytes(data)).hexdigest()
    assert "extractor.safetensors" in str(error)
    assert card.extractor.sha256[:12] in str(error) and actual[:12] in str(error)


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
def test_truncated_file_with_a_matching_sha_is_corrupt(tmp_path: Path, fmt: str) -> None:
    _save(tmp_path / "b", fmt)
    weights = tmp_path / "b" / WEIGHTS[fmt][0]
    truncated = weights.read_bytes()[: weights.stat().st_size // 2]
    weights.write_bytes(truncated)
    _edit_card(
        tmp_path / "b", lambda card: card["extractor"].update(sha256=hashlib.sha256(truncated).hexdigest())
    )

    error = _load_error(str(tmp_path / "b"))

    assert error.reason == "weights_corrupt"
    assert WEIGHTS[fmt][0] in str(error)


def test_missing_weights_file(tmp_path: Path) -> None:
    _save(tmp_path / "b")
    (tmp_path / "b" / "head.safetensors").unlink()

    error = _load_error(str(tmp_path / "b"))

    assert error.reason == "weights_missing"
    assert "head.safetensors" in str(error)


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript"])
def test_label_map_longer_than_the_head(tmp_path: Path, fmt: str) -> None:
    _save(tmp_path / "b", fmt)
    _edit_card(tmp_path / "b", lambda card: card["labels"].extend(["sit", "jump"]))

    error = _load_error(str(tmp_path / "b"))

    assert error.reason == "shape_mismatch"
    assert "head outputs 3 classes but the label map has 5" in str(error)


def test_save_refuses_a_label_map_that_does_not_fit_the_head(tmp_path: Path) -> None:
    extractor, head = _random_modules()
    with pytest.raises(ModelError) as caught:
        save_model(tmp_path / "b", name="t", version="1", labels=["walk"], extractor=extractor, head=head)
    assert caught.value.reason == "shape_mismatch"
    assert not (tmp_path / "b" / "card.json").exists()


def test_weights_that_do_not_fit_the_architecture_name_the_first_key(tmp_path: Path) -> None:
    _save(tmp_path / "b")
    _edit_card(tmp_path / "b", lambda card: card["head"]["config"].update(hidden=12))

    error = _load_error(str(tmp_path / "b"))

    assert error.reason == "shape_mismatch"
    assert "'conv1.weight'" in str(error) and "head.safetensors" in str(error)


def test_unknown_model_id_lists_what_is_shipped(tmp_path: Path) -> None:
    error = _load_error("nosuch@7", store_uri=str(tmp_path / "store"))

    assert error.reason == "model_not_found"
    assert "nosuch@7" in str(error) and "shipped models" in str(error)
    assert "models/nosuch/7" in str(error)


def test_a_directory_without_a_card_is_not_a_model(tmp_path: Path) -> None:
    error = _load_error(str(tmp_path / "empty"))
    assert error.reason == "model_not_found"
    assert "card.json" in str(error)


def test_card_that_is_not_json(tmp_path: Path) -> None:
    _save(tmp_path / "b")
    (tmp_path / "b" / "card.json").write_text('{"name": "tiny",')

    error = _load_error(str(tmp_path / "b"))

    assert error.reason == "bad_card"
    assert "card.json" in str(error)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda card: card["extractor"].pop("sha256"), "extractor.sha256"),
        (lambda card: card.pop("labels"), "labels"),
        (lambda card: card.update(colour="red"), "colour"),
        (lambda card: card.update(format="onnx"), "format"),
        (lambda card: card["head"].update(weights="../head.safetensors"), "head.weights"),
    ],
    ids=["missing-sha", "missing-labels", "unknown-field", "unknown-format", "weights-outside-bundle"],
)
def test_bad_card_names_the_field_and_the_file(tmp_path: Path, edit, field: str) -> None:
    _save(tmp_path / "b")
    _edit_card(tmp_path / "b", edit)

    error = _load_error(str(tmp_path / "b"))

    assert error.reason == "bad_card"
    assert f"'{field}'" in str(error) and "card.json" in str(error)


def test_card_must_describe_the_model_asked_for(tmp_path: Path) -> None:
    _save(tmp_path / "store" / "models" / "x" / "1", name="y")
    error = _load_error("x@1", store_uri=str(tmp_path / "store"))
    assert error.reason == "bad_card"
    assert "y@1" in str(error)


# --------------------------------------------------------------------------------------------- devices


def test_auto_device_is_cuda_only_when_cuda_is_available() -> None:
    # This machine has no GPU, so "auto" gives cpu here; loading onto CUDA is not exercised in this suite.
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto") == torch.device(expected)
    assert select_device(None) == torch.device(expected)
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("preference", ["tpu", "cuda:x", ""])
def test_unknown_device_is_a_config_error(preference: str) -> None:
    with pytest.raises(ConfigError) as caught:
        select_device(preference)
    assert "\n" not in str(caught.value) and "cpu" in str(caught.value)


def test_cuda_without_cuda_is_a_config_error(monkeypatch) -> None:
    monkeypatch.setattr(
        torch.cuda, "is_available", lambda: False
    )  # a machine without CUDA, even on a GPU box
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda:1")
