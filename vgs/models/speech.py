"""Speech encoder of Mortazavi 2020 §4.1: conv1d (64 kernels of 6) + L BiGRU layers of N/2 units per
direction + vectorial attention (W: N->128, V: 128->N) + L2 normalisation."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vgs.config import SpeechConfig
from vgs.models.blocks import BiGRU, ConvFrontEnd, VectorialAttention, attention, length_mask

__all__ = ["SpeechEncoder", "VectorialAttention"]


class SpeechEncoder(nn.Module):
    def __init__(self, cfg: SpeechConfig, input_dim: int, latent: int):
        super().__init__()
        if latent % 2:
            raise ValueError(f"model.latent must be even (N/2 GRU units per direction), got {latent}")
        if cfg.layers < 1:
            raise ValueError(f"model.speech.layers must be >= 1, got {cfg.layers}")
        self.front = ConvFrontEnd(cfg, input_dim)
        self.gru = BiGRU(cfg.conv_channels, latent // 2, cfg.layers)
        self.attention = attention(cfg.attention, latent, cfg.attention_hidden)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: (B, T, input_dim) padded frames (T >= kernel); lengths: (B,) valid frames."""
        y, out_len = self.front(x, lengths)
        h = self.gru(y, out_len)
        return F.normalize(self.attention(h, length_mask(out_len.to(x.device), h.size(1))), dim=-1)
