"""Building blocks shared by the generator and the critic, and their initialisation.

The blocks follow the ResNet GAN of Gulrajani et al. (WGAN-GP, 2017) as adapted
by Hu et al. (IEEE JBHI 2019) in their code (``bohu615/nu_gan``,
``utils/networks_gan.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv3x3", "conv1x1", "mean_pool", "conv_mean_pool", "upsample", "init_weights_"]


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3×3 convolution with bias and 'same' zero padding."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 1×1 convolution with bias (the residual shortcuts)."""
    return nn.Conv2d(in_channels, out_channels, 1, bias=True)


def mean_pool(x: torch.Tensor) -> torch.Tensor:
    """Average each 2×2 block: halve the spatial size."""
    return F.avg_pool2d(x, 2)


def conv_mean_pool(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``mean_pool(conv(x))`` for a 3×3, padding-1 ``conv``, computed as one strided convolution.

    Averaging the 2×2 outputs of a 3×3 convolution equals a 4×4 convolution of
    stride 2 (padding 1) whose kernel is the mean of the 3×3 kernel shifted to
    the four corners. It gives the same result (to float rounding) with 16
    instead of 36 multiply-adds per output, which matters most in the gradient
    penalty's double backward pass.
    """
    k = conv.weight
    k4 = (F.pad(k, (0, 1, 0, 1)) + F.pad(k, (1, 0, 0, 1)) + F.pad(k, (0, 1, 1, 0)) + F.pad(k, (1, 0, 1, 0))) / 4
    return F.conv2d(x, k4, conv.bias, stride=2, padding=1)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2 upsampling, as ``nn.Upsample`` does by default."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def init_weights_(module: nn.Module, *, generator: torch.Generator) -> None:
    """Initialise ``module``'s layers in place as the authors' ``weights_init`` does.

    - Convolutions: uniform with standard deviation √(4 / (fan_in + fan_out)) for
      3×3 kernels and √(2 / (fan_in + fan_out)) for 1×1 kernels
      (fan = channels × kernel area); biases zero.
    - Linear layers: Glorot uniform, standard deviation √(2 / (fan_in + fan_out)).
    - Batch norm: weight ~ N(1, 0.02), bias zero.

    Parameters
    ----------
    module : nn.Module
        Every sub-module of it is visited.
    generator : torch.Generator
        The random source (CPU), so that a seed fixes the initial weights.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            area = layer.kernel_size[0] * layer.kernel_size[1]
            fan_sum = (layer.in_channels + layer.out_channels) * area
            gain = 4.0 if layer.kernel_size[0] == 3 else 2.0
            _uniform_std_(layer.weight, math.sqrt(gain / fan_sum), generator)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            std = math.sqrt(2.0 / (layer.in_features + layer.out_features))
            _uniform_std_(layer.weight, std, generator)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            with torch.no_grad():
                layer.weight.copy_(1.0 + 0.02 * torch.randn(layer.weight.shape, generator=generator))
            nn.init.zeros_(layer.bias)


def _uniform_std_(tensor: torch.Tensor, std: float, generator: torch.Generator) -> None:
    """Fill ``tensor`` with U(−√3·std, √3·std), whose standard deviation is ``std``."""
    bound = math.sqrt(3.0) * std
    with torch.no_grad():
        values = torch.rand(tensor.shape, generator=generator) * (2 * bound) - bound
        tensor.copy_(values)
