"""Checks of a whole configuration: values in range, keys that agree, a runnable image side."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from vgs.config.schema import Config, ConfigError

_RANGES = (
    ("train.epochs", lambda v: v >= 1, ">= 1"),
    ("train.batch_size", lambda v: v >= 2, ">= 2 (each item is ranked against the others in its batch)"),
    ("train.eval_batch_size", lambda v: v >= 1, ">= 1"),
    ("train.lr", lambda v: v > 0, "> 0"),
    ("train.min_lr", lambda v: v >= 0, ">= 0"),
    ("train.margin", lambda v: v >= 0, ">= 0"),
    ("train.clip_grad", lambda v: v >= 0, ">= 0 (0: no clipping)"),
    ("train.captions_per_image", lambda v: v >= 0, ">= 0 (0: all captions)"),
    ("train.threads", lambda v: v >= 1, ">= 1"),
    ("train.calwr_t0", lambda v: v >= 1, ">= 1"),
    ("train.calwr_t_mult", lambda v: v >= 1, ">= 1"),
    ("train.cyclic_step_epochs", lambda v: v > 0, "> 0"),
    ("train.restart_epochs", lambda v: v >= 0, ">= 0 (0: no second run)"),
    ("train.restart_lr_factor", lambda v: v > 0, "> 0"),
    ("model.pipeline.asr_patience", lambda v: v >= 0, ">= 0 (0: the ASR phase runs all its epochs)"),
    ("model.latent", lambda v: v >= 2 and v % 2 == 0, "an even number >= 2 (N/2 GRU units per direction)"),
    ("model.speech.layers", lambda v: v >= 1, ">= 1"),
    ("data.builtin_images", lambda v: v >= 3, ">= 3 (train, validation and test need an image each)"),
)


def _value_at(cfg: Config, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = getattr(node, part)
    return node


def _floats(node: Any, prefix: str = "") -> list[tuple[str, float]]:
    """(dotted key, value) of every real-valued key of a config section, recursively."""
    out: list[tuple[str, float]] = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            out += _floats(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            out.append((prefix + f.name, value))
    return out


def check_consistent(cfg: Config) -> None:
    """Checks across keys that a single key's type cannot express; raises naming the keys."""
    for key, value in _floats(cfg):  # inf passed every range below, then failed at epoch 1
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if not 0 <= cfg.train.seed < 2**32:
        raise ConfigError(f"train.seed must be a whole number from 0 to 2**32 - 1, got {cfg.train.seed}")
    for key, ok, must in _RANGES:
        value = _value_at(cfg, key)
        if not ok(value):
            raise ConfigError(f"{key} must be {must}, got {value!r}")
    if cfg.data.image_crop > cfg.data.image_resize:
        raise ConfigError(
            f"data.image_crop ({cfg.data.image_crop}) exceeds data.image_resize ({cfg.data.image_resize})"
        )
    d = cfg.data
    if d.text_hours < 0 or not 0 <= d.text_fraction <= 1:
        raise ConfigError(
            f"data.text_hours must be >= 0 and data.text_fraction in 0..1 (got {d.text_hours}, {d.text_fraction})"
        )
    if d.text_hours > 0 and d.text_fraction > 0:
        raise ConfigError("set at most one of data.text_hours and data.text_fraction")
    if d.speech_text not in ("aligned", "nonaligned"):
        raise ConfigError(f"data.speech_text must be aligned or nonaligned, got '{d.speech_text}'")
    if d.speech_norm not in ("corpus", "utterance"):
        raise ConfigError(f"data.speech_norm must be corpus or utterance, got '{d.speech_norm}'")
    if d.image_store not in ("decoded", "files"):
        raise ConfigError(f"data.image_store must be decoded or files, got '{d.image_store}'")
    if cfg.train.loss_reduction not in ("mean", "sum"):
        raise ConfigError(f"train.loss_reduction must be mean or sum, got '{cfg.train.loss_reduction}'")
    if cfg.train.negatives not in ("other_images", "batch"):
        raise ConfigError(f"train.negatives must be other_images or batch, got '{cfg.train.negatives}'")
    if not 0 < cfg.train.decay_fraction <= 1:
        raise ConfigError(f"train.decay_fraction must be in (0, 1], got {cfg.train.decay_fraction}")
    if cfg.train.restart_epochs >= cfg.train.epochs:
        raise ConfigError(
            f"train.restart_epochs ({cfg.train.restart_epochs}) must be fewer than train.epochs "
            f"({cfg.train.epochs}): they are the last epochs of the budget"
        )
    if cfg.model.speech.attention not in ("vectorial", "scalar"):
        raise ConfigError(f"model.speech.attention must be vectorial or scalar, got '{cfg.model.speech.attention}'")
    if cfg.train.amp not in ("off", "bf16"):
        raise ConfigError(f"train.amp must be off or bf16, got '{cfg.train.amp}'")
    if cfg.model.image.encoder not in IMAGE_ENCODERS:
        raise ConfigError(f"model.image.encoder must be {', '.join(IMAGE_ENCODERS)}, got '{cfg.model.image.encoder}'")
    if cfg.model.image.encoder == "densenet" and cfg.data.image_features:
        raise ConfigError("model.image.encoder=densenet reads pixels, but data.image_features is set: leave one out")
    if cfg.train.eval_train_images < 0:
        raise ConfigError(f"train.eval_train_images must be >= 0 (0: never), got {cfg.train.eval_train_images}")
    if cfg.train.analysis_captions < 0 or cfg.train.phoneme_utterances < 0:
        raise ConfigError("train.analysis_captions and train.phoneme_utterances must be >= 0 (0: all of them)")


IMAGE_ENCODERS = ("auto", "densenet", "features")


def check_runnable(cfg: Config, images: bool = True) -> None:
    """What a run checks before any corpus work: check_consistent, then check_image_side where its
    family uses images (`images`; vgs.tasks.factory.check_config asks the family)."""
    check_consistent(cfg)
    if images:
        check_image_side(cfg)


def check_image_side(cfg: Config) -> None:
    """A configuration whose image side is fixed features (model.image.encoder=features) refuses to
    start without them, naming the command that extracts them: it never falls back to a DenseNet."""
    image = cfg.model.image
    if image.encoder != "features" or cfg.data.image_features:
        return
    arch = image.features_from or "resnet152"
    corpus = cfg.data.root or "CORPUS"
    raise ConfigError(
        f"model.image.encoder=features: the image side is a linear map of fixed {arch} features, and "
        f"data.image_features is empty. Extract them once with\n"
        f"    vgs features images --data {corpus} --arch {arch} --weights {arch}.pth --out {arch}-features.npz\n"
        f"then add data.image_features={arch}-features.npz. vgs never downloads weights: save torchvision's "
        f"ImageNet {arch} state_dict to {arch}.pth on a machine that has them (torch.save(torchvision.models."
        f"{arch}(weights='DEFAULT').state_dict(), '{arch}.pth')) and copy it here. To train a DenseNet from "
        f"pixels instead (not the paper's setup) set model.image.encoder=densenet."
    )
