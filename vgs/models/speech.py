"""Speech encoder of seed 002 §4.1: conv1d (64 kernels of 6) + L BiGRU layers of N/2 units per
direction + vectorial attention (W: N->128, V: 128->N) + L2 normalisation."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vgs.config import SpeechConfig


class VectorialAttention(nn.Module):
    """alpha_t = softmax_t(V tanh(W h_t + b_w) + b_v); Att = sum_t alpha_t * h_t (element-wise)."""

    def __init__(self, n: int, hidden: int = 128):
        super().__init__()
        self.W = nn.Linear(n, hidden)
        self.V = nn.Linear(hidden, n)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.V(torch.tanh(self.W(h)))  # (B, T, N)
        scores = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))  # padding gets no weight
        return (torch.softmax(scores, dim=1) * h).sum(1)


class SpeechEncoder(nn.Module):
    def __init__(self, cfg: SpeechConfig, input_dim: int, latent: int):
        super().__init__()
        if latent % 2:
            raise ValueError(f"model.latent must be even (N/2 GRU units per direction), got {latent}")
        if cfg.layers < 1:
            raise ValueError(f"model.speech.layers must be >= 1, got {cfg.layers}")
        self.kernel, self.stride = cfg.conv_kernel, cfg.conv_stride
        self.conv = nn.Conv1d(input_dim, cfg.conv_channels, cfg.conv_kernel, stride=cfg.conv_stride)
        self.gru = nn.GRU(cfg.conv_channels, latent // 2, num_layers=cfg.layers, batch_first=True, bidirectional=True)
        self.attention = VectorialAttention(latent, cfg.attention_hidden)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return ((lengths - self.kernel) // self.stride + 1).clamp(min=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: (B, T, input_dim) padded frames (T >= kernel); lengths: (B,) valid frames."""
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        out_len = self.output_lengths(lengths).clamp(max=y.size(1))
        packed = pack_padded_sequence(y, out_len.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=y.size(1))
        mask = torch.arange(y.size(1), device=x.device)[None, :] < out_len.to(x.device)[:, None]
        return F.normalize(self.attention(h, mask), dim=-1)
