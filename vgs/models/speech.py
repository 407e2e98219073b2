"""Speech encoder of Mortazavi 2020 §4.1: conv1d (64 kernels of 6) + L BiGRU layers of N/2 units per
direction + vectorial attention (W: N->128, V: 128->N) + L2 normalisation; or, over a self-supervised
front-end's frames (model.speech.head=transformer), a light transformer pooled by a CLS token or by
vectorial attention (SpeechCLIP's head)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vgs.config import SpeechConfig, TransformerHeadConfig
from vgs.models.blocks import BiGRU, ConvFrontEnd, VectorialAttention, attention, length_mask

__all__ = ["SpeechEncoder", "TransformerHead", "VectorialAttention", "HEADS"]

HEADS = ("gru", "transformer")


class TransformerHead(nn.Module):
    """Frames -> a linear map to `dim`, `layers` transformer encoder layers (no positional encoding:
    an SSL front-end's frames carry their position), pooled (CLS or vectorial attention) -> N, L2."""

    def __init__(self, cfg: TransformerHeadConfig, input_dim: int, latent: int):
        super().__init__()
        if cfg.pool not in ("cls", "attention"):
            raise ValueError(f"model.speech.transformer.pool must be cls or attention, got '{cfg.pool}'")
        if cfg.layers < 1 or cfg.dim % cfg.heads:
            raise ValueError(
                f"model.speech.transformer needs layers >= 1 and dim divisible by heads (got {cfg.layers}, "
                f"{cfg.dim}, {cfg.heads})"
            )
        self.project = nn.Linear(input_dim, cfg.dim)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, cfg.ff, cfg.dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.cls = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02) if cfg.pool == "cls" else None
        self.attention = VectorialAttention(cfg.dim) if cfg.pool == "attention" else None
        self.out = nn.Linear(cfg.dim, latent)

    def states(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, dim) encoded frames (a CLS token first when pooling by it) and their mask."""
        mask = length_mask(lengths.to(x.device), x.size(1))
        h = self.project(x)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), -1, -1), h], 1)
            mask = torch.cat([mask.new_ones(len(h), 1), mask], 1)
        return self.encoder(h, src_key_padding_mask=~mask), mask

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, mask = self.states(x, lengths)
        pooled = h[:, 0] if self.attention is None else self.attention(h, mask)
        return F.normalize(self.out(pooled), dim=-1)


class SpeechEncoder(nn.Module):
    def __init__(self, cfg: SpeechConfig, input_dim: int, latent: int):
        super().__init__()
        if cfg.head not in HEADS:
            raise ValueError(f"model.speech.head must be one of {', '.join(HEADS)}, got '{cfg.head}'")
        self.transformer = TransformerHead(cfg.transformer, input_dim, latent) if cfg.head == "transformer" else None
        if self.transformer is not None:
            return
        if latent % 2:
            raise ValueError(f"model.latent must be even (N/2 GRU units per direction), got {latent}")
        if cfg.layers < 1:
            raise ValueError(f"model.speech.layers must be >= 1, got {cfg.layers}")
        self.front = ConvFrontEnd(cfg, input_dim)
        self.gru = BiGRU(cfg.conv_channels, latent // 2, cfg.layers)
        self.attention = attention(cfg.attention, latent, cfg.attention_hidden)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: (B, T, input_dim) padded frames (T >= kernel); lengths: (B,) valid frames."""
        if self.transformer is not None:
            return self.transformer(x, lengths)
        y, out_len = self.front(x, lengths)
        h = self.gru(y, out_len)
        return F.normalize(self.attention(h, length_mask(out_len.to(x.device), h.size(1))), dim=-1)

    def states(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-level states (the BiGRU's output, or the transformer's) and their lengths."""
        if self.transformer is not None:
            h, mask = self.transformer.states(x, lengths)
            return h, mask.sum(1)
        y, out_len = self.front(x, lengths)
        return self.gru(y, out_len), out_len
