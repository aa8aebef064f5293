"""Training: `actrec train` (the reference model, from synthetic footage) and `actrec train-head` (a
new head on a backbone's embeddings of a user's labelled footage).

Modules, in the order a run uses them:

- :mod:`.footage`: the training and validation footage specs, rendered with ``actrec synth``
- :mod:`.config`: :class:`TrainConfig`
- :mod:`.data`: videos decoded onto the sampling grid, and the windows stage 1 learns from
- :mod:`.loop`: the training loops (stage 1, the posture branch, the head refit)
- :mod:`.checkpoints`: a saved extractor reused, or read with another configuration
- :mod:`.tune`: the event post-processing tuned on held-out videos
- :mod:`.reference`: the whole `actrec train`
- :mod:`.head_footage`, :mod:`.head`, :mod:`.card`: the whole `actrec train-head`, and its MODEL_CARD.md
"""

from actrec_batch.training.config import TrainConfig, bidirectional_config
from actrec_batch.training.footage import (
    TRAIN_FOOTAGE,
    VAL_FOOTAGE,
    FootageSpec,
    missing_footage,
    render_footage,
    varied_footage,
)
from actrec_batch.training.head import HeadTrainConfig, parse_dates, train_head
from actrec_batch.training.reference import run_training

__all__ = [
    "TRAIN_FOOTAGE",
    "VAL_FOOTAGE",
    "FootageSpec",
    "HeadTrainConfig",
    "TrainConfig",
    "bidirectional_config",
    "missing_footage",
    "parse_dates",
    "render_footage",
    "run_training",
    "train_head",
    "varied_footage",
]
