"""Image encoder of Mortazavi 2020 §4.2: DenseNet trained from pixels (no pre-training), global average
pooling and a linear layer to N, L2-normalised.  torchvision's DenseNet has exactly that head."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from vgs.config import ImageConfig


def parse_blocks(blocks: str) -> tuple[int, ...]:
    try:
        out = tuple(int(b) for b in blocks.split("-"))
    except ValueError:
        out = ()
    if not out or any(b < 1 for b in out):
        raise ValueError(f"model.image.blocks must look like '6-12-64-48', got {blocks!r}")
    return out


class ImageEncoder(nn.Module):
    """feature_dim > 0: precomputed image features (Higy et al. 2020, Chrupała 2019) through one linear layer."""

    def __init__(self, cfg: ImageConfig, latent: int, feature_dim: int = 0):
        super().__init__()
        # no silent fallback: a configuration made for fixed features never becomes a DenseNet
        if cfg.encoder == "features" and not feature_dim:
            raise ValueError("model.image.encoder=features needs data.image_features (precomputed image features)")
        if cfg.encoder == "densenet" and feature_dim:
            raise ValueError("model.image.encoder=densenet reads pixels, but image features were given")
        if feature_dim:
            self.net = nn.Linear(feature_dim, latent)
            return
        self.net = torchvision.models.DenseNet(
            growth_rate=cfg.growth_rate,
            block_config=parse_blocks(cfg.blocks),
            num_init_features=cfg.init_features,
            bn_size=cfg.bn_size,
            num_classes=latent,
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: (B, 3, H, W) standardised floats, or (B, feature_dim) precomputed features."""
        if pixels.dim() == 4 and pixels.is_cuda:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return F.normalize(self.net(pixels), dim=-1)
