"""text-image (seed 003 §3.1.2): the transcripts (or translations) instead of the speech, at test
time too: the high estimate for the speech models."""
from __future__ import annotations

from vgs.config import ModelConfig
from vgs.models.families import TextImage as TextImageNet
from vgs.tasks.base import Sizes, Task, check_even_latent, needs_text


class TextImage(Task):
    family = "text-image"
    sections = ("text", "image")
    text = "config"
    image_queries = "text"

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        return ("t2i",)

    def build(self, cfg: ModelConfig, sizes: Sizes) -> TextImageNet:
        check_even_latent(cfg)
        needs_text(cfg, sizes, self.text_source(cfg))
        return TextImageNet(cfg, sizes.speech_dim, sizes.image_dim, sizes.vocab)

    def model_name(self, cfg: ModelConfig) -> str:
        return f"text-image-T{cfg.text.layers}A{cfg.latent}"
