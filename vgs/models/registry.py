"""Model registry by name.

`DG{L}A{N}` is seed 002's co-embedding pair: L BiGRU layers, latent size N, DenseNet-264-like
image encoder (growth 32, init 64, blocks 6-12-64-48).  A suffix picks a smaller DenseNet for
CPU work: `-small` (growth 12, init 24, blocks 2-4-6-4) or `-tiny` (growth 8, init 16, 2-2-2-2).
"""
from __future__ import annotations

import re

import torch.nn as nn

from vgs.config import ImageConfig, ModelConfig, SpeechConfig
from vgs.models.coembed import CoEmbedding
from vgs.models.families import MultitaskMatch, MultitaskTranscribe, Pipeline, Recognizer, TextImage, ThreeTask

PAPER_PAIRS = ("DG2A1024", "DG2A2048", "DG3A1024", "DG4A1024", "DG4A2048")  # seed 002 Table 1
IMAGE_VARIANTS = {
    "": ImageConfig(),
    "-small": ImageConfig(growth_rate=12, blocks="2-4-6-4", init_features=24),
    "-tiny": ImageConfig(growth_rate=8, blocks="2-2-2-2", init_features=16),
}
# family -> (class, text source it must use or None for model.text.source, extra constructor args)
FAMILIES: dict[str, tuple] = {
    "coembed": (CoEmbedding, None), "speech-image": (CoEmbedding, None),
    "text-image": (TextImage, None),
    "asr": (Recognizer, "transcript"), "slt": (Recognizer, "translation"),
    "pipe-ind": (Pipeline, None), "pipe-seq": (Pipeline, None),
    "mtl-transcribe": (MultitaskTranscribe, "transcript"), "mtl-translate": (MultitaskTranscribe, "translation"),
    "mtl-match": (MultitaskMatch, None),
    "three-task": (ThreeTask, "transcript"),
}
TEXT_FAMILIES = tuple(f for f in FAMILIES if f not in ("coembed", "speech-image"))
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
    f, m = cfg.family, (cfg.match if cfg.family == "mtl-match" else cfg.mtl)
    if f in ("coembed", "speech-image"):
        suffix = next((k for k, v in IMAGE_VARIANTS.items() if v == cfg.image), "-custom")
        return f"DG{cfg.speech.layers}A{cfg.latent}{suffix}"
    if f == "text-image":
        return f"text-image-T{cfg.text.layers}A{cfg.latent}"
    if f in ("asr", "slt"):
        return f"{f}-E{cfg.asr.encoder_layers}H{cfg.asr.hidden}"
    if f == "three-task":
        t = cfg.three
        cells = [t.speech_layers, t.text_layers, t.s2i, t.s2t, t.t2s, t.t2i]
        return "three-task-" + ".".join("x" if v < 0 else str(v) for v in cells) + f"A{cfg.latent}"
    if f.startswith("pipe"):
        return f"{f}-E{cfg.asr.encoder_layers}H{cfg.asr.hidden}-T{cfg.text.layers}A{cfg.latent}"
    return f"{f}-{m.shared_layers}.{m.s2i_layers}.{m.task_layers}A{cfg.latent}"


def text_source(cfg: ModelConfig) -> str | None:
    """The text a family trains on (None: it uses no text)."""
    if cfg.family not in FAMILIES:
        raise ValueError(f"unknown model family '{cfg.family}'; known: {', '.join(FAMILIES)}")
    if cfg.family in ("coembed", "speech-image"):
        return None
    source = FAMILIES[cfg.family][1] or cfg.text.source
    if source not in ("transcript", "translation"):
        raise ValueError(f"model.text.source must be transcript or translation, got '{source}'")
    return source


def uses_nonaligned_speech_text(cfg) -> bool:
    """Whether a configuration (vgs.config.Config) trains on a NON-ALIGNED speech/text corpus."""
    return cfg.data.speech_text == "nonaligned" and cfg.model.family in ("three-task", "mtl-match")


def build_model(cfg: ModelConfig, input_dim: int, image_dim: int = 0, vocab_size: int = 0,
                epochs: int = 1) -> nn.Module:
    """input_dim: speech feature size; image_dim: size of precomputed image features (0: pixels);
    vocab_size: characters of the text families; epochs: pipe-seq's default ASR phase is half."""
    source = text_source(cfg)
    cls = FAMILIES[cfg.family][0]
    if cls is CoEmbedding:
        return CoEmbedding(cfg, input_dim, image_dim)
    if cfg.latent % 2:
        raise ValueError(f"model.latent must be even (N/2 GRU units per direction), got {cfg.latent}")
    if vocab_size < 5:
        raise ValueError(f"family '{cfg.family}' needs text, but the training split has none for '{source}'")
    if cls is Pipeline:
        return Pipeline(cfg, input_dim, image_dim, vocab_size, sequential=cfg.family == "pipe-seq", epochs=epochs)
    return cls(cfg, input_dim, image_dim, vocab_size)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def info(name: str, input_dim: int = 40) -> dict:
    cfg = model_config(name)
    model = build_model(cfg, input_dim)
    return {"name": name, "gru_layers": cfg.speech.layers, "latent": cfg.latent, "input_dim": input_dim,
            "image_blocks": cfg.image.blocks, "speech_params": count_params(model.speech),
            "image_params": count_params(model.image)}
