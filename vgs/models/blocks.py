"""Building blocks shared by the families: masked BiGRU stacks, the conv front end, vectorial
attention pooling."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vgs.config import SpeechConfig


def length_mask(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """(B, total) bool: True on the first lengths[b] positions."""
    return torch.arange(total, device=lengths.device)[None, :] < lengths[:, None]


class BiGRU(nn.Module):
    """Bidirectional GRU over padded sequences (packed, so padding never reaches the states);
    layers == 0 is the identity."""

    def __init__(self, input_size: int, hidden: int, layers: int):
        super().__init__()
        self.layers = layers
        self.out_size = 2 * hidden if layers else input_size
        self.gru = nn.GRU(input_size, hidden, num_layers=layers, batch_first=True, bidirectional=True) \
            if layers else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.gru is None:
            return x
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.size(1))[0]


class ConvFrontEnd(nn.Module):
    """1-D convolution over MFCC frames (seed 002 §4.1 / seed 003 §3.1.1)."""

    def __init__(self, cfg: SpeechConfig, input_dim: int):
        super().__init__()
        self.kernel, self.stride, self.out_size = cfg.conv_kernel, cfg.conv_stride, cfg.conv_channels
        self.conv = nn.Conv1d(input_dim, cfg.conv_channels, cfg.conv_kernel, stride=cfg.conv_stride)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, input_dim) padded frames (T >= kernel) -> (B, T', C) and valid lengths T'."""
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        out_len = ((lengths - self.kernel) // self.stride + 1).clamp(min=1, max=y.size(1))
        return y, out_len


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
