"""text-image (Higy et al. 2020 §3.1.2): the transcripts (or translations) instead of the speech, at test
time too: the high estimate for the speech models."""

from __future__ import annotations

from vgs.config import ModelConfig
from vgs.models.families import TextImage as TextImageNet
from vgs.tasks.base import Task


class TextImage(Task):
    family = "text-image"
    sections = ("text", "image")
    network = TextImageNet
    text = "config"
    image_queries = "text"

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        return ("t2i",)

    def model_name(self, cfg: ModelConfig) -> str:
        return f"text-image-T{cfg.text.layers}A{cfg.latent}"
