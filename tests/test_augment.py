"""Strong views of real patches (cellgan.model.augment): shapes, ranges, invariances, known cases."""

import numpy as np
import torch

from cellgan.model import augment as A


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1


def _rng(seed=1):
    return torch.Generator().manual_seed(seed)


def test_strong_view_shape_range_and_reproducible():
    x = _batch()
    a = A.strong_view(x, _rng(3))
    b = A.strong_view(x, _rng(3))
    c = A.strong_view(x, _rng(4))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)  # a pure function of the generator's state
    assert not torch.equal(a, c)


def test_crop_of_full_scale_without_symmetry_is_identity():
    x = _batch()
    y = A.random_resized_crop(x, _rng(), min_scale=1.0, max_ratio=1.0, dihedral=False)
    assert torch.allclose(y, x, atol=1e-5)


def test_crop_symmetries_are_exact_dihedral_images():
    x = _batch(n=64)
    y = A.random_resized_crop(x, _rng(), min_scale=1.0, max_ratio=1.0, dihedral=True)
    for xi, yi in zip(x, y):
        candidates = [torch.rot90(v, k, dims=(1, 2)) for v in (xi, xi.flip(2)) for k in range(4)]
        assert min((c - yi).abs().max().item() for c in candidates) < 1e-5


def test_crop_keeps_a_white_image_white_and_a_centred_disc_centred():
    white = torch.ones(4, 3, 32, 32)
    assert torch.allclose(A.random_resized_crop(white, _rng()), white)
    yy, xx = torch.meshgrid(torch.arange(32) - 15.5, torch.arange(32) - 15.5, indexing="ij")
    disc = torch.where((yy**2 + xx**2) < 36, -1.0, 1.0).expand(32, 3, 32, 32).clone()
    y = A.random_resized_crop(disc, _rng(), min_scale=0.6)
    dark = (y[:, 0] < 0).float()
    area = dark.sum(dim=(1, 2))
    # zoom by at most 1/sqrt(0.6) per side (aspect ≤ 4/3): the nucleus's area grows by < 1/0.6·(4/3)
    assert (area > 0.9 * (disc[:, 0] < 0).sum(dim=(1, 2))).all()
    assert (area < (disc[0, 0] < 0).sum() / 0.6 * 4 / 3 + 8).all()


def test_hed_round_trip_and_skimage_agreement():
    from skimage.color import rgb2hed

    x = _batch().double()
    assert torch.allclose(A.hed_to_rgb(A.rgb_to_hed(x, clamp=False)), x, atol=1e-6)
    rgb = ((x + 1) / 2).permute(0, 2, 3, 1).numpy()
    ours = A.rgb_to_hed(x).permute(0, 2, 3, 1).numpy()
    theirs = np.maximum(np.stack([rgb2hed(im) for im in rgb]), 0)
    assert np.abs(ours - theirs).max() < 0.01


def test_hed_jitter_zero_is_identity_and_white_stays_white():
    x = _batch()
    assert torch.equal(A.hed_jitter(x, _rng(), sigma=0.0), x)
    white = torch.ones(3, 3, 32, 32)
    assert torch.allclose(A.hed_jitter(white, _rng(), sigma=0.2), white, atol=1e-4)
    y = A.hed_jitter(x, _rng(), sigma=0.1)
    assert y.shape == x.shape and not torch.allclose(y, x)


def test_hed_jitter_moves_haematoxylin_only_by_its_own_factor():
    # a pure haematoxylin image stays (nearly) pure haematoxylin: eosin and DAB do not appear
    h = torch.zeros(2, 3, 32, 32, dtype=torch.float64)
    h[:, 0] = 0.5
    x = A.hed_to_rgb(h)
    y = A.rgb_to_hed(A.hed_jitter(x, _rng(), sigma=0.2), clamp=False)
    ratio = y[:, 0].mean(dim=(1, 2)) / 0.5
    assert ((ratio > 0.6) & (ratio < 1.4)).all()
    assert y[:, 1:].abs().max() < 0.2 * 0.5 + 1e-6


def test_grayscale_all_or_nothing():
    x = _batch()
    y = A.random_grayscale(x, _rng(), p=1.0)
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])
    assert torch.equal(A.random_grayscale(x, _rng(), p=0.0), x)


def test_colour_jitter_zero_strength_is_identity_and_gray_stays_gray():
    x = _batch()
    assert torch.allclose(A.colour_jitter(x, _rng(), brightness=0, contrast=0, saturation=0, p=1.0), x, atol=1e-6)
    gray = x[:, :1].expand_as(x).clone()
    y = A.colour_jitter(gray, _rng(), p=1.0)
    assert torch.allclose(y[:, 0], y[:, 1], atol=1e-6)


def test_blur_keeps_constants_and_mean_and_smooths():
    c = torch.full((2, 3, 32, 32), 0.3)
    assert torch.allclose(A.gaussian_blur(c, _rng(), p=1.0), c, atol=1e-6)
    x = _batch()
    y = A.gaussian_blur(x, _rng(), sigma=(1.0, 1.0), p=1.0)
    assert y.std() < x.std()
    assert torch.allclose(y.mean(), x.mean(), atol=0.02)
    assert torch.equal(A.gaussian_blur(x, _rng(), p=0.0), x)
