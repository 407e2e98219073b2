"""Character text encoder (Higy et al. 2020 §3.1.2): embedding (128) + BiGRU (N/2 units per direction)
+ vectorial attention + L2 normalisation."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vgs.config import TextConfig
from vgs.data.text import PAD
from vgs.models.blocks import BiGRU, VectorialAttention, length_mask


class TextEncoder(nn.Module):
    def __init__(self, cfg: TextConfig, vocab_size: int, latent: int):
        super().__init__()
        if cfg.layers < 1:
            raise ValueError(f"model.text.layers must be >= 1, got {cfg.layers}")
        self.embed = nn.Embedding(vocab_size, cfg.embed, padding_idx=PAD)
        self.gru = BiGRU(cfg.embed, latent // 2, cfg.layers)
        self.attention = VectorialAttention(latent, cfg.attention_hidden)

    def forward(self, text: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """text: (B, L) character ids padded with PAD; lengths: (B,)."""
        h = self.gru(self.embed(text), lengths)
        return F.normalize(self.attention(h, length_mask(lengths.to(text.device), h.size(1))), dim=-1)
