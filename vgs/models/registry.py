"""Model registry by name.

`DG{L}A{N}` is seed 002's co-embedding pair: L BiGRU layers, latent size N, DenseNet-264-like
image encoder (growth 32, init 64, blocks 6-12-64-48).  A suffix picks a smaller DenseNet for
CPU work: `-small` (growth 12, init 24, blocks 2-4-6-4) or `-tiny` (growth 8, init 16, 2-2-2-2).
"""
from __future__ import annotations

import re

import torch.nn as nn

from vgs.config import ImageConfig, ModelConfig, SpeechConfig
from vgs.tasks import Sizes, task_of

PAPER_PAIRS = ("DG2A1024", "DG2A2048", "DG3A1024", "DG4A1024", "DG4A2048")  # seed 002 Table 1
IMAGE_VARIANTS = {
    "": ImageConfig(),
    "-small": ImageConfig(growth_rate=12, blocks="2-4-6-4", init_features=24),
    "-tiny": ImageConfig(growth_rate=8, blocks="2-2-2-2", init_features=16),
}
_NAME = re.compile(r"^DG(\d+)A(\d+)(-small|-tiny)?$")


def model_config(name: str) -> ModelConfig:
    m = _NAME.match(name)
    if not m:
        raise ValueError(f"unknown model '{name}'; names look like DG{{L}}A{{N}}[-small|-tiny], "
                         f"e.g. {', '.join(PAPER_PAIRS)}, DG2A256-small")
    layers, latent, variant = int(m.group(1)), int(m.group(2)), m.group(3) or ""
    image = IMAGE_VARIANTS[variant]
    return ModelConfig(family="coembed", latent=latent, speech=SpeechConfig(layers=layers),
                       image=ImageConfig(**vars(image)))


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


def build_model(cfg: ModelConfig, input_dim: int, image_dim: int = 0, vocab_size: int = 0,
                epochs: int = 1, max_chars: int | None = None) -> nn.Module:
    """The family's network (its Task builds it).  input_dim: speech feature size; image_dim: size
    of precomputed image features (0: pixels); vocab_size: characters of the text families;
    epochs: the training budget; max_chars: decoding limit (None: model.asr.max_chars)."""
    task = task_of(cfg)
    task.text_source(cfg)  # an unusable model.text.source is refused before anything is built
    return task.build(cfg, Sizes(input_dim, image_dim, vocab_size, epochs, max_chars))


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def info(name: str, input_dim: int = 40) -> dict:
    cfg = model_config(name)
    model = build_model(cfg, input_dim)
    return {"name": name, "gru_layers": cfg.speech.layers, "latent": cfg.latent, "input_dim": input_dim,
            "image_blocks": cfg.image.blocks, "speech_params": count_params(model.speech),
            "image_params": count_params(model.image)}
