"""Strong, batched augmentations of real cell patches for contrastive views (VOLTA-style).

Not in Hu et al. 2019. Two views of one cell that Q's trunk must agree on
(:mod:`cellgan.model.contrastive`) should differ in everything that is not the
cell type: orientation, a little position and zoom, staining. Following VOLTA
(Nakhli et al. 2023, AIMLab-UBC/VOLTA ``main.py get_augmentation``: random resized
crop, colour jitter, random grayscale, Gaussian blur, flips) with two changes for
cells: the crop keeps at least ``min_scale`` (≈ 0.6) of the patch's area so that a
nucleus's size survives (it tells lymphocytes from epithelial nuclei), and a stain
augmentation in HED space (Tellez et al. 2018) scales and shifts each stain's
concentration, since per-image staining is what split the clusters before.

Every function works on float (B, 3, H, W) batches in [−1, 1] (the trainer's
scale; white = 1) and takes every random number from a ``torch.Generator``, so a
training step stays a pure function of (seed, step). :func:`strong_view` chains
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "AugmentConfig",
    "RGB_FROM_HED",
    "colour_jitter",
    "gaussian_blur",
    "hed_jitter",
    "random_grayscale",
    "random_resized_crop",
    "rgb_to_hed",
    "hed_to_rgb",
    "strong_view",
]

#: Stain OD vectors as rows (haematoxylin, eosin, DAB), Ruifrok & Johnston 2001, as scikit-image's ``rgb_from_hed``.
RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float64
)
RGB_FROM_HED = RGB_FROM_HED / RGB_FROM_HED.norm(dim=1, keepdim=True)
_HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)
_LOG_ADJUST = math.log(1e-6)  # scikit-image's scaling of optical density


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of :func:`strong_view` (probabilities and ranges)."""

    min_scale: float = 0.6  #: smallest crop area, as a share of the patch
    max_ratio: float = 4 / 3  #: crop aspect ratios in [1/max_ratio, max_ratio]
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    p_jitter: float = 0.8
    p_grayscale: float = 0.2
    p_blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    hed_sigma: float = 0.05  #: each stain's concentration × U(1 − σ, 1 + σ) + U(−σ, σ)
    dihedral: bool = True


def _uniform(shape, low, high, rng: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=rng, device=device)


def random_resized_crop(
    x: torch.Tensor, rng: torch.Generator, *, min_scale: float = 0.6, max_ratio: float = 4 / 3, dihedral: bool = True
) -> torch.Tensor:
    """Crop a random box (area share in [min_scale, 1], aspect in [1/max_ratio, max_ratio]) and resize it back.

    With ``dihedral`` the same resampling also applies one of the 8 symmetries of
    the square (flips and quarter turns) at random. Bilinear; pixels that the box
    takes from beyond the patch copy its border.
    """
    b, _, h, w = x.shape
    device, dtype = x.device, x.dtype
    area = _uniform(b, min_scale, 1.0, rng, device)
    log_ratio = _uniform(b, -math.log(max_ratio), math.log(max_ratio), rng, device)
    ratio = log_ratio.exp()
    sx = (area * ratio).sqrt().clamp(max=1.0)  # half-widths in normalised coordinates
    sy = (area / ratio).sqrt().clamp(max=1.0)
    tx = (1 - sx) * _uniform(b, -1.0, 1.0, rng, device)
    ty = (1 - sy) * _uniform(b, -1.0, 1.0, rng, device)
    theta = torch.zeros(b, 2, 3, device=device, dtype=dtype)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    if dihedral:
        t = torch.randint(0, 8, (b,), generator=rng, device=device)
        angle = (t % 4).to(dtype) * (math.pi / 2)
        cos, sin = angle.cos().round(), angle.sin().round()
        flip = torch.where(t >= 4, -1.0, 1.0).to(dtype)
        sym = torch.zeros(b, 2, 2, device=device, dtype=dtype)
        sym[:, 0, 0], sym[:, 0, 1] = cos * flip, -sin
        sym[:, 1, 0], sym[:, 1, 1] = sin * flip, cos
        theta[:, :, :2] = theta[:, :, :2] @ sym
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(x01: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114], device=x01.device, dtype=x01.dtype)
    return (x01 * weights[None, :, None, None]).sum(1, keepdim=True)


def colour_jitter(
    x: torch.Tensor,
    rng: torch.Generator,
    *,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    p: float = 0.8,
) -> torch.Tensor:
    """Brightness, contrast and saturation factors in [1 − s, 1 + s], applied to a share ``p`` of the images."""
    b = x.shape[0]
    device = x.device
    x01 = (x + 1) / 2
    apply = (torch.rand(b, generator=rng, device=device) < p)[:, None, None, None]
    fb = _uniform((b, 1, 1, 1), 1 - brightness, 1 + brightness, rng, device).to(x.dtype)
    fc = _uniform((b, 1, 1, 1), 1 - contrast, 1 + contrast, rng, device).to(x.dtype)
    fs = _uniform((b, 1, 1, 1), 1 - saturation, 1 + saturation, rng, device).to(x.dtype)
    y = (x01 * fb).clamp(0, 1)
    mean = _gray(y).mean(dim=(2, 3), keepdim=True)
    y = ((y - mean) * fc + mean).clamp(0, 1)
    g = _gray(y)
    y = ((y - g) * fs + g).clamp(0, 1)
    return torch.where(apply, y * 2 - 1, x)


def random_grayscale(x: torch.Tensor, rng: torch.Generator, *, p: float = 0.2) -> torch.Tensor:
    """Replace a share ``p`` of the images by their luma (three equal channels)."""
    apply = (torch.rand(x.shape[0], generator=rng, device=x.device) < p)[:, None, None, None]
    g = _gray((x + 1) / 2) * 2 - 1
    return torch.where(apply, g.expand_as(x), x)


def gaussian_blur(
    x: torch.Tensor, rng: torch.Generator, *, sigma: tuple[float, float] = (0.1, 1.0), p: float = 0.5, radius: int = 2
) -> torch.Tensor:
    """Blur a share ``p`` of the images with a Gaussian of σ ~ U(sigma) pixels (kernel 2·radius + 1, reflect padding)."""
    b, c, h, w = x.shape
    device = x.device
    apply = (torch.rand(b, generator=rng, device=device) < p)[:, None, None, None]
    s = _uniform(b, sigma[0], sigma[1], rng, device).to(x.dtype)
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=x.dtype)
    k = torch.exp(-(offsets[None, :] ** 2) / (2 * s[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # (B, 2r+1), separable
    padded = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    kernel = k.repeat_interleave(c, dim=0)  # (B·C, 2r+1)
    y = F.conv2d(padded, kernel[:, None, None, :], groups=b * c)
    y = F.conv2d(y, kernel[:, None, :, None], groups=b * c).reshape(b, c, h, w)
    return torch.where(apply, y, x)


def rgb_to_hed(x: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """(B, 3, H, W) in [−1, 1] → stain concentrations (H, E, DAB), as scikit-image's ``rgb2hed``.

    ``clamp=False`` keeps the small negative concentrations that scikit-image
    clips, so that :func:`hed_to_rgb` inverts it exactly.
    """
    rgb = ((x + 1) / 2).clamp_min(1e-6)
    od = rgb.log() / _LOG_ADJUST
    m = _HED_FROM_RGB.to(x.device, x.dtype)
    stains = torch.einsum("bchw,cd->bdhw", od, m)
    return stains.clamp_min(0) if clamp else stains


def hed_to_rgb(stains: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hed`, back to [−1, 1] (scikit-image's ``hed2rgb``)."""
    m = RGB_FROM_HED.to(stains.device, stains.dtype)
    log_rgb = -torch.einsum("bdhw,dc->bchw", stains * (-_LOG_ADJUST), m)
    return (log_rgb.exp().clamp(0, 1)) * 2 - 1


def hed_jitter(x: torch.Tensor, rng: torch.Generator, *, sigma: float = 0.05) -> torch.Tensor:
    """Scale each stain's concentration by U(1 − σ, 1 + σ) and shift it by U(−σ, σ)·(its image's range), per image.

    The shift is relative to the image's largest concentration of that stain, so it
    does not lift the white background out of white on its own.
    """
    if sigma == 0:
        return x
    b = x.shape[0]
    stains = rgb_to_hed(x, clamp=False)
    alpha = _uniform((b, 3, 1, 1), 1 - sigma, 1 + sigma, rng, x.device).to(x.dtype)
    beta = _uniform((b, 3, 1, 1), -sigma, sigma, rng, x.device).to(x.dtype)
    scale = stains.amax(dim=(2, 3), keepdim=True)
    jittered = stains * alpha + beta * scale * (stains > 0)
    return hed_to_rgb(jittered)


def strong_view(x: torch.Tensor, rng: torch.Generator, config: AugmentConfig | None = None) -> torch.Tensor:
    """One strong random view of each image: crop (+ symmetry), HED jitter, colour jitter, grayscale, blur."""
    config = AugmentConfig() if config is None else config
    y = random_resized_crop(x, rng, min_scale=config.min_scale, max_ratio=config.max_ratio, dihedral=config.dihedral)
    y = hed_jitter(y, rng, sigma=config.hed_sigma)
    y = colour_jitter(
        y, rng, brightness=config.brightness, contrast=config.contrast, saturation=config.saturation, p=config.p_jitter
    )
    y = random_grayscale(y, rng, p=config.p_grayscale)
    y = gaussian_blur(y, rng, sigma=config.blur_sigma, p=config.p_blur)
    return y.clamp(-1, 1)
