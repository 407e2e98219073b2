"""Model registry by name.

`DG{L}A{N}` is Mortazavi 2020's co-embedding pair: L BiGRU layers, latent size N, DenseNet-264-like
image encoder (growth 32, init 64, blocks 6-12-64-48).  A suffix picks a smaller DenseNet for
CPU work: `-small` (growth 12, init 24, blocks 2-4-6-4) or `-tiny` (growth 8, init 16, 2-2-2-2).
"""

from __future__ import annotations

import re

import torch.nn as nn

from vgs.config import ImageConfig, ModelConfig, SpeechConfig
from vgs.models.coembed import CoEmbedding

PAPER_PAIRS = ("DG2A1024", "DG2A2048", "DG3A1024", "DG4A1024", "DG4A2048")  # Mortazavi 2020 Table 1
IMAGE_VARIANTS = {
    "": ImageConfig(),
    "-small": ImageConfig(growth_rate=12, blocks="2-4-6-4", init_features=24),
    "-tiny": ImageConfig(growth_rate=8, blocks="2-2-2-2", init_features=16),
}
_NAME = re.compile(r"^DG(\d+)A(\d+)(-small|-tiny)?$")


def model_config(name: str) -> ModelConfig:
    m = _NAME.match(name)
    if not m:
        raise ValueError(
            f"unknown model '{name}'; names look like DG{{L}}A{{N}}[-small|-tiny], "
            f"e.g. {', '.join(PAPER_PAIRS)}, DG2A256-small"
        )
    layers, latent, variant = int(m.group(1)), int(m.group(2)), m.group(3) or ""
    image = IMAGE_VARIANTS[variant]
    return ModelConfig(
        family="coembed", latent=latent, speech=SpeechConfig(layers=layers), image=ImageConfig(**vars(image))
    )


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def info(name: str, input_dim: int = 40) -> dict:
    cfg = model_config(name)
    model = CoEmbedding(cfg, input_dim)
    return {
        "name": name,
        "gru_layers": cfg.speech.layers,
        "latent": cfg.latent,
        "input_dim": input_dim,
        "image_blocks": cfg.image.blocks,
        "speech_params": count_params(model.speech),
        "image_params": count_params(model.image),
    }
