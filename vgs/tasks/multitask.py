"""The multitask families of Higy et al. 2020: a shared speech encoder with a speech->image branch and a
secondary branch trained in turn, one batch each; the speech-image data defines the epoch (the
secondary task's data cycles, reshuffled, however little text there is).

mtl-transcribe / mtl-translate (§3.1.4): the secondary task is ASR / SLT (model.mtl split).
mtl-match (§3.1.5, after Chrupała 2019): the secondary task is speech/text retrieval
(model.match split; data.speech_text=nonaligned takes its data from a second corpus).
"""

from __future__ import annotations

from vgs.config import ModelConfig
from vgs.models.families import MultitaskMatch, MultitaskTranscribe
from vgs.tasks.base import Task


def layer_name(family: str, split, latent: int, width: int | None = None) -> str:
    """'mtl-transcribe-4.1.1H1024A2048': the layer split, the encoders' width (H, where it is its own
    key) and the joint space (A)."""
    height = f"H{width}" if width is not None else ""
    return f"{family}-{split.shared_layers}.{split.s2i_layers}.{split.objective_layers}{height}A{latent}"


class MultitaskRecognition(Task):
    sections = ("speech", "asr", "mtl.shared_layers", "mtl.s2i_layers", "mtl.objective_layers", "image")
    network = MultitaskTranscribe
    decodes = True

    def __init__(self, family: str, text: str):
        super().__init__(family)
        self.text = text

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        return ("s2i", "asr")

    def model_name(self, cfg: ModelConfig) -> str:
        # the encoders are model.asr.hidden wide per direction: Higy et al. 2020 Table 5 varies it
        return layer_name(self.family, cfg.mtl, cfg.latent, cfg.asr.hidden)


class MultitaskMatching(Task):
    family = "mtl-match"
    sections = ("speech", "match", "text", "image")
    network = MultitaskMatch
    text = "config"
    nonaligned_speech_text = True

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        return ("s2i", "s2t")

    def model_name(self, cfg: ModelConfig) -> str:
        return layer_name(self.family, cfg.match, cfg.latent)
