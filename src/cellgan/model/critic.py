"""The critic D(x) and its auxiliary head Q(c | x), on one shared residual trunk or two."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cellgan.model.layers import conv1x1, conv3x3, conv_mean_pool, init_weights_, mean_pool

__all__ = ["Critic", "CriticOutput", "CriticTrunk"]


class CriticOutput(NamedTuple):
    """What the critic returns for a batch of B patches."""

    score: torch.Tensor  #: (B,) the Wasserstein critic's value D(x)
    q_logits: torch.Tensor  #: (B, K) logits of Q(c | x); log-softmax gives log-probabilities
    features: torch.Tensor  #: (B, width) the globally pooled features Q reads


class _FirstDownBlock(nn.Module):
    """conv-ReLU-conv-meanpool, shortcut meanpool-then-1×1 (32→16); no ReLU on the input.

    The second conv and the pooling run as one strided convolution
    (:func:`~cellgan.model.layers.conv_mean_pool`).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = conv1x1(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = conv_mean_pool(F.relu(self.conv1(x)), self.conv2)
        return h + self.shortcut(mean_pool(x))


class _DownBlock(nn.Module):
    """ReLU-conv-ReLU-conv-meanpool; shortcut 1×1 conv and meanpool.

    The last conv and the pooling run as one strided convolution
    (:func:`~cellgan.model.layers.conv_mean_pool`), as in the first block.

    The authors' code applies the 1×1 convolution before the pooling; both are
    linear and per-pixel/per-channel, so pooling first gives the same result with
    a quarter of the work.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        self.shortcut = conv1x1(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = conv_mean_pool(F.relu(self.conv1(F.relu(x))), self.conv2)
        return h + self.shortcut(mean_pool(x))


class _PlainBlock(nn.Module):
    """ReLU-conv-ReLU-conv with an identity shortcut."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class CriticTrunk(nn.Module):
    """(B, 3, 32, 32) → (B, width) features, without normalisation layers (WGAN-GP)."""

    def __init__(self, width: int):
        super().__init__()
        self.blocks = nn.Sequential(
            _FirstDownBlock(3, width),  # 32 → 16
            _DownBlock(width),  # 16 → 8
            _PlainBlock(width),
            _PlainBlock(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).mean(dim=(2, 3))


class Critic(nn.Module):
    """The critic D and the InfoGAN head Q, on a shared trunk (Hu et al. 2019, Fig. 2) or two.

    Parameters
    ----------
    categories : int
        K, the number of categories Q predicts.
    width : int
        Channels of the trunk; 128 in the paper.
    seed : int
        Seed of the initial weights (the authors' initialisation).
    separate_q : bool
        Give Q a trunk of its own (same architecture) instead of the critic's
        [False in the paper]. Q then fits targets on real cells (self-labels)
        without fighting the Wasserstein critic for the same features.
    place_features : int
        Columns of the description of a cell's place that Q's head reads beside
        the pooled features (:func:`cellgan.neighbourhood.place_description`) [0:
        the paper's Q reads the patch alone]. Each column is standardised by the
        training cells' mean and spread (:meth:`set_place_scale`, kept in the
        weights) and clipped at ±3; a cell without a place (a generated one, or
        ``place=None``) reads zeros, the training cells' average place.

    Notes
    -----
    ``forward`` returns Q's logits; the log-softmax of the authors' ``_netD_Q`` is
    applied by the loss (:func:`cellgan.model.losses.mutual_information_loss`).
    """

    def __init__(
        self,
        *,
        categories: int,
        width: int = 128,
        seed: int = 0,
        separate_q: bool = False,
        place_features: int = 0,
    ):
        super().__init__()
        if categories < 2:
            raise ValueError(f"categories must be at least 2, got {categories}")
        self.categories = categories
        self.width = width
        self.trunk = CriticTrunk(width)
        self.score_head = nn.Linear(width, 1)
        self.q_trunk = CriticTrunk(width) if separate_q else None
        self.place_features = place_features
        self.q_head = nn.Linear(width + place_features, categories)
        self.register_buffer("place_mean", torch.zeros(place_features))
        self.register_buffer("place_std", torch.ones(place_features))
        init_weights_(self, generator=torch.Generator().manual_seed(seed))

    def set_place_scale(self, place: torch.Tensor) -> None:
        """Standardise every later place description by the mean and spread of ``place`` (N, place_features)."""
        place = torch.as_tensor(place, dtype=self.place_mean.dtype, device=self.place_mean.device)
        if place.ndim != 2 or place.shape[1] != self.place_features or len(place) == 0:
            raise ValueError(f"place must be (N ≥ 1, {self.place_features}), got {tuple(place.shape)}")
        self.place_mean.copy_(place.mean(dim=0))
        self.place_std.copy_(place.std(dim=0, unbiased=False).clamp_min(1e-6))

    def _q_logits(self, features: torch.Tensor, place: torch.Tensor | None) -> torch.Tensor:
        if not self.place_features:
            return self.q_head(features)
        if place is None:
            read = features.new_zeros(len(features), self.place_features)
        else:  # rows of NaN (no place: generated cells) read the average place, 0
            read = ((place.to(features.dtype) - self.place_mean) / self.place_std).clamp(-3.0, 3.0).nan_to_num(0.0)
        return self.q_head(torch.cat([features, read], dim=1))

    def q(self, x: torch.Tensor, place: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Q alone on ``x``: (logits (B, K), features (B, width)), through Q's own trunk when it has one.

        ``place``: (B, place_features) descriptions of the cells' places, when Q reads them.
        """
        features = (self.trunk if self.q_trunk is None else self.q_trunk)(x)
        return self._q_logits(features, place), features

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) alone, (B,): what the gradient penalty differentiates."""
        return self.score_head(self.trunk(x)).squeeze(1)

    def forward(self, x: torch.Tensor, place: torch.Tensor | None = None) -> CriticOutput:
        features = self.trunk(x)
        score = self.score_head(features).squeeze(1)
        if self.q_trunk is not None:
            features = self.q_trunk(x)
        return CriticOutput(score, self._q_logits(features, place), features)
