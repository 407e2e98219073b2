"""Building blocks shared by the families: masked BiGRU stacks, the conv front end, vectorial
attention pooling."""

from __future__ import annotations

import torch
import torch.nn as nn

from vgs.config import SpeechConfig


def length_mask(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """(B, total) bool: True on the first lengths[b] positions."""
    return torch.arange(total, device=lengths.device)[None, :] < lengths[:, None]


class BiGRU(nn.Module):
    """Bidirectional GRU stack over padded sequences; layers == 0 is the identity.

    Padding never reaches a valid state, without packing: the forward direction reads padding
    only after each sequence's last frame, and the backward direction runs on each sequence
    reversed *within its own length* (padding stays at the end), then is reversed back.  Same
    result as pack_padded_sequence (tested), ~1.8x faster on CPU, and plain cuDNN calls on GPU.
    Outputs at padded positions are zero."""

    def __init__(self, input_size: int, hidden: int, layers: int, bidirectional: bool = True):
        super().__init__()
        self.layers = layers
        width = (2 if bidirectional else 1) * hidden  # bidirectional=False: Chrupała's forward-only GRUs
        self.out_size = width if layers else input_size
        sizes = ([input_size] + [width] * (layers - 1)) if layers else []  # 0 layers: no weights at all
        self.forward_layers = nn.ModuleList(nn.GRU(n, hidden, batch_first=True) for n in sizes)
        self.backward_layers = nn.ModuleList(
            nn.GRU(n, hidden, batch_first=True) for n in (sizes if bidirectional else [])
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.layers:
            return x
        lengths = lengths.to(x.device)
        steps = torch.arange(x.size(1), device=x.device)[None, :]
        valid = steps < lengths[:, None]
        # index t -> lengths-1-t inside each sequence, t on padding: its own inverse
        reverse = torch.where(valid, lengths[:, None] - 1 - steps, steps)
        flip = lambda h: h.gather(1, reverse[..., None].expand(-1, -1, h.size(2)))
        h = x
        if not self.backward_layers:  # forward only: padding comes after every valid frame
            for fw in self.forward_layers:
                h = fw(h)[0] * valid[..., None]
            return h
        for fw, bw in zip(self.forward_layers, self.backward_layers):
            h = torch.cat([fw(h)[0], flip(bw(flip(h))[0])], dim=-1) * valid[..., None]
        return h


class ConvFrontEnd(nn.Module):
    """1-D convolution over MFCC frames (Mortazavi 2020 §4.1 / Higy et al. 2020 §3.1.1)."""

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


class ScalarAttention(nn.Module):
    """alpha_t = softmax_t(U tanh(W h_t)); Att = sum_t alpha_t h_t: one weight per time step
    (Chrupała 2019 §3.3, eq. 4-5), where the vectorial attention weighs every dimension on its own."""

    def __init__(self, n: int, hidden: int = 128):
        super().__init__()
        self.W = nn.Linear(n, hidden)
        self.U = nn.Linear(hidden, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.U(torch.tanh(self.W(h)))  # (B, T, 1)
        scores = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        return (torch.softmax(scores, dim=1) * h).sum(1)


ATTENTIONS = {"vectorial": VectorialAttention, "scalar": ScalarAttention}


def attention(kind: str, n: int, hidden: int) -> nn.Module:
    """model.speech.attention: vectorial (Mortazavi 2020 and Higy et al. 2020) or scalar (Chrupała 2019)."""
    if kind not in ATTENTIONS:
        raise ValueError(f"model.speech.attention must be one of {', '.join(ATTENTIONS)}, got '{kind}'")
    return ATTENTIONS[kind](n, hidden)
