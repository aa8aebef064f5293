"""`actrec train` end to end at toy scale: footage -> decode -> train -> tune -> a loadable bundle.

The real run (the shipped weights) takes ~30 min on 2 cores; this checks the pipeline, not quality.
"""

from __future__ import annotations

import numpy as np

from actrec_batch.model import load_model
from actrec_batch.training import FootageSpec, TrainConfig, run_training


def test_tiny_training_run_produces_a_verified_bundle(tmp_path):
    cfg = TrainConfig(
        seed=3,
        steps=3,
        batch_windows=2,
        window_clips=8,
        train_footage=(FootageSpec(1901, 0.4, 160, 120, 10.0, "h264", 0.02),),
        val_footage=(FootageSpec(1902, 0.4, 160, 120, 12.0, "mpeg4", 0.02),),
    )
    card, report = run_training(
        tmp_path / "bundle", tmp_path / "work", cfg, name="toy", version="0", progress=False
    )
    assert card.model_id == "toy@0"
    assert card.labels[0] == "walk" and "fall" in card.labels
    assert set(card.postprocess["events"]) >= {"on_threshold", "off_threshold", "smooth_s"}
    assert "validation" in card.metrics and 0.0 <= card.metrics["validation"]["f1"] <= 1.0
    assert card.training["config"]["steps"] == 3
    loaded = load_model(str(tmp_path / "bundle"), device="cpu")
    assert loaded.card.weights_sha256 == card.weights_sha256
    # Same seed, same data -> same weights: training is reproducible.
    card2, _ = run_training(
        tmp_path / "bundle2", tmp_path / "work", cfg, name="toy", version="0", progress=False
    )
    assert card2.weights_sha256 == card.weights_sha256
    assert np.isfinite(report.to_json()["f1"])
