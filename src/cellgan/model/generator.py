"""The generator G(z, c): a categorical code and noise to a 32×32 RGB cell patch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cellgan.model.layers import conv1x1, conv3x3, init_weights_, upsample

__all__ = ["Generator", "UpBlock"]


class UpBlock(nn.Module):
    """Residual block that doubles the spatial size, with batch norm.

    Main path: BN, ReLU, 3×3 conv, BN, ReLU, ×2 upsample, 3×3 conv; shortcut: ×2
    upsample then 1×1 conv. This is the order of the authors' code
    (``ResidualBlock(resample='up')`` in ``bohu615/nu_gan``): the first convolution
    runs at the input resolution, a quarter of the cost of running it after the
    upsampling.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = conv1x1(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(upsample(x))
        h = self.conv1(F.relu(self.bn1(x)))
        h = self.conv2(upsample(F.relu(self.bn2(h))))
        return h + shortcut


class Generator(nn.Module):
    """G: [one-hot c (K) ‖ z (noise_dim)] → (B, 3, 32, 32) in [−1, 1].

    Linear → width×4×4 → three :class:`UpBlock` (4→8→16→32) → BN, ReLU, 3×3 conv
    to 3 channels, tanh (Hu et al. 2019, Section III-B; the authors' ``generator``).

    Parameters
    ----------
    categories : int
        K, the number of categories of the code c.
    noise_dim : int
        Size of z ~ N(0, I); 32 in the authors' code.
    width : int
        Channels of every block; 128 in the paper.
    seed : int
        Seed of the initial weights (the authors' initialisation, see
        :func:`cellgan.model.layers.init_weights_`).
    """

    def __init__(self, *, categories: int, noise_dim: int = 32, width: int = 128, seed: int = 0):
        super().__init__()
        if categories < 2:
            raise ValueError(f"categories must be at least 2, got {categories}")
        self.categories = categories
        self.noise_dim = noise_dim
        self.width = width
        self.linear = nn.Linear(categories + noise_dim, width * 4 * 4)
        self.blocks = nn.Sequential(UpBlock(width, width), UpBlock(width, width), UpBlock(width, width))
        self.bn = nn.BatchNorm2d(width)
        self.to_rgb = conv3x3(width, 3)
        init_weights_(self, generator=torch.Generator().manual_seed(seed))

    def forward(self, z: torch.Tensor, c_onehot: torch.Tensor) -> torch.Tensor:
        """Generate patches from noise ``z`` (B, noise_dim) and codes ``c_onehot`` (B, K)."""
        h = self.linear(torch.cat([c_onehot, z], dim=1))
        h = h.view(-1, self.width, 4, 4)
        h = self.blocks(h)
        return torch.tanh(self.to_rgb(F.relu(self.bn(h))))
