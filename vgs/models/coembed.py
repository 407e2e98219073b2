"""The speech-image co-embedding family (Mortazavi 2020): a speech encoder and an image encoder into
one N-dimensional space, trained with the all-negatives hinge loss."""

from __future__ import annotations

import torch

from vgs.config import ModelConfig
from vgs.losses import Loss, contrastive
from vgs.models.families import Family
from vgs.models.image import ImageEncoder
from vgs.models.speech import SpeechEncoder


class CoEmbedding(Family):
    objectives = ("s2i",)

    def __init__(self, cfg: ModelConfig, input_dim: int, image_dim: int = 0):
        super().__init__()
        self.speech = SpeechEncoder(cfg.speech, input_dim, cfg.latent)
        self.image = ImageEncoder(cfg.image, cfg.latent, image_dim)

    def objective(self, batch: dict, objective: str = "s2i", loss: Loss = Loss()) -> dict[str, torch.Tensor]:
        """Named loss terms for one batch (the training loop sums them)."""
        speech = self.speech(batch["speech"], batch["lengths"])
        image = self.image(batch["pixels"])
        return {"s2i": contrastive(speech, image, loss, batch["image_ids"])}

    def query(self, batch: dict, beam: int = 1) -> torch.Tensor:
        return self.speech(batch["speech"], batch["lengths"])

    def speech_states(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The speech encoder's frame-level states (its BiGRU's output) and their lengths."""
        return self.speech.states(speech, lengths)
