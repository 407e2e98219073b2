"""speech-image (Mortazavi 2020): a speech encoder and an image encoder trained together into one space."""

from __future__ import annotations

from vgs.config import ModelConfig
from vgs.models.coembed import CoEmbedding
from vgs.tasks.base import Sizes, Task


class SpeechImage(Task):
    family = "speech-image"
    sections = ("speech", "image")
    transformer_head = True

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        return ("s2i",)

    def build(self, cfg: ModelConfig, sizes: Sizes) -> CoEmbedding:
        return CoEmbedding(cfg, sizes.speech_dim, sizes.image_dim)

    def model_name(self, cfg: ModelConfig) -> str:
        """DG{L}A{N}[-small|-tiny|-custom]: the registry's terms (vgs.models.registry)."""
        from vgs.models.registry import IMAGE_VARIANTS

        suffix = next((k for k, v in IMAGE_VARIANTS.items() if v == cfg.image), "-custom")
        if cfg.speech.head == "transformer":  # T{layers}x{dim}: the light transformer head
            return f"T{cfg.speech.transformer.layers}x{cfg.speech.transformer.dim}A{cfg.latent}{suffix}"
        return f"DG{cfg.speech.layers}A{cfg.latent}{suffix}"
