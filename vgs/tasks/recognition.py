"""asr / slt (Higy et al. 2020 §3.1.3): speech -> characters of the transcript (ASR) or the translation
(SLT) with an attention encoder-decoder; no images."""

from __future__ import annotations

from vgs.config import ModelConfig
from vgs.models.families import Recognizer
from vgs.tasks.base import Task


class Recognition(Task):
    sections = ("speech", "asr")
    network = Recognizer
    image_queries = None
    decodes = True

    def __init__(self, family: str, text: str):
        super().__init__(family)
        self.text = text

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        return ("asr",)

    def selection(self, cfg: ModelConfig) -> tuple[str, str]:
        return ("val_wer", "min") if self.text == "transcript" else ("val_bleu", "max")

    def model_name(self, cfg: ModelConfig) -> str:
        return f"{self.family}-E{cfg.asr.encoder_layers}H{cfg.asr.hidden}"
