"""Trained weights read again: a saved bundle's extractor reused by `actrec train --extractor-from`
(stage 1 skipped), and an extractor's motion weights read with another configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from actrec_batch.model.reference import ExtractorConfig, PostureEncoder, ReferenceExtractor


@dataclass
class ReusedExtractor:
    """A saved bundle's extractor, as stage 1's result: its motion network, whether its posture
    branch is kept, the identity the new bundle gives it, and what the card says of its training."""

    motion: ReferenceExtractor
    keep_posture: bool
    extractor_id: str
    extractor_version: str
    stage1: dict = field(default_factory=dict)


def reuse_extractor(model_ref: str, config: ExtractorConfig, version: str) -> ReusedExtractor:
    """The extractor of the bundle ``model_ref`` for a training run of ``config`` and ``version``.

    Raises ValueError when its motion network differs from ``config``'s."""
    from actrec_batch.model import load_model

    base = load_model(model_ref, device="cpu")
    base_cfg = ExtractorConfig.from_dict(base.card.extractor.config)
    if base_cfg.motion_only() != config.motion_only():
        raise ValueError(f"{model_ref}: its extractor config differs from the training config")
    training = base.card.training
    return ReusedExtractor(
        motion=base.extractor.eval(),
        # its own posture branch when it has the same one, else a new one (stage 1b)
        keep_posture=(base_cfg.postures, base_cfg.posture_widths) == (config.postures, config.posture_widths),
        # Same weights read another way give other features: a new extractor version, so the
        # feature cache (keyed by extractor id and version) never mixes the two.
        extractor_id=base.card.extractor.id,
        extractor_version=base.card.extractor.version if base_cfg == config else version,
        stage1={
            "extractor_from": base.card.model_id,
            "extractor_sha256": base.card.extractor.sha256,
            # where the base itself reused an extractor, the time of the run that trained it
            "extractor_train_s": training.get("extractor_train_s")
            or training.get("timings", {}).get("train_s"),
            "extractor_final_loss": training.get("extractor_final_loss") or training.get("final_loss"),
        },
    )


def with_config(
    extractor: ReferenceExtractor, config: ExtractorConfig, posture: PostureEncoder | None = None
) -> ReferenceExtractor:
    """``extractor``'s motion weights read with ``config`` (e.g. both ways), with the posture branch
    ``posture`` or else ``extractor``'s own; the same module when nothing changes.

    Raises ValueError when the motion networks differ or ``config`` needs a posture branch that
    neither gives."""
    if extractor.cfg == config and posture is None:
        return extractor
    if extractor.cfg.motion_only() != config.motion_only():
        raise ValueError(f"extractor weights for {extractor.cfg} cannot be read as {config}")
    state = {k: t for k, t in extractor.state_dict().items() if not k.startswith("posture.")}
    if config.postures:
        source = posture if posture is not None else extractor.posture
        if source is None or (posture is None and extractor.cfg.postures != config.postures):
            raise ValueError(f"extractor {extractor.cfg} has no posture branch of {config.postures} postures")
        state.update({f"posture.{k}": t for k, t in source.state_dict().items()})
    out = ReferenceExtractor(config)
    out.load_state_dict(state)
    return out.eval()
