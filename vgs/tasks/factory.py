"""The family-level factory: build a configuration's network, name it, and read a command line's
config, each through the family's Task (open_clip's factory, one level above vgs.models)."""

from __future__ import annotations

import torch.nn as nn

from vgs.config import Config, ModelConfig, config_from_cli, parse_cli_overrides
from vgs.tasks import Sizes, check_family_keys, task_of


def model_name(cfg: ModelConfig) -> str:
    """A short name for logs and tables: DG{L}A{N}[-small|-tiny|-custom] for the co-embedding
    (the registry's terms), the family and its layer counts otherwise."""
    return task_of(cfg).model_name(cfg)


def text_source(cfg: ModelConfig) -> str | None:
    """The text a family trains on (None: it uses no text)."""
    return task_of(cfg).text_source(cfg)


def uses_nonaligned_speech_text(cfg) -> bool:
    """Whether a configuration (vgs.config.Config) trains on a NON-ALIGNED speech/text corpus."""
    return task_of(cfg.model).uses_speech_text_corpus(cfg)


def build_model(
    cfg: ModelConfig,
    input_dim: int,
    image_dim: int = 0,
    vocab_size: int = 0,
    epochs: int = 1,
    max_chars: int | None = None,
) -> nn.Module:
    """The family's network (its Task builds it).  input_dim: speech feature size; image_dim: size
    of precomputed image features (0: pixels); vocab_size: characters of the text families;
    epochs: the training budget; max_chars: decoding limit (None: model.asr.max_chars)."""
    task = task_of(cfg)
    task.text_source(cfg)  # an unusable model.text.source is refused before anything is built
    return task.build(cfg, Sizes(input_dim, image_dim, vocab_size, epochs, max_chars))


def cli_config(base: str, items: list[str], data: str | None = None, skip_bad: bool = False) -> Config:
    """A command line's config (vgs.config.config_from_cli) with model.* keys that its family does
    not read refused: the families know which keys they read."""
    cfg = config_from_cli(base, items, data, skip_bad)
    check_family_keys(cfg.model, parse_cli_overrides(items))
    return cfg
